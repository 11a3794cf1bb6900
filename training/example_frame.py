#!/usr/bin/python3
"""Writes examples/scene.jpg: one generated street scene (seed 4242, 1226x370), the demo frame."""
import pathlib
import sys

from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from scenes import render  # noqa: E402

out = pathlib.Path(__file__).resolve().parents[1] / "examples" / "scene.jpg"
rgb, _, _ = render(4242, 1226, 370)
Image.fromarray(rgb).save(out, quality=92)
print(out, out.stat().st_size, "bytes")
