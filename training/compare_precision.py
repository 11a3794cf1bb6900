#!/usr/bin/python3
"""Largest difference between two models' raw outputs (e.g. F16 vs F32 storage) on some frames.

    python3 training/compare_precision.py --hydra .build/release/hydra A.safetensors B.safetensors FRAME...
"""
import argparse
import pathlib
import subprocess
import tempfile

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--hydra", default=".build/release/hydra")
ap.add_argument("a")
ap.add_argument("b")
ap.add_argument("frames", nargs="+")
args = ap.parse_args()
tmp = pathlib.Path(tempfile.mkdtemp())
for tag, model in (("a", args.a), ("b", args.b)):
    subprocess.run([args.hydra, "predict", "--model", model, "--raw-dir", str(tmp / tag), *args.frames], check=True,
                   capture_output=True)
worst = {}
for f in args.frames:
    stem = pathlib.Path(f).stem
    sub = stem if len(args.frames) > 1 else ""
    for name in ("segm_logits", "depth"):
        x, y = (np.load(tmp / t / sub / f"{name}.npy") for t in ("a", "b"))
        worst[name] = max(worst.get(name, 0), float(np.abs(x - y).max()))
print(" ".join(f"max|{k}| difference {v:.2e}" for k, v in worst.items()))
