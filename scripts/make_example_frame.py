#!/usr/bin/python3
"""Draws examples/street.png: a simple generated street-like frame (the project's own, no data set).

Deterministic. Sky, facades, road with lane marks, sidewalk, a few boxes for cars, some foliage.
"""
import pathlib

import numpy as np
from PIL import Image

W, H = 1226, 370
rng = np.random.default_rng(2019)
y, x = np.mgrid[0:H, 0:W].astype(np.float32)
img = np.zeros((H, W, 3), np.float32)
horizon = 150
img[:] = np.stack([150 + 60 * (1 - y / horizon), 180 + 50 * (1 - y / horizon), 230 + 0 * y], -1)  # sky
for x0, x1, top, col in [(0, 260, 40, (150, 110, 90)), (260, 430, 70, (180, 170, 150)),
                         (860, 1010, 55, (120, 100, 95)), (1010, 1226, 20, (170, 150, 120))]:
    m = (x >= x0) & (x < x1) & (y >= top) & (y < horizon + 20)
    img[m] = col
    for wy in range(top + 15, horizon, 28):  # windows
        for wx in range(x0 + 12, x1 - 20, 34):
            img[wy:wy + 14, wx:wx + 18] = (60, 70, 90)
road = y >= horizon + 20
img[road] = np.stack([95 + 0 * y, 95 + 0 * y, 100 + 0 * y], -1)[road]
side = road & ((x - W / 2) ** 2 > ((y - horizon) * 3.2) ** 2)
img[side] = (165, 160, 150)
lane = road & (np.abs(x - W / 2) < 2 + (y - horizon) * 0.03) & (((y // 18) % 2) == 0)
img[lane] = (230, 230, 220)
for cx, cy, w, h, col in [(520, 250, 150, 70, (40, 60, 140)), (760, 215, 90, 45, (150, 30, 30)), (300, 290, 210, 90, (30, 30, 30))]:
    img[cy - h:cy, cx - w // 2:cx + w // 2] = col
    img[cy - h + 8:cy - h // 2, cx - w // 3:cx + w // 3] = (170, 200, 220)  # windows
for tx, ty, r in [(70, 130, 55), (1120, 120, 60), (950, 150, 35)]:
    img[(x - tx) ** 2 + (y - ty) ** 2 < r * r] = (60, 110, 40)
img += rng.normal(0, 1.0, img.shape[:2])[..., None] * (y[..., None] > horizon + 20)
out = pathlib.Path(__file__).resolve().parents[1] / "examples" / "street.png"
Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out, optimize=True)
print(out, out.stat().st_size, "bytes")
