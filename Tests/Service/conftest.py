import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from service import Server  # noqa: E402


@pytest.fixture
def server_factory():
    servers = []

    def make(*flags, env=None):
        s = Server(*flags, env=env)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def server():
    s = Server("--workers", "2", "--threads-per-worker", "1", "--queue-size", "8")
    yield s
    assert s.stop() == 0


