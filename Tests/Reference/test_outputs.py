"""`hydra predict --out`: user-facing outputs against PyTorch + OpenCV post-processing (MODEL.md)."""
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cli import run
from refinenet import MultiTaskRefineNet, randomise, preprocess
from test_parity import frame

KITTI_COLOURS = [[128, 128, 128], [128, 0, 0], [128, 64, 128], [0, 0, 192], [128, 128, 0], [64, 0, 128]]


def read_ply(path):
    """Header lines and a structured array of the vertices (binary little-endian or ASCII)."""
    data = open(path, "rb").read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode().splitlines()
    types = {"float": "<f4", "uchar": "u1"}
    fields = [(l.split()[2], types[l.split()[1]]) for l in header if l.startswith("property")]
    count = int(next(l for l in header if l.startswith("element vertex")).split()[2])
    if "format ascii 1.0" in header:
        rows = np.loadtxt(data[end:].decode().splitlines(), ndmin=2)
        out = np.zeros(count, dtype=fields)
        for i, (name, _) in enumerate(fields):
            out[name] = rows[:, i]
        return header, out
    return header, np.frombuffer(data[end:], dtype=np.dtype(fields), count=count)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    model = randomise(MultiTaskRefineNet(6, False), seed=11)
    torch.save({"state_dict": model.state_dict()}, d / "m.ckpt")
    run_convert = run
    run_convert(pytest.hydra, "convert", d / "m.ckpt", d / "m.safetensors")
    rgb = frame(333, 97, seed=5)
    cv2.imwrite(str(d / "f.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    with torch.no_grad():
        logits, depth = [t[0].numpy() for t in model(preprocess(rgb))]
    up = np.stack([cv2.resize(p, (333, 97), interpolation=cv2.INTER_CUBIC) for p in logits])
    return d, rgb, up.argmax(0), np.abs(cv2.resize(depth[0], (333, 97), interpolation=cv2.INTER_CUBIC))


@pytest.fixture(scope="module", autouse=True)
def _hydra(hydra):
    pytest.hydra = hydra


def test_segmentation_depth_and_summary(kitti):
    d, rgb, labels, depth = kitti
    out = d / "o1"
    run(pytest.hydra, "predict", "--model", d / "m.safetensors", "--outputs", "segmentation,depth,summary", "--out", out, d / "f.png")
    seg = Image.open(out / "f_segmentation.png")
    assert seg.mode == "P" and seg.size == (333, 97)
    palette = np.array(seg.getpalette()[:18]).reshape(6, 3).tolist()
    assert palette == KITTI_COLOURS
    ids = np.array(seg)
    # The network agrees with PyTorch to ~1e-4, so only near-ties may flip.
    assert (ids != labels).mean() < 1e-3, (ids != labels).mean()
    got = np.load(out / "f_depth.npy")
    assert got.shape == (97, 333)
    assert np.abs(got - depth).max() <= 1e-3 * max(1.0, depth.max())
    summary = json.loads((out / "f_summary.json").read_text())
    assert summary["input"] == {"width": 333, "height": 97}
    assert summary["network_output"] == {"width": 84, "height": 25}
    shares = [c["share"] for c in summary["classes"]]
    assert abs(sum(shares) - 1) < 1e-9
    for c in summary["classes"]:
        mask = ids == c["id"]
        assert c["pixels"] == int(mask.sum())
        if mask.any():
            assert abs(c["depth_min_m"] - got[mask].min()) < 1e-5
    for stage in ["decode", "network", "upsample", "encode_segmentation", "encode_depth"]:
        assert stage in summary["timings_ms"]
    # The first layer reads the 8-bit image itself: preprocessing is part of "network", not a stage of 0 ms.
    assert "preprocess" not in summary["timings_ms"]


@pytest.mark.parametrize("fmt", ["binary", "ascii"])
def test_point_cloud_back_projects_with_the_camera(kitti, fmt):
    d, rgb, labels, depth = kitti
    out = d / f"o-{fmt}"
    run(pytest.hydra, "predict", "--model", d / "m.safetensors", "--outputs", "segmentation,depth,pointcloud", "--out", out,
        "--fx", "300", "--fy", "310", "--cx", "160", "--cy", "50", "--stride", "2", "--ply-format", fmt, d / "f.png")
    header, v = read_ply(out / "f.ply")
    got_depth = np.load(out / "f_depth.npy")
    ids = np.array(Image.open(out / "f_segmentation.png"))
    vv, uu = np.mgrid[0:97:2, 0:333:2]
    z = got_depth[vv, uu]
    keep = z > 0
    assert len(v) == int(keep.sum())
    z, uu, vv = z[keep], uu[keep], vv[keep]
    np.testing.assert_allclose(v["z"], z, rtol=1e-6)
    np.testing.assert_allclose(v["x"], (uu - 160) * z / 300, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v["y"], (vv - 50) * z / 310, rtol=1e-5, atol=1e-5)
    assert (v["red"] == rgb[vv, uu, 0]).all() and (v["blue"] == rgb[vv, uu, 2]).all()
    assert (v["label"] == ids[vv, uu]).all()


def test_point_cloud_loads_in_open3d(kitti):
    import open3d as o3d
    d, rgb, _, _ = kitti
    out = d / "o3d"
    run(pytest.hydra, "predict", "--model", d / "m.safetensors", "--outputs", "pointcloud", "--out", out, "--drop-classes", "sky",
        d / "f.png")
    pcd = o3d.io.read_point_cloud(str(out / "f.ply"))
    _, v = read_ply(out / "f.ply")
    assert len(pcd.points) == len(v) > 0
    assert (v["label"] != 0).all(), "sky was dropped"
    np.testing.assert_allclose(np.asarray(pcd.colors), np.stack([v["red"], v["green"], v["blue"]], -1) / 255.0, atol=1e-6)


def test_one_bad_image_does_not_stop_the_rest(kitti, tmp_path):
    d, _, _, _ = kitti
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    p = run(pytest.hydra, "predict", "--model", d / "m.safetensors", "--out", tmp_path / "o", bad, d / "f.png", check=False)
    assert p.returncode == 1
    assert "bad.png: corrupt PNG image" in p.stderr
    assert (tmp_path / "o" / "f_segmentation.png").exists()
    assert "1 of 2 images done, 1 failed" in p.stdout


def test_three_task_normals(tmp_path):
    model = randomise(MultiTaskRefineNet(40, True), seed=12)
    torch.save(model.state_dict(), tmp_path / "m.ckpt", _use_new_zipfile_serialization=False)
    run(pytest.hydra, "convert", tmp_path / "m.ckpt", tmp_path / "m.safetensors")
    rgb = frame(96, 64, seed=1)
    cv2.imwrite(str(tmp_path / "f.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    run(pytest.hydra, "predict", "--model", tmp_path / "m.safetensors", "--outputs", "normals,segmentation,pointcloud",
        "--out", tmp_path / "o", tmp_path / "f.png")
    n = np.load(tmp_path / "o" / "f_normals.npy")
    assert n.shape == (3, 64, 96)
    np.testing.assert_allclose(np.linalg.norm(n, axis=0), 1, atol=1e-5)
    with torch.no_grad():
        want = model(preprocess(rgb))[2][0].numpy()
    up = np.stack([cv2.resize(p, (96, 64), interpolation=cv2.INTER_CUBIC) for p in want])
    up /= np.linalg.norm(up, axis=0, keepdims=True)
    assert np.abs(up - n).max() < 1e-3
    assert Image.open(tmp_path / "o" / "f_normals.png").mode == "RGB"
    header, _ = read_ply(tmp_path / "o" / "f.ply")
    assert "property float nx" in header
    seg = Image.open(tmp_path / "o" / "f_segmentation.png")
    assert len(seg.getpalette()) // 3 >= 40
