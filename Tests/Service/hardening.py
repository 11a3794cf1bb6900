"""Probes for the findings of the hardening issue (#14): each sends what an attacker would and returns
what it saw, so that Tests/Service/test_hardening.py can assert on the current build and
benchmarks/hardening.py can print the same observations for an older binary beside it."""
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib

import cv2
import numpy as np

from service import HYDRA, Server, parse_responses, raw

MiB = 1 << 20


def alive(server):
    return server.proc.poll() is None


def status_of(port, path="/healthz", timeout=5):
    """Status of a GET, or a word saying why there was none."""
    try:
        out = raw(port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode(), timeout=timeout)
    except OSError as e:
        return type(e).__name__
    return int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else ("timeout" if not out else "garbled")


def eventually(port, path="/healthz", seconds=5):
    """The status of GET `path` once it is 200, or the last one after `seconds` of asking."""
    deadline = time.monotonic() + seconds
    while True:
        status = status_of(port, path, timeout=2)
        if status == 200 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def reset_close(s):
    """Closes with a TCP reset (SO_LINGER 0), as a hostile client does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def connect(port, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


# 1. Expect: 100-continue, a malformed chunked body, then a reset.

EXPECT_RESET = {
    "POST chunk size zz": b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n",
    "POST chunk size 7fffffff": b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n",
    "GET /healthz chunk size zz": b"GET /healthz HTTP/1.1\r\nHost: t\r\n",
}


def expect_then_reset(server, tries=20):
    """Sends each variant `tries` times and resets, half of the times at once (so the server's
    100 Continue and error answer are written to a reset socket), half after reading the 100
    Continue. Returns 'alive' or how the process ended."""
    for name, head in EXPECT_RESET.items():
        size = b"7fffffff" if "7fffffff" in name else b"zz"
        for i in range(tries):
            try:
                s = connect(server.port, timeout=2)
                s.sendall(head + b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
                if i % 2:
                    try:
                        s.recv(64)
                    except OSError:
                        pass
                s.sendall(size + b"\r\n" + b"x" * 64)
                reset_close(s)
            except OSError:
                pass
            time.sleep(0.01)
            if not alive(server):
                return f"died on '{name}' (exit {server.proc.wait()})"
    time.sleep(0.3)
    return "alive" if alive(server) else f"died (exit {server.proc.wait()})"


# 2. Refused requests followed by a reset; refusals over the connection cap.

REFUSED = [
    b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789",
]


def refused_then_reset(server, clients=530):
    """`clients` one-shot clients each send a refused request and reset at once. Returns the open
    descriptors before and one second after, and what /healthz answers then."""
    before = server.open_fds()
    for i in range(clients):
        try:
            s = connect(server.port, timeout=2)
            s.sendall(REFUSED[i % len(REFUSED)])
            reset_close(s)
        except OSError:
            pass
    time.sleep(1)
    return {"fds_before": before, "fds_after": server.open_fds(), "healthz": status_of(server.port)}


def over_cap_upload(server, cap, tries=20, body=120_000):
    """With `cap` idle connections open, a client uploads `body` bytes: counts how many of `tries`
    read the 503 rather than a reset. The server must run with --max-connections `cap`."""
    idle = [connect(server.port) for _ in range(cap)]
    time.sleep(0.3)
    answered = 0
    try:
        for _ in range(tries):
            s = connect(server.port)
            try:
                request = (b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                           + f"Content-Length: {body}\r\n\r\n".encode() + b"\0" * body)
                for i in range(0, len(request), 4096):  # as an uploading client writes
                    s.sendall(request[i:i + 4096])
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                answered += data.startswith(b"HTTP/1.1 503")
            except OSError:
                pass
            finally:
                s.close()
    finally:
        for s in idle:
            s.close()
    return answered


# 3-4. Memory: one large frame, concurrent uploads, idle connections.

def zeros_png(width, height):
    return cv2.imencode(".png", np.zeros((height, width, 3), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def post(port, target, body, ctype="image/png", timeout=120):
    s = connect(port, timeout=timeout)
    s.sendall(f"POST {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {ctype}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    data = b""
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    return parse_responses(data)[0] if data.startswith(b"HTTP/1.1") else (None, {}, data)


def large_frame(server, width=5000, height=4000, outputs="segmentation,depth"):
    """Sends one frame of width x height; returns status, seconds, the summary's network input and
    note, and RSS at its peak during the request and settled two seconds after."""
    body = zeros_png(width, height)
    rss0 = server.rss_kib()
    t = time.monotonic()
    status, headers, content = post(server.port, f"/v1/predict?outputs={outputs},summary", body, timeout=300)
    seconds = time.monotonic() - t
    summary = {}
    if status == 200:
        b = headers["content-type"].split("boundary=")[1].encode()
        part = [p for p in content.split(b"--" + b) if b"application/json" in p[:300]]
        if part:
            summary = json.loads(part[0].split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0])
    time.sleep(2)
    return {"status": status, "seconds": round(seconds, 1), "png_bytes": len(body),
            "network_input": summary.get("network_input"), "note": summary.get("note"),
            "rss_before_mib": rss0 >> 10, "peak_mib": server.rss_kib("VmHWM") >> 10, "settled_mib": server.rss_kib() >> 10}


def held_uploads(server, connections=40, sent=31 * MiB, declared=32 * MiB - 1):
    """`connections` clients each declare `declared` bytes, send `sent` and hold back the rest.
    Returns peak and settled RSS and how many were refused with 503 before their body was read."""
    sockets, refused = [], 0
    chunk = b"\0" * MiB
    for _ in range(connections):
        s = connect(server.port, timeout=30)
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                  + f"Content-Length: {declared}\r\n\r\n".encode())
        sockets.append(s)
    senders = []

    def send(s):
        try:
            for _ in range(sent // MiB):
                s.sendall(chunk)
        except OSError:
            pass
    for s in sockets:
        t = threading.Thread(target=send, args=(s,), daemon=True)
        t.start()
        senders.append(t)
    for t in senders:
        t.join(120)
    time.sleep(1)
    held = server.rss_kib() >> 10
    for s in sockets:
        s.settimeout(0.2)
        try:
            refused += s.recv(64).startswith(b"HTTP/1.1 503")
        except OSError:
            pass
        s.close()
    time.sleep(2)
    return {"refused_503": refused, "held_mib": held, "peak_mib": server.rss_kib("VmHWM") >> 10,
            "settled_mib": server.rss_kib() >> 10, "healthz": status_of(server.port)}


def idle_connections(server, connections=512):
    """Opens `connections` idle keep-alive connections; returns RSS while they are open and after."""
    sockets = []
    for _ in range(connections):
        try:
            sockets.append(connect(server.port))
        except OSError:
            break
    time.sleep(1)
    held = server.rss_kib() >> 10
    for s in sockets:
        s.close()
    time.sleep(1)
    return {"opened": len(sockets), "held_mib": held, "peak_mib": server.rss_kib("VmHWM") >> 10,
            "settled_mib": server.rss_kib() >> 10}


# 5. A zlib bomb: a small PNG whose image data inflates far beyond its pixels.

def zlib_bomb(width=64, height=48, inflated=8 << 30):
    """A PNG of width x height whose one zlib stream inflates to `inflated` bytes: the rows, then zeros."""
    rows = (b"\0" + b"\x80" * (3 * width)) * height
    z = zlib.compressobj(9)
    parts = [z.compress(rows)]
    block = b"\0" * (64 * MiB)
    for _ in range((inflated - len(rows)) // len(block)):
        parts.append(z.compress(block))
    parts.append(z.flush())
    data = b"".join(parts)

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def bomb_request(server, bomb):
    t = time.monotonic()
    status, _, _ = post(server.port, "/v1/predict?outputs=segmentation", bomb)
    return {"status": status, "seconds": round(time.monotonic() - t, 2), "png_mb": round(len(bomb) / 1e6, 2)}


# 6. SIGHUP with a request in flight.

def sighup_in_flight(server, frame):
    result = {}

    def request():
        result["status"] = post(server.port, "/v1/predict?outputs=segmentation,depth", frame)[0]
    t = threading.Thread(target=request)
    t.start()
    time.sleep(0.05)
    server.proc.send_signal(signal.SIGHUP)
    t.join(60)
    time.sleep(0.3)
    return {"in_flight": result.get("status"), "process": "alive" if alive(server) else f"exit {server.proc.wait()}",
            "after": status_of(server.port) if alive(server) else None}


# 7-11, 15. Framing, routing, trailers, parameters, Host, HTTP/1.0 expectations.

def statuses(port, data, timeout=3):
    out = raw(port, data, timeout=timeout)
    try:
        return [r[0] for r in parse_responses(out)]
    except (ValueError, IndexError):
        return ["garbled"]


def framing_cases(frame):
    """(name, bytes) of the requests findings 7-11 name; `frame` is a small PNG."""
    n = len(frame)
    head = "POST /v1/predict?outputs=segmentation HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
    chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
    get = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    return [
        ("chunk size line '<hex> zz'", chunked + f"{n:x} zz\r\n".encode() + frame + b"\r\n0\r\n\r\n"),
        ("two bytes for the CRLF after chunk data, a request behind",
         chunked + f"{n:x}\r\n".encode() + frame + b"XX0\r\n\r\n" + get),
        ("bare LF line endings", (head.replace("\r\n", "\n") + f"Content-Length: {n}\n\n").encode() + frame),
        ("obs-folded Transfer-Encoding",
         (head + "Transfer-Encoding:\r\n chunked\r\n\r\n").encode() + f"{n:x}\r\n".encode() + frame + b"\r\n0\r\n\r\n"),
        ("POST /v1%2Fpredict", f"POST /v1%2Fpredict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: {n}\r\n\r\n".encode() + frame),
        ("POST /v1/models/default%2Fpredict",
         f"POST /v1/models/default%2Fpredict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: {n}\r\n\r\n".encode() + frame),
        ("GET /v2/models/default%2Fready", b"GET /v2/models/default%2Fready HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("fx=7%00garbage", (head.replace("outputs=segmentation", "outputs=segmentation&fx=7%00garbage")
                            + f"Content-Length: {n}\r\n\r\n").encode() + frame),
        ("colour_by=image&color_by=class", (head.replace("outputs=segmentation", "outputs=overlay&colour_by=image&color_by=class")
                                            + f"Content-Length: {n}\r\n\r\n").encode() + frame),
        ("Host: a@b:c", b"GET /healthz HTTP/1.1\r\nHost: a@b:c\r\n\r\n"),
    ]


def trailer_accept(port, frame):
    """A chunked request whose trailer says Accept: image/png: the content type of the answer."""
    data = (b"POST /v1/predict?outputs=segmentation,depth HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(frame):x}\r\n".encode() + frame + b"\r\n0\r\nAccept: image/png\r\nX-Pad: 1\r\n\r\n")
    r = parse_responses(raw(port, data))[0]
    return f"{r[0]} {r[1].get('content-type', '').split(';')[0]}"


def http10_expect(port):
    """Whether an HTTP/1.0 request with Expect: 100-continue is sent a 100 Continue."""
    s = connect(port, timeout=1)
    s.sendall(b"POST /v1/predict HTTP/1.0\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 10\r\n"
              b"Expect: 100-continue\r\n\r\n")
    try:
        first = s.recv(64)
    except OSError:
        first = b""
    s.close()
    return "100 Continue sent" if first.startswith(b"HTTP/1.1 100") else "no 100 Continue"


# 12-13. Model files.

def start_outcome(args, binary=None, wait=10):
    """Starts `hydra serve` with `args`; returns how start-up went within `wait` seconds."""
    p = subprocess.Popen([str(binary or HYDRA), "serve", "--host", "127.0.0.1", "--port", "0", *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=wait)
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return {"outcome": f"exit {p.returncode}", "message": last[0][:300]}
    except subprocess.TimeoutExpired:
        p.kill()
        err = p.communicate()[1].decode(errors="replace")
        ready = '"ready"' in err
        return {"outcome": "serving" if ready else f"no answer after {wait} s", "message": err.strip().splitlines()[-1][:300] if err.strip() else ""}


def fifo_model_dir(binary=None):
    with tempfile.TemporaryDirectory() as d:
        os.mkfifo(os.path.join(d, "x.safetensors"))
        return start_outcome(["--model-dir", d], binary)


def with_metadata(source, out, **changes):
    """Copies a safetensors file with changed `__metadata__` entries (JSON-encoded values)."""
    data = pathlib.Path(source).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    for k, v in changes.items():
        header["__metadata__"][k] = json.dumps(v)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    pathlib.Path(out).write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n:])


def bad_colours_model(source, binary=None):
    """Serves a model whose class colours have 2 components and asks it for a segmentation PNG."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bad.safetensors")
        header = json.loads(pathlib.Path(source).read_bytes()[8:8 + struct.unpack("<Q", pathlib.Path(source).read_bytes()[:8])[0]])
        classes = len(json.loads(header["__metadata__"]["classes"]))
        with_metadata(source, path, colours=[[1, 2]] * classes)
        outcome = start_outcome(["--model", f"bad={path}"], binary, wait=5)
        if outcome["outcome"] != "serving":
            return f"refused at start: {outcome['message']}"
        s = Server("--model", f"bad={path}", binary=binary)
        try:
            status = post(s.port, "/v1/predict?outputs=segmentation", zeros_png(64, 48))[0]
            time.sleep(0.3)
            return f"started; predict -> {status}; process {'alive' if alive(s) else f'exit {s.proc.wait()}'}"
        finally:
            s.stop()


