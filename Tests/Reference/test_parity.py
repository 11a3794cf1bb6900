"""Hydra's engine against the PyTorch reference: convert random-weight checkpoints, run both."""
import numpy as np
import pytest
import torch
import cv2

from cli import run
from refinenet import MultiTaskRefineNet, randomise, preprocess

torch.set_num_threads(2)
SIZES = [(1226, 370), (640, 480), (333, 97)]
CONFIGS = [
    pytest.param(6, False, "legacy", id="6-classes-2-heads-legacy"),
    pytest.param(40, True, "zip", id="40-classes-3-heads-zip"),
]


def frame(w, h, seed):
    """A test frame with structure at several scales (smooth gradients, edges and noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        127 + 100 * np.sin(xx / 37.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)
    ], axis=-1)
    img += rng.normal(0, 25, img.shape)
    img[h // 3: h // 2, w // 4: w // 2] = (30, 200, 90)
    return np.clip(img, 0, 255).astype(np.uint8)


def save(model, path, fmt):
    ckpt = {"state_dict": model.state_dict(), "epoch": 7}
    torch.save(ckpt, path, _use_new_zipfile_serialization=(fmt == "zip"))


@pytest.mark.parametrize("classes,normals,fmt", CONFIGS)
def test_outputs_match_pytorch(tmp_path, hydra, classes, normals, fmt):
    model = randomise(MultiTaskRefineNet(classes, normals), seed=classes)
    ckpt = tmp_path / "model.ckpt"
    save(model, ckpt, fmt)
    st = tmp_path / "model.safetensors"
    run(hydra, "convert", ckpt, st)

    images = []
    for i, (w, h) in enumerate(SIZES):
        rgb = frame(w, h, seed=i)
        path = tmp_path / f"frame{i}_{w}x{h}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images.append((path, rgb))
    raw = tmp_path / "raw"
    run(hydra, "predict", "--model", st, "--raw-dir", raw, *[p for p, _ in images])

    names = ["segm_logits", "depth"] + (["normals"] if normals else [])
    for path, rgb in images:
        with torch.no_grad():
            expected = [t[0].numpy() for t in model(preprocess(rgb))]
        for name, want in zip(names, expected):
            got = np.load(raw / path.stem / f"{name}.npy")
            assert got.shape == want.shape, f"{path.name} {name}: shape {got.shape} != {want.shape}"
            tol = 1e-4 * max(1.0, float(np.abs(want).max()))
            err = float(np.abs(got - want).max())
            print(f"{path.name} {name} {got.shape}: max|err| {err:.3g}, tolerance {tol:.3g}")
            assert err <= tol, f"{path.name} {name}: max|hydra - torch| = {err} > {tol}"
