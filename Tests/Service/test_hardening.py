"""The hardening issue's findings (#14), each as an attacker would send it, against the built server.
The probes live in hardening.py so that benchmarks/hardening.py can show the same on an older build.
Framing, routing and parameter cases are in test_hostile.py's catalogue."""
import json
import os
import struct
import threading

import cv2
import numpy as np
import pytest
import yaml

import hardening as h
from service import ROOT, Server, parse_responses, raw, split_multipart

DEFAULT_MODEL = ROOT / "Sources/HydraEngine/Resources/default.safetensors"


def deploy_memory_limit():
    dep = yaml.safe_load((ROOT / "Deploy/base/deployment.yaml").read_text())
    [c] = dep["spec"]["template"]["spec"]["containers"]
    limit = c["resources"]["limits"]["memory"]
    assert limit.endswith("Gi") or limit.endswith("Mi"), limit
    return int(float(limit[:-2]) * (1 << (30 if limit.endswith("Gi") else 20)))


def test_expect_continue_then_reset_does_not_kill_the_process(server_factory):
    s = server_factory()
    assert h.expect_then_reset(s, tries=10) == "alive"
    assert h.status_of(s.port) == 200


def test_refused_requests_followed_by_a_reset_leave_no_descriptors_behind(server_factory):
    s = server_factory()
    r = h.refused_then_reset(s, clients=530)
    assert r["healthz"] == 200, r
    assert r["fds_after"] <= r["fds_before"] + 2, r


def test_a_client_over_the_connection_cap_reads_its_503_while_uploading(server_factory):
    s = server_factory("--max-connections", "4")
    assert h.over_cap_upload(s, 4, tries=10) == 10
    assert h.eventually(s.port) == 200  # the idle connections' closes free their places


def test_sighup_is_logged_and_the_request_in_flight_is_answered(server_factory):
    s = server_factory()
    r = h.sighup_in_flight(s, h.zeros_png(1226, 370))
    assert r == {"in_flight": 200, "process": "alive", "after": 200}
    s.wait_log(lambda line: "SIGHUP" in line.get("msg", ""))


def test_http10_is_not_sent_100_continue(server):
    assert h.http10_expect(server.port) == "no 100 Continue"


def test_a_trailer_never_changes_the_answer(server):
    assert h.trailer_accept(server.port, h.zeros_png(96, 64)) == "200 multipart/mixed"


def test_a_fifo_in_the_model_folder_is_a_clear_error():
    r = h.fifo_model_dir()
    assert r["outcome"] == "exit 1", r
    assert "not a regular file" in r["message"], r


@pytest.mark.parametrize("field, value, says", [
    ("colours", "two components", "components"),
    ("colours", "256", "colours"),
    ("classes", "duplicate", "distinct"),
    ("classes", "empty name", "class name"),
    ("intrinsics", "negative fx", "focal lengths"),
    ("intrinsics", "nan", "intrinsics"),
])
def test_bad_model_metadata_is_refused_at_start(tmp_path, field, value, says):
    data = DEFAULT_MODEL.read_bytes()
    meta = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])["__metadata__"]
    classes = json.loads(meta["classes"])
    changed = {
        "two components": lambda: [[1, 2]] * len(classes),
        "256": lambda: [[256, 0, 0]] + json.loads(meta["colours"])[1:],
        "duplicate": lambda: [classes[0]] + classes[:-1],
        "empty name": lambda: [""] + classes[1:],
        "negative fx": lambda: dict(json.loads(meta["intrinsics"]), fx=-1),
        "nan": lambda: dict(json.loads(meta["intrinsics"]), fy=float("nan")),
    }[value]()
    path = tmp_path / "bad.safetensors"
    h.with_metadata(DEFAULT_MODEL, path, **{field: changed})
    r = h.start_outcome(["--model", f"bad={path}"], wait=10)
    assert r["outcome"] == "exit 1", r
    assert "bad.safetensors" in r["message"] and says in r["message"], r


