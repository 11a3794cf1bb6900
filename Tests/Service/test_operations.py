"""Operating the service: per-model metrics in Prometheus conventions, request logs, trace context,
the model folder and SIGHUP reloads, the effective configuration, the Grafana dashboard."""
import concurrent.futures as cf
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service import HYDRA, ROOT, Server
from test_service import SMALL, get, png, post

BUILT_IN = ROOT / "Sources/HydraEngine/Resources/default.safetensors"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def families(port):
    """/metrics parsed by the Prometheus client's own parser: {name: family}."""
    text = get(port, "/metrics")[2].decode()
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def value(fams, family, sample, **labels):
    for s in fams[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {sample}{labels}")


def wait_for_log(server, predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [l for l in list(server.log) if predicate(l)]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("no such log line:\n" + "\n".join(map(str, server.log[-20:])))


@pytest.fixture(scope="module")
def two_models():
    s = Server("--model", "a=default", "--model", "b=untrained", "--workers", "1", "--threads-per-worker", "1",
               "--queue-size", "1", "--log-level", "debug")
    yield s
    s.stop()


def mixed_traffic(s):
    """200s on both models, a 415, a 503 (queue full) and a 504 (deadline in the queue)."""
    assert post(s.port, "/v1/models/b/predict?outputs=segmentation", SMALL,
                headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "tracestate": "vendor=x"})[0] == 200
    assert post(s.port, "/v1/predict?outputs=depth", SMALL)[0] == 200
    assert post(s.port, "/v1/models/a/predict", b"hello", ctype="text/plain")[0] == 415
    big = png(1226, 370, seed=11)
    with cf.ThreadPoolExecutor(8) as ex:
        slow = ex.submit(post, s.port, "/v1/models/a/predict?outputs=segmentation", big)
        time.sleep(0.05)
        late = ex.submit(post, s.port, "/v1/models/a/predict?outputs=segmentation&timeout_ms=1", big)
        time.sleep(0.05)
        refused = [ex.submit(post, s.port, "/v1/models/a/predict?outputs=segmentation", big) for _ in range(4)]
        statuses = [slow.result()[0], late.result()[0]] + [r.result()[0] for r in refused]
    assert 503 in statuses and 504 in statuses, statuses


def test_metrics_follow_prometheus_conventions_per_model(two_models):
    s = two_models
    fams, text = families(s.port)
    # Before any traffic: every model's rejection counters exist at 0.
    for model in ["a", "b"]:
        for reason in ["queue_full", "draining", "deadline", "client_gone"]:
            assert value(fams, "hydra_rejections", "hydra_rejections_total", model=model, reason=reason) == 0
    mixed_traffic(s)
    fams, text = families(s.port)
    print(text)
    lines = text.splitlines()
    names = {l.split()[2] for l in lines if l.startswith("# TYPE")}
    assert names == {l.split()[2] for l in lines if l.startswith("# HELP")}, "every family has HELP and TYPE"
    for l in lines:
        if l.startswith("# TYPE"):
            _, _, name, kind = l.split()
            assert (kind == "counter") == name.endswith("_total"), l
            if kind == "histogram":
                assert name.endswith("_seconds"), l
    assert value(fams, "hydra_requests", "hydra_requests_total", model="b", route="/v1/models/{name}/predict", code="200") == 1
    assert value(fams, "hydra_requests", "hydra_requests_total", model="a", route="/v1/predict", code="200") >= 1
    assert value(fams, "hydra_requests", "hydra_requests_total", model="a", route="/v1/models/{name}/predict", code="415") == 1
    assert value(fams, "hydra_requests", "hydra_requests_total", model="a", route="/v1/models/{name}/predict", code="503") >= 1
    assert value(fams, "hydra_requests", "hydra_requests_total", model="a", route="/v1/models/{name}/predict", code="504") == 1
    assert value(fams, "hydra_rejections", "hydra_rejections_total", model="a", reason="queue_full") >= 1
    assert value(fams, "hydra_rejections", "hydra_rejections_total", model="a", reason="deadline") == 1
    assert value(fams, "hydra_rejections", "hydra_rejections_total", model="b", reason="queue_full") == 0
    for model in ["a", "b"]:
        assert value(fams, "hydra_request_duration_seconds", "hydra_request_duration_seconds_count", model=model) >= 1
        assert value(fams, "hydra_network_seconds", "hydra_network_seconds_count", model=model) >= 1
        for stage in ["decode", "network", "upsample", "encode"]:
            assert value(fams, "hydra_stage_seconds", "hydra_stage_seconds_count", model=model, stage=stage) >= 1
        for gauge in ["hydra_queue_depth", "hydra_inflight_requests", "hydra_busy_workers", "hydra_workers"]:
            value(fams, gauge, gauge, model=model)
        assert value(fams, "hydra_model_info", "hydra_model_info", model=model, version="1", precision="f32") == 1
    assert fams["process_cpu_seconds"].type == "counter"
    build = [x for x in fams["hydra_build_info"].samples]
    assert len(build) == 1 and set(build[0].labels) == {"version", "commit", "isa", "precision"}, build
    assert value(fams, "hydra_log_lines_dropped", "hydra_log_lines_dropped_total") == 0
    # A name in a URL that no model has is not a label value (series must stay bounded).
    post(s.port, "/v1/models/no-such-model-xyz/predict", SMALL)
    assert "no-such-model-xyz" not in families(s.port)[1]


def test_each_request_logs_one_json_line_with_numbers_model_trace_and_problem(two_models):
    s = two_models
    mixed_traffic(s)
    get(s.port, "/healthz")
    requests = wait_for_log(s, lambda l: l.get("msg") == "request" and l.get("route") == "/healthz")
    probe = requests[-1]
    assert probe["level"] == "debug"  # probes and /metrics log at debug
    lines = [l for l in list(s.log) if l.get("msg") == "request"]
    ok = next(l for l in lines if l.get("trace_id") == TRACE)
    assert ok["status"] == 200 and ok["model"] == "b" and ok["outputs"] == "segmentation"
    assert ok["parent_span_id"] == "00f067aa0ba902b7" and re.fullmatch(r"[0-9a-f]{16}", ok["span_id"])
    for key in ["status", "duration_ms", "bytes_in", "bytes_out"]:
        assert isinstance(ok[key], (int, float)) and not isinstance(ok[key], bool), (key, ok)
    assert ok["bytes_in"] == len(SMALL) and ok["bytes_out"] > 0
    assert re.fullmatch(r"127\.0\.0\.1:\d+", ok["client"]) and ok["request_id"]
    bad = next(l for l in lines if l["status"] == 415)
    assert bad["problem_title"] == "Unsupported Media Type" and "text/plain" in bad["problem_detail"] and bad["model"] == "a"
    full = next(l for l in lines if l["status"] == 503)
    assert full["level"] == "warning" and full["reason"] == "queue_full" and "capacity" in full["problem_detail"]
    late = next(l for l in lines if l["status"] == 504)
    assert late["reason"] == "deadline"
    for l in list(s.log):
        assert "raw" not in l, f"a line that is not JSON: {l}"


def test_trace_context_is_continued_or_started_and_sent_back(two_models):
    s = two_models
    st, h, _ = post(s.port, "/v1/predict?outputs=segmentation", SMALL,
                    headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "tracestate": "congo=t61rcWkgMzE"})
    assert st == 200
    version, trace, span, flags = h["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01") and span != "00f067aa0ba902b7"
    assert h["tracestate"] == "congo=t61rcWkgMzE"
    for bad in ["00-" + "0" * 32 + "-00f067aa0ba902b7-01", "zz-garbage", "00-" + TRACE + "-00f067aa0ba902b7-01-extra"]:
        st, h, _ = get_with(s.port, "/healthz", {"traceparent": bad, "tracestate": "a=b"})
        new = h["traceparent"].split("-")
        assert st == 200 and new[1] != TRACE and re.fullmatch(r"[0-9a-f]{32}", new[1]) and new[3] == "00"
        assert "tracestate" not in h, "an invalid traceparent's tracestate is dropped"


