#!/usr/bin/env python3
"""Writes the small seed corpora for `make fuzz` into Fuzz/corpus/<target>/ (committed).

    /usr/bin/python3 Fuzz/make_seeds.py      # needs numpy and torch (Debian's python3-torch)

PNG and JPEG seeds are the decoder test fixtures (Tests/HydraImageTests/Fixtures), used in place.
"""
import io
import json
import pathlib
import struct

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT / "Fuzz" / "corpus"
PNG = (ROOT / "Tests/HydraImageTests/Fixtures/grey8.png").read_bytes()
JPG = (ROOT / "Tests/HydraImageTests/Fixtures/baseline.jpg").read_bytes()


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def http_seeds():
    def req(method, target, headers=(), body=b""):
        head = f"{method} {target} HTTP/1.1\r\nHost: hydra\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        return head.encode() + b"\r\n" + body
    write("http", "get-healthz", req("GET", "/healthz"))
    write("http", "head-index", req("HEAD", "/"))
    write("http", "pipelined", req("GET", "/readyz") + req("GET", "/v1/models") + req("GET", "/metrics"))
    write("http", "post-png", req("POST", "/v1/predict?outputs=segmentation,depth&depth_format=png16&depth_scale=256",
                                  [("Content-Type", "image/png"), ("Content-Length", len(PNG))], PNG))
    write("http", "post-jpeg", req("POST", "/v1/models/default/predict?outputs=pointcloud&stride=2&fx=700&fy=700&cx=300&cy=100"
                                   "&min_depth=0.5&max_depth=80&drop_classes=sky&colour_by=label&ply_format=ascii",
                                   [("Content-Type", "image/jpeg"), ("Content-Length", len(JPG))], JPG))
    chunks = b"".join(b"%x\r\n" % len(PNG[i:i + 50]) + PNG[i:i + 50] + b"\r\n" for i in range(0, len(PNG), 50)) + b"0\r\n\r\n"
    write("http", "post-chunked", req("POST", "/v1/predict?fast=true&timeout_ms=1000",
                                      [("Content-Type", "image/png"), ("Transfer-Encoding", "chunked")], chunks))
    b = "hydraBoundary"
    form = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"f.png\"\r\nContent-Type: image/png\r\n\r\n".encode()
            + PNG + f"\r\n--{b}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{b}--\r\n".encode())
    write("http", "post-multipart", req("POST", "/v1/predict?outputs=summary,overlay&overlay_format=jpeg",
                                        [("Content-Type", f"multipart/form-data; boundary={b}"), ("Content-Length", len(form)),
                                         ("Accept", "multipart/form-data"), ("X-Request-Id", "seed-1")], form))
    write("http", "expect-continue", req("POST", "/v1/predict", [("Content-Type", "image/png"), ("Expect", "100-continue"),
                                                                 ("Content-Length", len(PNG))], PNG))
    write("http", "http10", b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")


def chunked_seeds():
    """Bodies behind the chunked target's fixed head (Sources/HydraFuzz/FuzzTarget.swift)."""
    def chunks(data, size):
        return b"".join(b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n" for i in range(0, len(data), size))
    write("chunked", "small-chunks", chunks(PNG, 7) + b"0\r\n\r\n")
    write("chunked", "extensions", b"3;a=b;c=\"q\\\"s\"\r\nabc\r\n00A ; x\r\n0123456789\r\n0;end\r\n\r\n")
    write("chunked", "trailers", chunks(b"hello world", 4) + b"0\r\nX-Checksum: 1\r\nAccept: image/png\r\n\r\n")
    write("chunked", "pipelined", chunks(PNG[:64], 32) + b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
          + b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\nabcd")
    write("chunked", "upper-hex", b"1F\r\n" + b"x" * 31 + b"\r\n0\r\n\r\n")


def infer_seeds():
    """First byte: coding (value % 3: identity, gzip, deflate); bit 7: the JSON header ends at the first NUL."""
    import gzip
    import zlib
    header = json.dumps({"id": "s", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                               "parameters": {"binary_data_size": len(PNG) + 4}}],
                         "outputs": [{"name": "depth", "parameters": {"binary_data": True}}, {"name": "pointcloud"}],
                         "parameters": {"fx": 700, "fast": True, "timeout": 1000, "binary_data_output": True}}).encode()
    binary = header + b"\0" + struct.pack("<I", len(PNG)) + PNG
    write("infer", "image-binary", b"\x80" + binary)
    write("infer", "image-binary-gzip", b"\x81" + gzip.compress(binary, mtime=0))
    write("infer", "image-binary-deflate", b"\x82" + zlib.compress(binary))
    pixels = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [32, 33, 3],
                          "data": [[[x % 256, y, 7] for x in range(33)] for y in range(32)]}],
              "outputs": [{"name": "segmentation"}, {"name": "summary"}]}
    write("infer", "pixels-json", b"\x00" + json.dumps(pixels).encode())
    write("infer", "pixels-flat", b"\x00" + json.dumps({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 32, 32, 3],
                                                                     "data": [5] * 3072}]}).encode())


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def safetensors_seeds():
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((4, 3, 3, 3)).astype("<f4")
    write("safetensors", "f32", safetensors({"layer1.0.weight": ("F32", f32)}, {"preset": "kitti", "format": "pt"}))
    write("safetensors", "f16-bf16", safetensors({
        "bn.weight": ("F16", rng.standard_normal(8).astype("<f2")),
        "bn.bias": ("BF16", (rng.standard_normal(8).astype("<f4").view("<u4") >> 16).astype("<u2")),
        "bn.running_mean": ("F32", np.zeros(8, "<f4")),
    }, {"preset": "nyud", "classes": json.dumps(["a", "b"]), "colours": json.dumps([[1, 2, 3], [4, 5, 6]]),
        "intrinsics": json.dumps({"fx": 500, "fy": 500, "cx": 32, "cy": 24, "width": 64, "height": 48})}))
    write("safetensors", "empty", safetensors({}, {}))


def checkpoint_seeds():
    import torch
    sd = {"layer1.0.weight": torch.randn(4, 3, 3, 3), "layer1.1.weight": torch.randn(4),
          "layer1.1.num_batches_tracked": torch.tensor(3), "half": torch.randn(2, 2).half(),
          "view": torch.randn(6, 4)[:, 1:3]}
    for name, obj, zipped in [("zip-state-dict", {"state_dict": sd, "epoch": 3}, True), ("zip-bare", sd, True),
                              ("legacy-state-dict", {"state_dict": sd}, False)]:
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=zipped)
        write("checkpoint", name, buf.getvalue())


def formdata_seeds():
    """Bodies for the formdata target, whose boundary is XyZ."""
    part = lambda headers, body: b"--XyZ\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body + b"\r\n"
    image = [b'Content-Disposition: form-data; name="image"; filename="f.png"', b"Content-Type: image/png"]
    write("formdata", "one-image", part(image, PNG) + b"--XyZ--\r\n")
    write("formdata", "preamble-fields-epilogue", b"preamble\r\n" + part([b'Content-Disposition: form-data; name="note"'], b"hi\r\nthere")
          + part(image, PNG) + b"--XyZ--\r\nepilogue")
    write("formdata", "padding-folding", b"--XyZ \t\r\nContent-Disposition: form-data;\r\n name=\"image\"\r\n\r\nabc\r\n--XyZ--")


if __name__ == "__main__":
    http_seeds()
    chunked_seeds()
    infer_seeds()
    safetensors_seeds()
    checkpoint_seeds()
    formdata_seeds()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