def test_a_log_reader_that_never_reads_does_not_stop_the_service():
    # 400 lines fill the pipe; 8000 more overflow the writer's 1 MiB queue, and are counted.
    r = h.unread_stderr(requests=400, flood=8000)
    assert r["answered_404"] == 400 and r["flooded_404"] == 8000 and r["healthz_after"] == 200, r
    assert r["log_lines_dropped"] > 0, r


def server_cpu_seconds(s):
    fields = open(f"/proc/{s.proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_zlib_bomb_is_not_inflated_past_the_last_row(server_factory):
    # 2 GiB of image data behind 64x48 pixels: inflating it all costs seconds of CPU; stopping at
    # the last row costs milliseconds. CPU time is counted by the kernel, not a wall clock.
    bomb = h.zlib_bomb(inflated=2 << 30)
    s = server_factory()
    before = server_cpu_seconds(s)
    assert h.bomb_request(s, bomb)["status"] == 200
    assert server_cpu_seconds(s) - before < 1.0


def test_a_20_megapixel_frame_is_shrunk_for_the_network_and_answered_at_its_size(server_factory):
    s = server_factory("--max-memory", "1Gi")
    frame = h.zeros_png(5000, 4000)
    status, headers, body = h.post(s.port, "/v1/predict?outputs=segmentation,summary", frame, timeout=300)
    assert status == 200, body[:300]
    parts = {p[0]["content-type"].split(";")[0]: p[1] for p in split_multipart(headers["content-type"], body)}
    summary = json.loads(parts["application/json"])
    net = summary["network_input"]
    assert net["width"] * net["height"] <= 2_100_000 and abs(net["width"] / net["height"] - 1.25) < 0.01
    assert "5000x4000" in summary["note"] and "shrunk" in summary["note"]
    seg = cv2.imdecode(np.frombuffer(parts["image/png"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert seg.shape[:2] == (4000, 5000)


def test_a_request_beyond_a_workers_memory_is_refused_before_decoding(server_factory):
    s = server_factory("--max-memory", "1Gi")
    status, _, body = h.post(s.port, "/v1/predict?outputs=segmentation,depth,pointcloud,overlay", h.zeros_png(5000, 4000))
    assert status == 413
    assert "working memory" in json.loads(body)["detail"]


def test_bodies_beyond_the_connection_budget_get_503_with_retry_after_before_they_are_read(server_factory):
    s = server_factory("--max-memory", "1Gi")  # 115 MiB for connections: three 32 MiB bodies
    head = (b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
            b"Content-Length: 33554431\r\n\r\n")
    held = []
    for _ in range(3):
        held.append(h.connect(s.port))
        held[-1].sendall(head)
    status, headers, body = parse_responses(raw(s.port, head, timeout=5))[0]
    assert status == 503 and int(headers["retry-after"]) >= 1
    assert "memory" in json.loads(body)["detail"]
    for sock in held:
        sock.close()
    time_limit = 50
    while time_limit and parse_responses(raw(s.port, head + b"\0" * 10, timeout=0.3) or b"HTTP/1.1 0 x\r\n\r\n")[0][0] == 503:
        time_limit -= 1  # the leases go back as the server sees the closes
    assert time_limit, "the budget was not given back after the bodies' connections closed"


def test_peak_memory_under_the_worst_allowed_requests_stays_under_the_deploy_limit(server_factory):
    # The pod's settings (Deploy/base's ConfigMap) and the budget its limit gives it.
    limit = deploy_memory_limit()
    config = yaml.safe_load((ROOT / "Deploy/base/configmap.yaml").read_text())["data"]
    s = server_factory("--max-memory", str(limit), env={k: str(v) for k, v in config.items()})
    idle = [h.connect(s.port) for _ in range(460)]
    results = {}
    uploads = threading.Thread(target=lambda: results.update(uploads=h.held_uploads(s, connections=40)))
    uploads.start()
    frame = h.large_frame(s, 5000, 4000)
    uploads.join(300)
    for sock in idle:
        sock.close()
    assert frame["status"] == 200, frame
    peak = s.rss_kib("VmHWM") << 10
    assert peak < limit, (peak >> 20, limit >> 20, frame, results)
