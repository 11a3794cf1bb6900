"""--precision and --model-precision on the service: one file served in f32 and in bf16 side by side."""
import io
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from service import HYDRA, ROOT, parse_responses, raw

MODEL = ROOT / "Sources/HydraEngine/Resources/default.safetensors"
CPU = open("/proc/cpuinfo").read()
HAS_BF16 = "avx512_bf16" in CPU
HAS_INT8 = HAS_BF16 and "avx512_vnni" in CPU
FRAME = (np.random.default_rng(11).random((120, 200, 3)) * 255).astype(np.uint8)


def predict(port, name):
    buf = io.BytesIO()
    Image.fromarray(FRAME).save(buf, format="PNG")
    body = buf.getvalue()
    req = (f"POST /v1/models/{name}/predict?outputs=depth&depth_format=f32 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           f"Content-Type: image/png\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    status, headers, content = parse_responses(raw(port, req))[0]
    assert status == 200, content[:300]
    return np.frombuffer(content, dtype="<f4")


def start(*flags):
    return subprocess.run([str(HYDRA), "serve", "--host", "127.0.0.1", "--port", "0", *flags],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no AVX512-BF16")
def test_one_model_in_two_precisions(server_factory):
    s = server_factory("--model", f"exact={MODEL}", "--model", f"fast={MODEL}", "--model-precision", "fast=bf16",
                       "--workers", "1", "--threads-per-worker", "1")
    listing = parse_responses(raw(s.port, b"GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))[0][2]
    models = {m["name"]: m for m in json.loads(listing)["models"]}
    assert models["exact"]["precision"] == "f32" and models["fast"]["precision"] == "bf16"
    exact, fast = predict(s.port, "exact"), predict(s.port, "fast")
    assert not np.array_equal(exact, fast)  # really another arithmetic
    assert np.mean(np.abs(fast - exact) / np.abs(exact)) < 0.01  # within bf16's rounding (docs/PRECISION.md)


@pytest.mark.parametrize("flags, says", [
    (["--precision", "f16"], "precision"),
    (["--model-precision", "default"], "NAME=PRECISION"),
    (["--model-precision", "nope=bf16"], "model 'nope', which is not served"),
])
def test_bad_precision_flags_refuse_to_start(flags, says):
    p = start(*flags)
    assert p.returncode != 0 and says in p.stderr, p.stderr[-500:]


@pytest.mark.skipif(HAS_BF16, reason="this CPU has AVX512-BF16")
def test_bf16_without_the_instructions_refuses_to_start():
    p = start("--precision", "bf16")
    assert p.returncode != 0 and "AVX512-BF16" in p.stderr, p.stderr[-500:]


@pytest.mark.skipif(not HAS_INT8, reason="this CPU has no AVX512-VNNI and AVX512-BF16")
def test_built_in_model_serves_int8_out_of_the_box(server_factory):
    """The built-in model ships calibrated: --precision int8 needs nothing else."""
    s = server_factory("--model", f"exact={MODEL}", "--model", "fast=default", "--model-precision", "fast=int8",
                       "--workers", "1", "--threads-per-worker", "1")
    listing = parse_responses(raw(s.port, b"GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))[0][2]
    assert {m["name"]: m["precision"] for m in json.loads(listing)["models"]}["fast"] == "int8"
    exact, fast = predict(s.port, "exact"), predict(s.port, "fast")
    assert not np.array_equal(exact, fast)
    assert np.mean(np.abs(fast - exact) / np.abs(exact)) < 0.03  # within int8's steps (docs/PRECISION.md)


@pytest.mark.skipif(not HAS_INT8, reason="this CPU has no AVX512-VNNI and AVX512-BF16")
def test_uncalibrated_model_asked_for_int8_refuses_to_start_naming_hydra_calibrate(tmp_path):
    p = start("--model", "untrained", "--precision", "int8")
    assert p.returncode != 0 and "hydra calibrate" in p.stderr, p.stderr[-500:]
