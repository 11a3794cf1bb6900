"""The HTTP service over real sockets on 127.0.0.1."""
import concurrent.futures as cf
import http.client
import io
import json
import signal
import socket
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from service import HYDRA, ROOT, Server, parse_responses, raw, split_multipart, wait_for


def png(w, h, seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


FRAME = png(320, 96)
SMALL = png(64, 48)


def post(port, path, body, ctype="image/png", headers=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", path, body=body, headers={"Content-Type": ctype, **(headers or {})})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def problem(status, headers, body, want):
    assert status == want, (status, body[:300])
    assert headers["content-type"] == "application/problem+json"
    p = json.loads(body)
    assert p["status"] == want and p["detail"] and p["title"]
    return p


def form(field, data, filename="frame.png", ctype="image/png", extra=b""):
    b = "hydra-test-boundary"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n" + extra + f"--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


# ---- probes and model listing

def test_probes_and_models(server):
    for path in ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/v2/models/default/ready"]:
        assert get(server.port, path)[0] == 200, path
    s, h, b = get(server.port, "/v1/models")
    m = json.loads(b)["models"][0]
    assert m["name"] == "default" and m["default"] and m["preset"] == "kitti" and m["trained"] is True
    assert [c["name"] for c in m["classes"]] == ["sky", "building", "road", "sidewalk", "vegetation", "car"]
    assert m["classes"][2]["colour"] == [128, 64, 128]


def test_open_inference_protocol_health_and_metadata(server):
    """What KServe's and Triton's clients read: bodies, versions and the {"error": ...} shape."""
    def v2(path, status=200):
        s, h, b = get(server.port, path)
        assert s == status and h["content-type"] == "application/json", (path, s, b)
        return json.loads(b)
    assert v2("/v2/health/live") == {"live": True}
    assert v2("/v2/health/ready") == {"ready": True}
    meta = v2("/v2")
    assert meta["name"] == "hydra" and meta["version"] and isinstance(meta["extensions"], list)
    for path in ["/v2/models/default", "/v2/models/default/versions/1"]:
        m = v2(path)
        assert m["name"] == "default" and m["versions"] == ["1"] and m["inputs"][0]["name"] == "image", path
    for path in ["/v2/models/default/ready", "/v2/models/default/versions/1/ready"]:
        assert v2(path) == {"name": "default", "ready": True}, path
    for path in ["/v2/models/nope", "/v2/models/nope/ready", "/v2/models/default/versions/2", "/v2/models/default/versions/2/ready",
                 "/v2/models/default/versions", "/v2/nothing"]:
        err = v2(path, 404)
        assert list(err) == ["error"] and err["error"], path
    assert "version" in v2("/v2/models/default/versions/2", 404)["error"]


def test_metrics_are_prometheus_text(server):
    post(server.port, "/v1/predict?outputs=segmentation", SMALL)
    s, h, b = get(server.port, "/metrics")
    text = b.decode()
    assert s == 200 and h["content-type"].startswith("text/plain; version=0.0.4")
    for name in ["hydra_requests_total", "hydra_queue_wait_seconds_bucket", "hydra_network_seconds_bucket",
                 "hydra_stage_seconds_bucket", "hydra_request_duration_seconds_bucket", "hydra_queue_depth",
                 "hydra_inflight_requests", "hydra_busy_workers", "hydra_received_bytes_total", "hydra_sent_bytes_total",
                 "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"]:
        assert name in text, name
    assert 'hydra_requests_total{model="default",route="/v1/predict",code="200"}' in text


# ---- predict

def test_multipart_mixed_with_three_parts(server):
    s, h, b = post(server.port, "/v1/predict?outputs=segmentation,depth,pointcloud", FRAME, headers={"X-Request-Id": "abc-123"})
    assert s == 200 and h["content-type"].startswith("multipart/mixed; boundary=")
    assert h["x-request-id"] == "abc-123"
    parts = split_multipart(h["content-type"], b)
    assert [p[0]["content-type"] for p in parts] == ["image/png", "application/x-npy", "model/x-ply"]
    assert ['name="segmentation"' in p[0]["content-disposition"] for p in parts] == [True, False, False]
    seg = Image.open(io.BytesIO(parts[0][1]))
    assert seg.mode == "P" and seg.size == (320, 96)
    depth = np.load(io.BytesIO(parts[1][1]))
    assert depth.shape == (96, 320) and parts[1][0]["x-shape"] == "96,320" and parts[1][0]["x-depth-unit"] == "m"
    assert parts[2][1].startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert int(parts[2][0]["x-points"]) > 0


def test_form_data_upload_and_form_data_response(server):
    body, ctype = form("image", FRAME)
    s, h, b = post(server.port, "/v1/predict", body, ctype, headers={"Accept": "multipart/form-data"})
    assert s == 200 and h["content-type"].startswith("multipart/form-data; boundary=")
    parts = split_multipart(h["content-type"], b)
    assert [p[0]["content-disposition"].split(";")[0] for p in parts] == ["form-data"] * 3
    summary = json.loads(parts[2][1])
    assert summary["input"] == {"width": 320, "height": 96}
    assert "queue_wait" in summary["timings_ms"] and "network" in summary["timings_ms"]


def test_single_output_or_accept_gives_a_bare_body(server):
    s, h, b = post(server.port, "/v1/predict?outputs=segmentation", FRAME)
    assert s == 200 and h["content-type"] == "image/png" and b.startswith(b"\x89PNG")
    s, h, b = post(server.port, "/v1/predict?outputs=segmentation,depth", FRAME, headers={"Accept": "application/x-npy"})
    assert s == 200 and h["content-type"] == "application/x-npy" and np.load(io.BytesIO(b)).shape == (96, 320)
    s, h, b = post(server.port, "/v1/predict?outputs=segmentation,overlay", FRAME, headers={"Accept": "image/png"})
    problem(s, h, b, 406)


def test_depth_formats_and_parameters(server):
    s, h, b = post(server.port, "/v1/predict?outputs=depth&depth_format=png16&depth_scale=800", FRAME)
    assert s == 200 and h["x-depth-scale"] == "800.0"
    assert np.array(Image.open(io.BytesIO(b))).dtype == np.uint16 or Image.open(io.BytesIO(b)).mode.startswith("I")
    s, h, b = post(server.port, "/v1/predict?outputs=pointcloud&stride=4&drop_classes=road&ply_format=ascii&colour_by=class", FRAME)
    assert s == 200 and b.startswith(b"ply\nformat ascii 1.0\n")
    s, h, b = post(server.port, "/v1/predict?outputs=depth&fast=true&depth_format=f32", FRAME)
    assert s == 200 and len(b) == 320 * 96 * 4 and h["x-dtype"] == "float32-le"


def test_concurrent_clients_get_identical_results(server):
    def one(_):
        return post(server.port, "/v1/predict?outputs=segmentation", FRAME)
    with cf.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(16)))
    assert all(r[0] == 200 for r in results)
    assert len({r[2] for r in results}) == 1