# 14. A log reader that never reads.

def unread_stderr(binary=None, requests=400, flood=0):
    """Serves with stderr a pipe nobody reads; sends `requests` logged requests one by one, then
    `flood` more pipelined on one connection, then asks /healthz and reads the dropped-lines counter."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = subprocess.Popen([str(binary or HYDRA), "serve", "--host", "127.0.0.1", "--port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if status_of(port, timeout=1) == 200:
                break
            time.sleep(0.1)
        answered = 0
        while answered < requests and status_of(port, "/no-such-endpoint", timeout=2) == 404:
            answered += 1
        result = {"answered_404": answered}
        if flood:
            s = connect(port, timeout=5)
            batch = b"GET /no-such-endpoint HTTP/1.1\r\nHost: t\r\n\r\n" * 500
            flooded = 0
            try:
                for _ in range(flood // 500):
                    s.sendall(batch)
                    got = b""
                    while got.count(b"HTTP/1.1 404") < 500:
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            break
                        got += chunk
                    flooded += got.count(b"HTTP/1.1 404")
            except OSError:
                pass
            s.close()
            result["flooded_404"] = flooded
            metrics = raw(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=3).decode()
            dropped = [l for l in metrics.splitlines() if l.startswith("hydra_log_lines_dropped_total")]
            result["log_lines_dropped"] = float(dropped[0].split()[-1]) if dropped else None
        result["healthz_after"] = status_of(port, timeout=3)
        return result
    finally:
        p.kill()
        p.wait()
