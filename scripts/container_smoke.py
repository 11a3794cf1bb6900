#!/usr/bin/env python3
"""make container-smoke: runs the image as Kubernetes would (read-only root, no capabilities,
non-root), with a model mounted at /models, waits for /readyz, POSTs a frame and checks the
multipart answer, then stops it with SIGTERM while a request is in flight: that request must be
answered (drained) and the process must exit 0.

    python3 scripts/container_smoke.py [--image localhost/hydra:dev] [--frame examples/scene.jpg]
"""
import argparse
import email.parser
import json
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "hydra-smoke"


def podman(*args, check=True):
    p = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"podman {' '.join(args)} failed: {p.stderr.strip()}")
    return p.stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, data, ctype):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype}, method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def parts_of(ctype, body):
    msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    assert msg.is_multipart(), "the answer is not multipart"
    return {p.get_param("name", header="content-disposition") or p.get("Content-Id") or p.get_content_type(): p
            for p in msg.get_payload()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="localhost/hydra:dev")
    ap.add_argument("--frame", default=str(ROOT / "examples/scene.jpg"))
    a = ap.parse_args()
    frame = pathlib.Path(a.frame).read_bytes()
    models = ROOT / "out/container-models"
    models.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Sources/HydraEngine/Resources/default.safetensors", models / "street.safetensors")
    port = free_port()
    podman("rm", "-f", NAME, check=False)
    t0 = time.time()
    cid = podman("run", "-d", "--name", NAME, "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                 "-p", f"127.0.0.1:{port}:8080", "-v", f"{models}:/models:ro", "-e", "HYDRA_DRAIN_TIMEOUT=20", a.image)
    print(f"started {cid[:12]} ({a.image}) on 127.0.0.1:{port}: read-only root, no capabilities, /models mounted")
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                    ready = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.1)
        else:
            print(podman("logs", NAME, check=False))
            sys.exit("not ready after 60 s")
        print(f"/readyz after {time.time() - t0:.1f} s: {ready}")
        assert ready["models"] == ["street"], ready
        uid = podman("exec", NAME, "sh", "-c", "awk '/^Uid/{print $2}' /proc/1/status")
        print(f"PID 1 runs as uid {uid}")
        assert uid == "10001", uid

        status, ctype, body = post(base + "/v1/predict?outputs=segmentation,depth", frame, "image/jpeg")
        parts = parts_of(ctype, body)
        seg, depth = parts["segmentation"], parts["depth"]
        png = seg.get_payload(decode=True)
        w, h = struct.unpack(">II", png[16:24])
        npy = depth.get_payload(decode=True)
        print(f"POST {len(frame)} B frame -> {status} {ctype.split(';')[0]}, {len(body)} B: "
              f"segmentation {seg.get_content_type()} {w}x{h} ({len(png)} B), depth {depth.get_content_type()} "
              f"X-Shape {depth['X-Shape']} ({len(npy)} B)")
        assert status == 200 and seg.get_content_type() == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
        assert depth.get_content_type() == "application/x-npy" and npy[:6] == b"\x93NUMPY"
        assert depth["X-Shape"] == f"{h},{w}", depth["X-Shape"]

        # SIGTERM with a request in flight: it is answered, then the process exits 0.
        result = {}
        def inflight():
            try:
                result["status"] = post(base + "/v1/models/street/predict?outputs=segmentation,depth,pointcloud", frame, "image/jpeg")[0]
            except Exception as e:  # noqa: BLE001
                result["error"] = repr(e)
        th = threading.Thread(target=inflight)
        th.start()
        time.sleep(0.05)
        t1 = time.time()
        podman("stop", "-t", "30", NAME)
        th.join(60)
        code = podman("inspect", NAME, "--format", "{{.State.ExitCode}}")
        print(f"podman stop (SIGTERM) took {time.time() - t1:.1f} s; in-flight request: {result}; exit code {code}")
        # The container's stderr (the JSON log) comes back on podman's stderr.
        logs = subprocess.run(["podman", "logs", NAME], capture_output=True, text=True).stderr
        tail = [line for line in logs.splitlines() if "drain" in line]
        print("log: " + "\n     ".join(tail))
        assert any('"drained; exiting"' in line for line in tail), logs[-2000:]
        assert result.get("status") == 200, result
        assert code == "0", code
        print("container-smoke: passed")
    finally:
        podman("rm", "-f", NAME, check=False)


if __name__ == "__main__":
    main()
