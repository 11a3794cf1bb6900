"""Slow and stuck clients: trickled headers and bodies, responses never read, too many
connections. Normal clients keep being served; slow connections are timed out; the cap holds."""
import http.client
import socket
import threading
import time

import cv2
import numpy as np

from service import Server, metric, parse_responses, wait_for

FRAME = cv2.imencode(".png", (np.random.default_rng(3).random((96, 320, 3)) * 255).astype(np.uint8))[1].tobytes()


def normal_request(port):
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v1/predict?outputs=segmentation", body=FRAME, headers={"Content-Type": "image/png"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, time.time() - t0


def test_trickling_clients_are_timed_out_while_normal_clients_are_served():
    s = Server("--max-connections", "400", "--request-timeout", "3", "--idle-timeout", "3")
    socks = []
    try:
        head = (b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: "
                + str(len(FRAME)).encode() + b"\r\n\r\n")
        for i in range(300):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            # Half trickle headers (slowloris), half trickle the body.
            c.sendall(b"GET /healthz HTTP/1.1\r\nHo" if i % 2 else head + FRAME[:100])
            socks.append(c)
        results = []
        t_end = time.time() + 2.5
        while time.time() < t_end:
            for c in socks[::10]:
                try:
                    c.send(b"a")  # one more byte now and then: never a whole request
                except OSError:
                    pass
            results.append(normal_request(s.port))
        assert results and all(st == 200 for st, _ in results), results
        assert max(t for _, t in results) < 5, results
        timed_out = 0  # each recv below waits for the server's 408 or close (the 2 s request timeout)
        for c in socks:
            c.settimeout(5)
            try:
                data = c.recv(65536)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 408") or data == b"":
                timed_out += 1
        assert timed_out == len(socks), f"only {timed_out} of {len(socks)} slow connections were timed out"
        assert normal_request(s.port)[0] == 200
    finally:
        for c in socks:
            c.close()
        assert s.stop() == 0


def open_connections(port):
    return metric(port, "hydra_open_connections")


def test_clients_that_never_read_are_dropped_after_the_write_timeout():
    big = cv2.imencode(".png", (np.random.default_rng(4).random((370, 1226, 3)) * 255).astype(np.uint8))[1].tobytes()
    s = Server("--write-timeout", "2", "--idle-timeout", "2", "--queue-size", "64", "--max-pixels", "1000000")
    socks = []
    try:
        # An ASCII point cloud of a 1226x370 frame is ~15 MB: far more than the socket buffers hold.
        req = (b"POST /v1/predict?outputs=pointcloud&ply_format=ascii&fast=true HTTP/1.1\r\nHost: t\r\n"
               b"Content-Type: image/png\r\nContent-Length: " + str(len(big)).encode() + b"\r\n\r\n" + big)
        for _ in range(6):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(req)
            socks.append(c)  # and never read
        for _ in range(3):
            assert normal_request(s.port)[0] == 200
        deadline = time.time() + 60
        while time.time() < deadline and open_connections(s.port) > 1:
            time.sleep(0.5)
        assert open_connections(s.port) <= 1, "connections that never read were not dropped"
        assert normal_request(s.port)[0] == 200
    finally:
        for c in socks:
            c.close()
        assert s.stop() == 0


def test_connection_cap_refuses_with_503():
    s = Server("--max-connections", "20", "--idle-timeout", "30")
    socks = []
    try:
        for _ in range(20):
            socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=10))
        # No wait: the loop accepts connections in the order they arrived, so these 20 come first.
        extra = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        data = b""
        while chunk := extra.recv(65536):
            data += chunk
        [(status, headers, body)] = parse_responses(data)
        assert status == 503 and headers["retry-after"] == "1" and b"too many open connections" in body
        for c in socks[:5]:
            c.close()
        wait_for(lambda: normal_request(s.port)[0] == 200, what="a place freed by the closed connections")
    finally:
        for c in socks:
            c.close()
        assert s.stop() == 0
