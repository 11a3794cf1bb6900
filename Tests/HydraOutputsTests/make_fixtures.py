#!/usr/bin/python3
"""Expected resize results computed with OpenCV, for HydraOutputsTests.

Run from the repository root: /usr/bin/python3 Tests/HydraOutputsTests/make_fixtures.py
Writes small float32 .npy files (labels stored as float32 too).
"""
import pathlib

import cv2
import numpy as np

OUT = pathlib.Path(__file__).parent / "Fixtures"
OUT.mkdir(exist_ok=True)
rng = np.random.default_rng(7)


def resize(planes, size, mode):
    return np.stack([cv2.resize(p, size, interpolation=mode) for p in planes]).astype(np.float32)


cases = {"small": (3, 5, 7), "logits6": (6, 9, 11), "tall": (2, 12, 4)}
for name, (c, h, w) in cases.items():
    src = rng.normal(0, 2, (c, h, w)).astype(np.float32)
    np.save(OUT / f"{name}_src.npy", src)
    for (W, H) in [(w * 4, h * 4), (29, 17), (w + 1, h + 3), (max(1, w // 2 + 1), max(1, h // 2 + 1))]:
        cubic = resize(src, (W, H), cv2.INTER_CUBIC)
        np.save(OUT / f"{name}_cubic_{H}x{W}.npy", cubic)
        np.save(OUT / f"{name}_argmax_{H}x{W}.npy", np.argmax(cubic, axis=0).astype(np.float32))
        np.save(OUT / f"{name}_linear_{H}x{W}.npy", resize(src, (W, H), cv2.INTER_LINEAR))
print("written to", OUT)
