"""What a user sees when a command line is wrong: one line starting "error: ", exit status 1, the
file or option named, never a Foundation error domain, a backtrace or a silent wrong answer."""
import json
import socket
import subprocess
import urllib.request

import cv2
import numpy as np
import pytest

from cli import run
from test_parity import frame


@pytest.fixture(scope="module", autouse=True)
def _hydra(hydra):
    pytest.hydra = hydra


def fails(*args, code=1):
    """Exit status 1 for what went wrong while running, 64 (EX_USAGE) for a command line that does not parse."""
    p = run(pytest.hydra, *args, check=False)
    assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("error: "), p.stderr
    for bad in ("NSCocoaErrorDomain", "Fatal error", "Backtrac", "Error: "):
        assert bad not in p.stderr, p.stderr
    return p.stderr


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    cv2.imwrite(str(d / "x.png"), frame(96, 64, seed=3))
    return d / "x.png"


def test_bench_refuses_a_size_it_cannot_allocate():
    assert "40 megapixels" in fails("bench", "--size", "100000x100000")


def test_predict_out_naming_a_file(image, tmp_path):
    (tmp_path / "taken").write_text("")
    assert "a file of that name exists" in fails("predict", "--out", tmp_path / "taken", image)


def test_predict_refuses_two_images_with_one_name(image, tmp_path):
    other = tmp_path / "b"
    other.mkdir()
    cv2.imwrite(str(other / "x.png"), frame(64, 48, seed=4))
    err = fails("predict", "--out", tmp_path / "o", image, other / "x.png")
    assert "would write the same files" in err and str(image) in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir()), "nothing may be written"


def test_missing_and_wrong_kinds_of_files(image, tmp_path):
    assert fails("eval", "--dataset", "kitti", tmp_path / "nope") == f"error: {tmp_path / 'nope'}: no such folder\n"
    assert "no such file or directory" in fails("predict", "--out", tmp_path, tmp_path / "nope.png")
    assert "is a folder, not a file" in fails("predict", "--out", tmp_path / "o", tmp_path)
    assert "is a folder, not a file" in fails("predict", "--model", tmp_path, "--out", tmp_path / "o", image)
    err = fails("convert", tmp_path / "missing.ckpt", tmp_path / "m.safetensors")
    assert err.count("missing.ckpt") == 1 and "no such file" in err


def test_option_errors_use_the_same_spelling(image, tmp_path):
    assert "--hfov" in fails("predict", "--hfov", "0", "--out", tmp_path, image, code=64)
    assert "--size" in fails("bench", "--size", "12")


def test_serve_resolves_host_names():
    p = run(pytest.hydra, "serve", "--host", "name.invalid", "--port", "1", check=False)
    assert p.returncode == 1
    assert "cannot resolve the host name" in json.loads(p.stderr.strip().splitlines()[-1])["error"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(pytest.hydra), "serve", "--host", "localhost", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in server.stderr:
            if '"ready"' in line or "cannot start" in line:
                break
        assert json.loads(line)["msg"] == "ready", line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A folder holding a KITTI-named and a NYUD-named frame, each with its own kind of ground truth."""
    d = tmp_path_factory.mktemp("mixed")
    cv2.imwrite(str(d / "KITTI_t_000001.png"), frame(128, 64, seed=1))
    gt = np.zeros((64, 128, 3), np.uint8)
    gt[:32] = (128, 128, 128)  # sky (RGB = BGR here)
    gt[32:] = (128, 64, 128)[::-1]  # road, written as BGR
    cv2.imwrite(str(d / "KITTI_t_segm_gt_000001.png"), gt)
    cv2.imwrite(str(d / "NYUD_t_000002.png"), frame(96, 72, seed=2))
    cv2.imwrite(str(d / "NYUD_t_segm_gt_000002.png"), np.full((72, 96), 3, np.uint8))
    cv2.imwrite(str(d / "NYUD_t_depth_gt_000002.png"), np.full((72, 96), 15000, np.uint16))
    return d


def test_eval_refuses_ground_truth_of_the_other_data_set(mixed):
    err = fails("eval", "--dataset", "kitti", mixed)
    assert "NYUD_t_000002.png" in err and "--dataset kitti" in err
    # The built-in model has KITTI's six classes: scoring NYUDv2 labels with them means nothing.
    assert "needs a model with NYUDv2's classes" in fails("eval", "--dataset", "nyud", mixed)


def test_eval_json_to_stdout_is_only_json(mixed, tmp_path):
    kitti = tmp_path / "k"
    kitti.mkdir()
    for f in mixed.glob("KITTI_*"):
        (kitti / f.name).write_bytes(f.read_bytes())
    p = run(pytest.hydra, "eval", "--dataset", "kitti", "--json", "-", kitti)
    out = json.loads(p.stdout)  # the whole of stdout parses
    assert out["images"] == 1 and "miou" in out
    assert "mIoU" in p.stderr, "the table goes to stderr"
