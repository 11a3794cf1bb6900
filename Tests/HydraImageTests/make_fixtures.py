#!/usr/bin/python3
"""Writes the image decoder fixtures (tiny generated images + expected RGB) with Pillow.

Run from the repository root: /usr/bin/python3 Tests/HydraImageTests/make_fixtures.py
"""
import io
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image

OUT = pathlib.Path(__file__).parent / "Fixtures"
OUT.mkdir(exist_ok=True)
rng = np.random.default_rng(42)
W, H = 13, 7
rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
grey16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)


def save(name, img, expected, **kw):
    img.save(OUT / name, **kw)
    (OUT / (name + ".rgb")).write_bytes(np.ascontiguousarray(expected, dtype=np.uint8).tobytes())


def raw_png(name, width, height, bit_depth, colour_type, rows, extra=b""):
    """A PNG written chunk by chunk, for layouts Pillow does not write (16-bit RGB)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = b"".join(b"\x00" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b"")


save("rgb8.png", Image.fromarray(rgb), rgb)
save("grey8.png", Image.fromarray(grey), np.stack([grey] * 3, -1))
save("rgba8.png", Image.fromarray(np.dstack([rgb, grey])), rgb)
save("greyalpha.png", Image.fromarray(np.dstack([grey, 255 - grey]), "LA"), np.stack([grey] * 3, -1))
save("interlaced.png", Image.fromarray(rgb), rgb, interlace=1)
pal_img = Image.fromarray(rgb).quantize(colors=17)
save("palette.png", pal_img, np.array(pal_img.convert("RGB")))
bits = grey > 127
save("grey1.png", Image.fromarray(bits), np.stack([bits.astype(np.uint8) * 255] * 3, -1))
# 16-bit: libpng scales by rounding v / 257.
g8 = np.floor(grey16 / 257.0 + 0.5).astype(np.uint8)
save("grey16.png", Image.fromarray(grey16.astype(np.int32), "I").convert("I;16"), np.stack([g8] * 3, -1))
rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
rows = [rgb16[y].astype(">u2").tobytes() for y in range(H)]
(OUT / "rgb16.png").write_bytes(raw_png("rgb16.png", W, H, 16, 2, rows))
(OUT / "rgb16.png.rgb").write_bytes(np.floor(rgb16 / 257.0 + 0.5).astype(np.uint8).tobytes())

# JPEG: expected values are Pillow's decode (libjpeg as well); tests allow small differences.
smooth = np.clip(np.add.outer(np.arange(H) * 12, np.arange(W) * 9)[..., None] + np.array([10, 60, 120]), 0, 255).astype(np.uint8)
for name, kw in [("baseline.jpg", {}), ("progressive.jpg", {"progressive": True})]:
    Image.fromarray(smooth).save(OUT / name, quality=95, **kw)
    (OUT / (name + ".rgb")).write_bytes(np.array(Image.open(OUT / name).convert("RGB")).tobytes())
Image.fromarray(smooth[..., 1]).save(OUT / "grey.jpg", quality=95)
(OUT / "grey.jpg.rgb").write_bytes(np.array(Image.open(OUT / "grey.jpg").convert("RGB")).tobytes())
Image.fromarray(smooth).convert("CMYK").save(OUT / "cmyk.jpg", quality=95)
(OUT / "cmyk.jpg.rgb").write_bytes(np.array(Image.open(OUT / "cmyk.jpg").convert("RGB")).tobytes())

# Broken and hostile files.
good_png = (OUT / "rgb8.png").read_bytes()
(OUT / "truncated.png").write_bytes(good_png[: len(good_png) // 2])
bad_crc = bytearray(good_png)
bad_crc[40] ^= 0xFF  # inside IDAT
(OUT / "badcrc.png").write_bytes(bytes(bad_crc))
(OUT / "bomb.png").write_bytes(raw_png("bomb.png", 100000, 100000, 8, 2, [b"\x00" * 10]))


def stored(data, final=False):
    """A deflate stored block (RFC 1951 3.2.4)."""
    return bytes([1 if final else 0]) + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data


def trailing_png(interlaced):
    """rgb as a PNG whose compressed stream goes on after the last row: 64 KiB more, then a block of
    the reserved type. A decoder that stops at the last row never reaches that block."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    if interlaced:  # Adam7: (row start, col start, row step, col step) per pass
        passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
        subs = [rgb[r0::dr, c0::dc] for r0, c0, dr, dc in passes]
        rows = b"".join(b"\x00" + row.tobytes() for sub in subs if sub.shape[1] > 0 for row in sub)
    else:
        rows = b"".join(b"\x00" + r.tobytes() for r in rgb)
    stream = b"\x78\x01" + stored(rows) + stored(b"\x00" * 65535) + b"\x07" + b"\xff" * 64
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 1 if interlaced else 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


for name, interlaced in [("trailing.png", False), ("trailing_interlaced.png", True)]:
    (OUT / name).write_bytes(trailing_png(interlaced))
    (OUT / (name + ".rgb")).write_bytes(rgb.tobytes())
good_jpg = (OUT / "baseline.jpg").read_bytes()
(OUT / "truncated.jpg").write_bytes(good_jpg[: len(good_jpg) // 2])
(OUT / "garbage.bin").write_bytes(bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
print("fixtures written to", OUT)
