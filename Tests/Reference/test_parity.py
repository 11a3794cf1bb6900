"""Hydra's engine against the PyTorch reference: convert random-weight checkpoints, run both."""
import numpy as np
import pytest
import torch
import cv2

from cli import ROOT, run
import safetensors_reader
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


FLAGS = open("/proc/cpuinfo").read()
# Mean relative error allowed against PyTorch f32, from each precision's rounding. bf16 keeps 8
# significant bits (each rounding <= 2^-9 relative); the errors of ~50 layers partly cancel and are
# partly damped by the ReLU6 clamps: 4 roundings' worth (the engine's own test uses the same).
# int8 divides each 1x1 layer's input range into 255 steps and each weight row's into 254 (<= 2^-8
# of the range, so more relative to values below the range's ends): 8 steps' worth.
PRECISIONS = [
    pytest.param("bf16", 4 * 2 ** -9, marks=pytest.mark.skipif("avx512_bf16" not in FLAGS, reason="no AVX512-BF16")),
    pytest.param("int8", 8 * 2 ** -8, marks=pytest.mark.skipif("avx512_vnni" not in FLAGS or "avx512_bf16" not in FLAGS,
                                                               reason="no AVX512-VNNI and AVX512-BF16")),
]


@pytest.mark.parametrize("precision,allowed", PRECISIONS)
def test_reduced_precision_stays_within_its_rounding_of_pytorch(tmp_path, hydra, precision, allowed):
    """bf16 and int8 (calibrated by `hydra calibrate` on the frames) against PyTorch f32 on the built-in
    trained weights: mean relative error of logits and depth within what the precision's rounding
    allows, labels mostly the same. (Random weights are no test of this: an untrained network
    amplifies any rounding layer after layer, bf16's to ~12 % of its logits.)"""
    st = ROOT / "Sources/HydraEngine/Resources/default.safetensors"
    model = MultiTaskRefineNet(6, False)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in safetensors_reader.read(st).items()})
    model.eval()
    frames = tmp_path / "frames"
    frames.mkdir()
    images = []
    for i, (w, h) in enumerate(SIZES):
        rgb = frame(w, h, seed=10 + i)
        path = frames / f"frame{i}_{w}x{h}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images.append((path, rgb))
    if precision == "int8":
        calibrated = tmp_path / "model-int8.safetensors"
        run(hydra, "calibrate", "--model", st, "--images", frames, "--out", calibrated)
        st = calibrated
    raw = tmp_path / "raw"
    run(hydra, "predict", "--model", st, "--precision", precision, "--outputs", "summary", "--out", tmp_path / "out",
        "--raw-dir", raw, *[p for p, _ in images])
    for path, rgb in images:
        with torch.no_grad():
            want_logits, want_depth = [t[0].numpy() for t in model(preprocess(rgb))]
        logits = np.load(raw / path.stem / "segm_logits.npy")
        depth = np.load(raw / path.stem / "depth.npy").reshape(want_depth.shape)
        for name, got, want in [("logits", logits, want_logits), ("depth", depth, want_depth)]:
            rel = float(np.abs(got - want).sum() / np.abs(want).sum())
            print(f"{precision} {path.name} {name}: mean relative error {rel:.4f}, allowed {allowed:.4f}")
            assert 0 < rel <= allowed, f"{path.name} {name}: mean relative error {rel} (allowed {allowed})"
        agree = float((logits.argmax(0) == want_logits.argmax(0)).mean())
        print(f"{precision} {path.name}: labels agree on {agree:.2%}")
        assert agree >= 0.97, f"{path.name}: labels agree on {agree:.2%}"
