#!/usr/bin/env python3
"""What the open inference protocol's framing costs against /v1: median latency of one frame ->
segmentation + depth through /v1/predict (multipart: palette PNG + npy) and /v2 infer (JSON header +
binary tensors, and JSON `data`), on one server, interleaved in rounds so machine noise hits each
alike; bytes on the wire and the client's time to turn each answer into arrays. Writes
benchmarks/PROTOCOL.md.

    python3 benchmarks/protocol.py [--frame F] [--rounds 8] [--per-round 5]

The KITTI frame of ../shared is used when present, else examples/street.png (both 1226x370).
"""
import argparse
import email.parser
import email.policy
import http.client
import io
import json
import pathlib
import platform
import statistics
import struct
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "Service"))
from service import Server  # noqa: E402

SHARED_FRAME = ROOT.parent / "shared/data/frames/KITTI_joint_000099.png"


def v1_arrays(content_type, data):
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data)
    parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True) for p in msg.iter_parts()}
    return np.array(Image.open(io.BytesIO(parts["segmentation"]))), np.load(io.BytesIO(parts["depth"]))


def v2_arrays(header_length, data):
    n = int(header_length) if header_length else len(data)
    meta = json.loads(data[:n])
    out, at = {}, n
    for o in meta["outputs"]:
        dtype = {"UINT8": np.uint8, "FP32": np.float32}[o["datatype"]]
        if "data" in o:
            out[o["name"]] = np.array(o["data"], dtype=dtype).reshape(o["shape"])
        else:
            size = o["parameters"]["binary_data_size"]
            out[o["name"]] = np.frombuffer(data, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=at).reshape(o["shape"])
            at += size
    return out["segmentation"], out["depth"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hydra", default=str(ROOT / ".build/release/hydra"))
    ap.add_argument("--frame", default=str(SHARED_FRAME if SHARED_FRAME.exists() else ROOT / "examples/street.png"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/PROTOCOL.md"))
    a = ap.parse_args()
    image = pathlib.Path(a.frame).read_bytes()
    ctype = "image/png" if a.frame.endswith(".png") else "image/jpeg"

    def v2_body(binary):
        header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                         "parameters": {"binary_data_size": len(image) + 4}}],
                             "outputs": [{"name": n, "parameters": {"binary_data": binary}} for n in ("segmentation", "depth")]}).encode()
        return header + struct.pack("<I", len(image)) + image, {"Inference-Header-Content-Length": str(len(header))}

    bodies = {
        "/v1 predict, multipart (PNG + npy)": ("/v1/predict?outputs=segmentation,depth", image, {"Content-Type": ctype}, v1_arrays),
        "/v2 infer, binary tensors": ("/v2/models/default/infer", *v2_body(True), v2_arrays),
        "/v2 infer, JSON data": ("/v2/models/default/infer", *v2_body(False), v2_arrays),
    }
    s = Server("--workers", "1", "--threads-per-worker", str(a.threads))
    times = {k: [] for k in bodies}
    decode = {k: [] for k in bodies}
    sizes = {}
    triton = []
    try:
        import tritonclient.http as tritonhttp
        tc = tritonhttp.InferenceServerClient(f"127.0.0.1:{s.port}", network_timeout=120)
        tin = tritonhttp.InferInput("image", [1], "BYTES")
        tin.set_data_from_numpy(np.array([image], dtype=object))
        touts = [tritonhttp.InferRequestedOutput(n) for n in ("segmentation", "depth")]
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)

        def run(name):
            path, body, headers, parse = bodies[name]
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            t1 = time.perf_counter()
            assert r.status == 200, (name, r.status, data[:300])
            seg, depth = parse(r.getheader("Content-Type") if name.startswith("/v1") else r.getheader("Inference-Header-Content-Length"), data)
            t2 = time.perf_counter()
            sizes[name] = len(data)
            return (t1 - t0) * 1e3, (t2 - t1) * 1e3, seg, depth

        reference = None
        for name in bodies:  # warm-up, and every path gives the same arrays
            _, _, seg, depth = run(name)
            if reference is None:
                reference = (seg, depth)
            assert np.array_equal(seg, reference[0]) and np.abs(depth - reference[1]).max() <= 1e-5, name
        tc.infer("default", [tin], outputs=touts)
        for rnd in range(a.rounds):
            for name in bodies:
                # JSON data is far slower: fewer runs of it are enough to know its median.
                for _ in range(a.per_round if "JSON" not in name else max(1, a.per_round // 3)):
                    t, d, _, _ = run(name)
                    times[name].append(t)
                    decode[name].append(d)
            for _ in range(a.per_round):
                t0 = time.perf_counter()
                r = tc.infer("default", [tin], outputs=touts)
                r.as_numpy("segmentation"), r.as_numpy("depth")
                triton.append((time.perf_counter() - t0) * 1e3)
            v1 = statistics.median(times["/v1 predict, multipart (PNG + npy)"])
            v2 = statistics.median(times["/v2 infer, binary tensors"])
            print(f"round {rnd + 1}/{a.rounds}: /v1 {v1:.1f} ms, /v2 binary {v2:.1f} ms, tritonclient {statistics.median(triton):.1f} ms",
                  flush=True)
    finally:
        s.stop()

    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))]
    v1 = statistics.median(times["/v1 predict, multipart (PNG + npy)"])
    lines = [
        "# /v2 infer against /v1 predict (generated by benchmarks/protocol.py; do not edit)",
        "",
        f"Machine: {platform.machine()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; "
        f"frame {pathlib.Path(a.frame).name} ({len(image)} bytes), outputs segmentation + depth, 1 worker x {a.threads} threads; "
        f"{a.rounds} interleaved rounds; one keep-alive loopback connection (http.client) for the first three rows.",
        "Latency: request sent to answer read. Client decode: answer bytes to numpy arrays (multipart parse + PNG + npy, "
        "or JSON header + frombuffer / JSON lists).",
        "",
        "| path | median ms | p90 ms | x /v1 | answer bytes | client decode ms | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in bodies:
        m = statistics.median(times[name])
        lines.append(f"| {name} | {m:.1f} | {pct(times[name], 0.9):.1f} | {m / v1:.3f} | {sizes[name]:,} | "
                     f"{statistics.median(decode[name]):.1f} | {len(times[name])} |")
    m = statistics.median(triton)
    lines.append(f"| /v2 infer through tritonclient (binary; arrays included) | {m:.1f} | {pct(triton, 0.9):.1f} | {m / v1:.3f} | "
                 f"{sizes['/v2 infer, binary tensors']:,} | - | {len(triton)} |")
    lines.append("")
    pathlib.Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
