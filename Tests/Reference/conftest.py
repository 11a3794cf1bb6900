import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from cli import HYDRA  # noqa: E402


@pytest.fixture(scope="session")
def hydra():
    """Path of the hydra binary under test (HYDRA env var, else the release build)."""
    if not HYDRA.exists():
        pytest.fail(f"{HYDRA} not found: build first (make build)")
    return str(HYDRA)
