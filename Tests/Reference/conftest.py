import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def hydra():
    """Path of the hydra binary under test (HYDRA env var, else the release build)."""
    path = pathlib.Path(os.environ.get("HYDRA", ROOT / ".build/release/hydra"))
    if not path.exists():
        pytest.fail(f"{path} not found: build first (make build)")
    return str(path)


def run(*args, check=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p
