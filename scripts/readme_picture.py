#!/usr/bin/python3
"""docs/images/result.jpg for the README: the example frame (a frame of the project's scene generator),
its segmentation overlay and its colour depth with the legend the summary gives, stacked.

    make readme-picture   (runs hydra predict on examples/scene.jpg first)
"""
import json
import pathlib
import sys

from PIL import Image, ImageDraw

src = pathlib.Path(sys.argv[1])  # hydra predict's --out folder for examples/scene.jpg
root = pathlib.Path(__file__).resolve().parents[1]
frame = Image.open(root / "examples" / "scene.jpg").convert("RGB")
overlay = Image.open(src / "scene_overlay.png").convert("RGB")
depth = Image.open(src / "scene_depth_colour.png").convert("RGB")
legend = json.loads((src / "scene_summary.json").read_text())["depth_colour_legend"]
width = 900
rows = [im.resize((width, round(im.height * width / im.width)), Image.LANCZOS) for im in (frame, overlay, depth)]
bar_h, text_h = 12, 16
out = Image.new("RGB", (width, sum(r.height for r in rows) + bar_h + text_h + 4), (16, 20, 24))
y = 0
for r in rows:
    out.paste(r, (0, y))
    y += r.height
draw = ImageDraw.Draw(out)
# The legend bar: near (left) to far (right), with the summary's round distances.
stops = sorted(legend, key=lambda t: -t["position"])
for x in range(width):
    p = 1 - x / (width - 1)
    hi = next(t for t in stops if t["position"] <= p) if any(t["position"] <= p for t in stops) else stops[-1]
    lo = next((t for t in reversed(stops) if t["position"] >= p), stops[0])
    f = 0 if lo is hi or lo["position"] == hi["position"] else (p - hi["position"]) / (lo["position"] - hi["position"])
    draw.line([(x, y + 2), (x, y + 2 + bar_h)], fill=tuple(round(h + (l - h) * f) for h, l in zip(hi["rgb"], lo["rgb"])))
for t in legend:
    x = min(width - 40, max(0, round((1 - t["position"]) * (width - 1)) - 12))
    m = t["metres"]
    draw.text((x, y + bar_h + 4), f"{m:.1f} m" if m < 10 else f"{m:.0f} m", fill=(200, 205, 210))
dest = root / "docs" / "images" / "result.jpg"
out.save(dest, quality=85)
print(dest, out.size, dest.stat().st_size, "bytes")