# ---- HTTP/1.1 mechanics

def test_keep_alive_reuses_the_connection(server):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    ports = set()
    for _ in range(3):
        c.request("POST", "/v1/predict?outputs=segmentation", body=SMALL, headers={"Content-Type": "image/png"})
        r = c.getresponse()
        assert r.status == 200
        r.read()
        ports.add(c.sock.getsockname()[1])
    c.request("GET", "/healthz")
    assert c.getresponse().status == 200
    assert len(ports) == 1
    c.close()


def test_pipelined_requests_are_answered_in_order(server):
    reqs = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"POST /v1/predict?outputs=segmentation HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: "
            + str(len(SMALL)).encode() + b"\r\n\r\n" + SMALL
            + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    responses = parse_responses(raw(server.port, reqs))
    assert [r[0] for r in responses] == [200, 200, 404, 200]
    assert responses[1][2].startswith(b"\x89PNG")


def test_chunked_request_body(server):
    chunks = b"".join(b"%x\r\n" % len(SMALL[i:i + 1000]) + SMALL[i:i + 1000] + b"\r\n" for i in range(0, len(SMALL), 1000))
    req = (b"POST /v1/predict?outputs=segmentation HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    [(s, h, b)] = parse_responses(raw(server.port, req))
    assert s == 200 and b.startswith(b"\x89PNG")


def test_expect_100_continue(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"POST /v1/predict?outputs=segmentation HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                 b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: " + str(len(SMALL)).encode() + b"\r\n\r\n")
    assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    sock.sendall(SMALL)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    assert parse_responses(data)[0][0] == 200


# ---- every error status

def test_error_statuses(server):
    p = server.port
    problem(*post(p, "/v1/predict?fx=nan", FRAME), 400)
    problem(*post(p, "/v1/predict?outputs=segmentation&outputs=depth", FRAME), 400)
    problem(*post(p, "/v1/predict?stride=0", FRAME), 400)
    problem(*post(p, "/v1/predict?wat=1", FRAME), 400)
    problem(*post(p, "/v1/predict?outputs=normals", FRAME), 400)
    problem(*post(p, "/v1/models/..%2F..%2Fetc%2Fpasswd/predict", FRAME), 404)
    problem(*post(p, "/v1/models/nope/predict", FRAME), 404)
    problem(*post(p, "/nope", FRAME), 404)
    s, h, b = get(p, "/v1/predict")
    problem(s, h, b, 405)
    assert h["allow"] == "POST"
    problem(*post(p, "/v1/predict", FRAME, ctype="text/plain"), 415)
    problem(*post(p, "/v1/predict", b"GIF89a" + b"\0" * 100), 415)
    problem(*post(p, "/v1/predict", FRAME[:200]), 422)
    problem(*post(p, "/v1/predict", png(20, 2000)), 422)
    problem(*post(p, "/v1/predict", *form("other", FRAME)), 422)
    body, ctype = form("image", FRAME, extra=form("image", FRAME)[0].split(b"--hydra-test-boundary--")[0])
    problem(*post(p, "/v1/predict", body, ctype), 422)
    # 411: POST without a length.
    [(s, h, b)] = parse_responses(raw(p, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n\r\n"))
    assert s == 411 and json.loads(b)["status"] == 411
    # 413 judged from Content-Length before any body byte is sent.
    [(s, h, b)] = parse_responses(raw(p, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                         b"Content-Length: 999999999999\r\n\r\n"))
    assert s == 413
    # 431: header flood.
    [(s, h, b)] = parse_responses(raw(p, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n"))
    assert s == 431
    # An unknown method is 405 with the methods this service uses.
    [(s, h, b)] = parse_responses(raw(p, b"BLAH /healthz HTTP/1.1\r\n\r\n"))
    assert s == 405 and h["allow"] == "GET, HEAD, POST"
    # 400: malformed HTTP; both Content-Length and Transfer-Encoding; duplicate Content-Length.
    for bad in [b"GET /healthz HTTP/1.1\r\nNoColonHere\r\n\r\n", b"GET /he\x01lthz HTTP/1.1\r\n\r\n", b"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"POST /v1/predict HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"]:
        [(s, h, b)] = parse_responses(raw(p, bad))
        assert s == 400, bad
    assert get(p, "/healthz")[0] == 200


def test_pixel_limit_is_413(server_factory):
    s = server_factory("--max-pixels", "10000")
    problem(*post(s.port, "/v1/predict", FRAME), 413)
    assert post(s.port, "/v1/predict?outputs=segmentation", SMALL)[0] == 200


def test_slow_request_gets_408_and_idle_connections_close(server_factory):
    s = server_factory("--request-timeout", "1", "--idle-timeout", "1")
    t0 = time.time()
    out = raw(s.port, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\nabc")
    [(status, h, b)] = parse_responses(out)
    assert status == 408 and time.time() - t0 < 5
    t0 = time.time()
    assert raw(s.port, b"") == b"" and time.time() - t0 < 5  # idle connection closed without a word


# ---- overload, deadlines, disconnects

def test_a_client_still_sending_its_body_gets_the_refusal_not_a_reset(server_factory):
    """A 413 is decided from Content-Length before the body is read; the client is still sending 8 MiB.
    Closing with unread bytes would reset the connection and lose the answer (a broken pipe at the
    client, seen in CI); the server lingers and drops what still comes instead."""
    s = server_factory("--max-body-mb", "1")
    body = b"\x89PNG\r\n\x1a\n" + bytes(8 << 20)
    for _ in range(5):
        status, headers, data = post(s.port, "/v1/predict", body)
        assert status == 413 and headers["content-type"] == "application/problem+json", (status, data[:200])
    assert get(s.port, "/healthz")[0] == 200


def test_overload_answers_503_at_once_and_recovers(server_factory):
    s = server_factory("--workers", "1", "--threads-per-worker", "1", "--queue-size", "1")
    big = png(1226, 370, seed=3)

    def one(_):
        t0 = time.time()
        r = post(s.port, "/v1/predict?outputs=segmentation", big)
        return r[0], r[1].get("retry-after"), time.time() - t0
    with cf.ThreadPoolExecutor(20) as ex:
        results = list(ex.map(one, range(20)))
    statuses = [r[0] for r in results]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 2 and statuses.count(503) >= 5, statuses
    assert all(r[1] == "1" for r in results if r[0] == 503)
    fastest_200 = min(r[2] for r in results if r[0] == 200)
    assert all(r[2] < fastest_200 + 0.5 for r in results if r[0] == 503), "503 must come at once"
    assert post(s.port, "/v1/predict?outputs=segmentation", SMALL)[0] == 200
    assert get(s.port, "/readyz")[0] == 200


def test_deadline_in_queue_gives_504(server_factory):
    s = server_factory("--workers", "1", "--threads-per-worker", "1", "--queue-size", "4")
    big = png(1226, 370, seed=4)
    with cf.ThreadPoolExecutor(2) as ex:
        slow = ex.submit(post, s.port, "/v1/predict?outputs=segmentation", big)
        wait_for(lambda: s.metric("hydra_busy_workers") >= 1, what="the first request on the worker")
        quick = ex.submit(post, s.port, "/v1/predict?outputs=segmentation&timeout_ms=5", big)
        assert slow.result()[0] == 200
        problem(*quick.result(), 504)


def test_disconnects_drop_work_and_leave_the_server_healthy(server_factory):
    s = server_factory("--workers", "1", "--threads-per-worker", "1")
    big = png(1226, 370, seed=5)
    # During upload: half the body, then gone.
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: "
                 + str(len(big)).encode() + b"\r\n\r\n" + big[: len(big) // 2])
    sock.close()
    # During inference: whole request, then gone before the answer.
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: "
                     + str(len(big)).encode() + b"\r\n\r\n" + big)
        wait_for(lambda: s.metric("hydra_inflight_requests") >= 1, what="the request admitted")
        sock.close()
    wait_for(lambda: s.metric("hydra_rejections_total", reason="client_gone") >= 1
             and s.metric("hydra_inflight_requests") == 0, what="the abandoned work dropped")
    assert post(s.port, "/v1/predict?outputs=segmentation", SMALL)[0] == 200
    metrics = get(s.port, "/metrics")[2].decode()
    gone = [l for l in metrics.splitlines() if l.startswith('hydra_rejections_total{model="default",reason="client_gone"}')]
    assert gone and float(gone[0].split()[-1]) >= 1, gone
    s.wait_log("client went away")


def test_sigterm_drains_running_work_then_exits_0(server_factory):
    s = server_factory("--workers", "1", "--threads-per-worker", "1", "--drain-timeout", "20")
    big = png(1226, 370, seed=6)
    result = {}

    def slow():
        result["r"] = post(s.port, "/v1/predict?outputs=segmentation,depth", big)
    t = threading.Thread(target=slow)
    t.start()
    wait_for(lambda: s.metric("hydra_busy_workers") >= 1, what="the request on the worker")
    s.proc.send_signal(signal.SIGTERM)
    s.wait_log("draining")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2)
    t.join(30)
    assert result["r"][0] == 200
    assert s.proc.wait(30) == 0
    s.wait_log("drained; exiting")
    msgs = [l.get("msg") for l in s.logs()]
    assert "draining" in msgs and "drained; exiting" in msgs


def test_rss_stays_flat_over_500_requests(server_factory):
    s = server_factory("--workers", "1", "--threads-per-worker", "1")
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)

    def run(n):
        for _ in range(n):
            c.request("POST", "/v1/predict?outputs=segmentation,depth,summary", body=SMALL, headers={"Content-Type": "image/png"})
            r = c.getresponse()
            r.read()
            assert r.status == 200
    run(50)
    before = s.rss_kib()
    run(500)
    growth = s.rss_kib() - before
    print(f"RSS {before} KiB -> {before + growth} KiB over 500 requests")
    assert growth < 8 * 1024, f"RSS grew by {growth} KiB over 500 requests (bound: 8 MiB)"


# ---- configuration and faults

def test_environment_configures_the_server(server_factory):
    s = server_factory(env={"HYDRA_QUEUE_SIZE": "3", "HYDRA_WORKERS": "1"})
    m = json.loads(get(s.port, "/v1/models")[2])["models"][0]
    assert m["queue_size"] == 3 and m["workers"] == 1


@pytest.mark.parametrize("spec,message", [
    ("m=/nonexistent.safetensors", "cannot load model: /nonexistent.safetensors: no such file"),
    ("m=README.md", "invalid safetensors file"),
])
def test_bad_model_at_start_is_a_clear_error(spec, message):
    with pytest.raises(RuntimeError) as e:
        Server("--model", spec)
    assert message in str(e.value)


def _model_file(tmp_path, kind):
    """A damaged copy of the built-in model: cut short, or one tensor with another shape (same size)."""
    import struct
    raw = (ROOT / "Sources/HydraEngine/Resources/default.safetensors").read_bytes()
    path = tmp_path / f"{kind}.safetensors"
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
        return path
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    name = next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 4 and v["shape"][2] == 3)
    o, i, kh, kw = header[name]["shape"]
    header[name]["shape"] = [o, i * kh * kw, 1, 1]
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + raw[8 + n:])
    return path


@pytest.mark.parametrize("kind,message", [
    ("truncated", "invalid safetensors file"),
    ("wrong-shape", "shape"),
])
def test_damaged_model_at_start_is_a_clear_error_and_a_failed_start(tmp_path, kind, message):
    path = _model_file(tmp_path, kind)
    p = subprocess.run([str(HYDRA), "serve", "--host", "127.0.0.1", "--port", "0", "--model", f"m={path}"],
                       capture_output=True, text=True, timeout=60)
    print(p.stderr[-600:])
    assert p.returncode != 0, "a damaged model must not give a running server"
    assert message in p.stderr
    assert "listening" not in p.stderr


def test_several_models_each_with_their_replicas(server_factory, tmp_path):
    import subprocess
    import sys
    import torch
    from service import HYDRA, ROOT
    sys.path.insert(0, str(ROOT / "Tests" / "Reference"))
    from refinenet import MultiTaskRefineNet, randomise
    model = randomise(MultiTaskRefineNet(40, True), seed=5, calibrate_size=(96, 64))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "nyud.ckpt")
    subprocess.run([str(HYDRA), "convert", str(tmp_path / "nyud.ckpt"), str(tmp_path / "nyud.safetensors")], check=True,
                   capture_output=True)
    s = server_factory("--model", "kitti=untrained", "--model", f"indoor={tmp_path / 'nyud.safetensors'}")
    models = json.loads(get(s.port, "/v1/models")[2])["models"]
    assert [(m["name"], m["default"], m["preset"], len(m["classes"]), m["heads"][-1]) for m in models] == [
        ("kitti", True, "kitti", 6, "depth"), ("indoor", False, "nyud", 40, "normals")]
    st, h, b = post(s.port, "/v1/models/indoor/predict?outputs=segmentation,normals", FRAME)
    assert st == 200 and h["x-model"] == "indoor"
    names = [p[0]["content-disposition"].split('name="')[1].split('"')[0] for p in split_multipart(h["content-type"], b)]
    assert names == ["segmentation", "normals", "normals_image"]
    assert len(Image.open(io.BytesIO(split_multipart(h["content-type"], b)[0][1])).getpalette()) // 3 >= 40
    st, h, b = post(s.port, "/v1/predict?outputs=segmentation", FRAME)
    assert st == 200 and h["x-model"] == "kitti"
    problem(*post(s.port, "/v1/models/kitti/predict?outputs=normals", FRAME), 400)