def get_with(port, path, headers):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def test_start_up_errors_are_json_lines():
    for flags in [["--port", "notaport"], ["--model-dir", "/nonexistent/models"], ["--log-level", "loud"]]:
        p = subprocess.run([str(HYDRA), "serve", *flags], capture_output=True, text=True, timeout=60)
        assert p.returncode != 0, flags
        lines = [json.loads(l) for l in p.stderr.splitlines()]
        assert lines and lines[-1]["level"] == "critical" and lines[-1]["msg"] == "cannot start", lines
        print(lines[-1])


def test_a_missing_or_empty_model_folder_refuses_to_start(tmp_path):
    p = subprocess.run([str(HYDRA), "serve", "--port", "0", "--model-dir", str(tmp_path / "absent")], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "does not exist" in p.stderr and "--model default" in p.stderr
    p = subprocess.run([str(HYDRA), "serve", "--port", "0"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HYDRA_MODEL_DIR=str(tmp_path)))
    assert p.returncode != 0 and "holds no NAME.safetensors" in p.stderr
    assert "ready" not in p.stderr
    # Asking for the built-in model explicitly serves it.
    s = Server("--model-dir", str(tmp_path / "absent"), "--model", "default")
    try:
        assert json.loads(get(s.port, "/v1/models")[2])["models"][0]["name"] == "default"
    finally:
        s.stop()


def test_sighup_reloads_the_model_folder_under_steady_traffic(tmp_path):
    shutil.copy(BUILT_IN, tmp_path / "a.safetensors")
    s = Server("--model-dir", tmp_path, "--workers", "1", "--threads-per-worker", "1", "--queue-size", "16")
    statuses, stop = [], threading.Event()

    def traffic():
        while not stop.is_set():
            statuses.append(post(s.port, "/v1/models/a/predict?outputs=segmentation", SMALL)[0])
    try:
        t = threading.Thread(target=traffic)
        t.start()
        time.sleep(0.5)
        shutil.copy(BUILT_IN, tmp_path / "b.safetensors")  # new
        os.utime(tmp_path / "a.safetensors")                 # changed
        s.proc.send_signal(signal.SIGHUP)
        done = wait_for_log(s, lambda l: l.get("msg") == "models reloaded")[-1]
        assert done["added"] == "b" and done["replaced"] == "a" and done["removed"] == "", done
        assert post(s.port, "/v1/models/b/predict?outputs=segmentation", SMALL)[0] == 200
        (tmp_path / "b.safetensors").unlink()                # removed
        s.proc.send_signal(signal.SIGHUP)
        wait_for_log(s, lambda l: l.get("msg") == "models reloaded" and l.get("removed") == "b")
        time.sleep(0.5)
        stop.set()
        t.join(60)
        assert statuses and set(statuses) == {200}, f"{len(statuses)} requests: {sorted(set(statuses))}"
        assert post(s.port, "/v1/models/b/predict?outputs=segmentation", SMALL)[0] == 404
        fams, _ = families(s.port)
        assert value(fams, "hydra_model_reloads", "hydra_model_reloads_total", result="ok") == 2
        assert {x.labels["model"] for x in fams["hydra_model_info"].samples} == {"a"}
        print(f"{len(statuses)} requests during two reloads, all 200")
    finally:
        stop.set()
        s.stop()


def test_a_failed_reload_keeps_the_models_and_says_why(tmp_path):
    shutil.copy(BUILT_IN, tmp_path / "a.safetensors")
    s = Server("--model-dir", tmp_path)
    try:
        (tmp_path / "a.safetensors").write_bytes(BUILT_IN.read_bytes()[:1000])  # damaged in place
        s.proc.send_signal(signal.SIGHUP)
        line = wait_for_log(s, lambda l: "reload" in l.get("msg", "") and l.get("level") == "error")[-1]
        assert "a:" in json.dumps(line.get("failed")) and "safetensors" in json.dumps(line), line
        assert post(s.port, "/v1/models/a/predict?outputs=segmentation", SMALL)[0] == 200
        shutil.rmtree(tmp_path)
        s.proc.send_signal(signal.SIGHUP)
        line = wait_for_log(s, lambda l: l.get("msg") == "model reload failed; serving the models as they were")[-1]
        assert "does not exist" in line["error"]
        assert post(s.port, "/v1/models/a/predict?outputs=segmentation", SMALL)[0] == 200
        fams, _ = families(s.port)
        assert value(fams, "hydra_model_reloads", "hydra_model_reloads_total", result="failed") == 2
    finally:
        s.stop()


def test_help_shows_defaults_and_print_config_the_effective_values():
    help_text = " ".join(subprocess.run([str(HYDRA), "serve", "--help"], capture_output=True, text=True, check=True).stdout.split())
    for default in ["default 8080", "default 0.0.0.0", "default 1)", "default 2)", "default 32)", "default 20000000",
                    "default 30000", "default info", "default json", "default f32"]:
        assert default in help_text, default
    p = subprocess.run([str(HYDRA), "serve", "--print-config", "--workers", "3"], capture_output=True, text=True, check=True,
                       env=dict(os.environ, HYDRA_PORT="9123", HYDRA_MAX_MEMORY="1Gi"))
    config = json.loads(p.stdout)
    assert config["workers"] == 3 and config["port"] == 9123 and config["max_memory_bytes"] == 1 << 30
    assert config["models"] == [{"name": "default", "source": "built-in"}] and config["timeout_ms"] == 30000


def test_grafana_dashboard_queries_only_metrics_that_exist(two_models):
    dashboard = json.loads((ROOT / "Deploy/monitoring/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    metrics = {w for e in exprs for w in re.findall(r"\b(?:hydra|process)_[a-z0-9_]+", e)}
    assert {"hydra_requests_total", "hydra_request_duration_seconds_bucket", "hydra_queue_depth", "hydra_rejections_total",
            "process_resident_memory_bytes"} <= metrics
    mixed_traffic(two_models)
    _, text = families(two_models.port)
    exposed = {l.split("{")[0].split()[0] for l in text.splitlines() if l and not l.startswith("#")}
    assert metrics <= exposed, metrics - exposed
