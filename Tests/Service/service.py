"""Starts `hydra serve` on a free port and talks to it over real sockets (helpers for Tests/Service)."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HYDRA = pathlib.Path(os.environ.get("HYDRA", ROOT / ".build/release/hydra"))


class Server:
    def __init__(self, *flags, env=None, binary=None):
        binary = pathlib.Path(binary or HYDRA)
        if not binary.exists():
            pytest.fail(f"{binary} not found: build first (make build)")
        e = dict(os.environ, **(env or {}))
        self.proc = subprocess.Popen([str(binary), "serve", "--host", "127.0.0.1", "--port", "0", *map(str, flags)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        self.log = []
        self.port = None
        self._ready = threading.Event()
        # A thread reads the log from the start: select() on a buffered pipe misses lines already
        # in Python's buffer, and a full pipe would block the server's writes.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        if not self._ready.wait(30) or self.port is None:
            self.proc.kill()
            self._reader.join(5)
            raise RuntimeError("server did not become ready:\n" + "\n".join(map(str, self.log)))

    def _drain(self):
        for raw in self.proc.stderr:
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = {"raw": raw.decode(errors="replace")}
            self.log.append(entry)
            if entry.get("msg") == "ready" and self.port is None:
                self.port = int(entry["address"].rsplit(":", 1)[1])
                self._ready.set()
        self._ready.set()  # the process ended

    def logs(self):
        """Log lines so far."""
        return list(self.log)

    def wait_log(self, matches, timeout=15):
        """Polls the log until a line satisfies `matches` (a msg string or a predicate); returns it."""
        test = matches if callable(matches) else (lambda line: line.get("msg") == matches)
        line = wait_for(lambda: next((l for l in list(self.log) if test(l)), None), timeout, f"log line {matches!r}")
        return line

    def metric(self, name, **labels):
        """The value of one series on /metrics (0 when it is not there)."""
        return metric(self.port, name, **labels)

    def rss_kib(self, field="VmRSS"):
        """Resident memory now (VmRSS) or at its peak so far (VmHWM), in KiB."""
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_for(condition, timeout=15, what="condition"):
    """Polls `condition` until it returns something truthy (returned), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def metric(port, name, **labels):
    """The value of the series `name{labels}` on /metrics; labels given must match, others may be there."""
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    finally:
        c.close()
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in data.split(b"\r\n\r\n", 1)[1].decode().splitlines():
        series, _, value = line.rpartition(" ")
        if (series == name or series.startswith(name + "{")) and all(w in series for w in want):
            return float(value)
    return 0.0


def raw(port, data, timeout=10, read=True):
    """Sends bytes on a fresh socket and returns everything the server sends until it closes or goes quiet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
    s.close()
    return out


def parse_responses(data):
    """Splits a byte stream into (status, headers, body) HTTP responses (Content-Length framed)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", 0)) if status != 100 else 0
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


def split_multipart(content_type, body):
    """Parts of a multipart body as (headers, bytes)."""
    boundary = content_type.split("boundary=")[1].strip('"').encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk[2:].partition(b"\r\n\r\n")
        headers = {}
        for l in head.decode().split("\r\n"):
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        parts.append((headers, content[:-2]))
    return parts
