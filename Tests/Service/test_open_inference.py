"""The open inference protocol (v2) through Triton's own Python client, as a Triton user would call Hydra."""
import pytest
import tritonclient.http as tritonhttp  # Tests/requirements.txt
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def triton(server):
    client = tritonhttp.InferenceServerClient(f"127.0.0.1:{server.port}")
    yield client
    client.close()


def test_health_and_readiness(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("default") and triton.is_model_ready("default", "1")
    assert not triton.is_model_ready("nope") and not triton.is_model_ready("default", "2")


def test_server_and_model_metadata(triton):
    server = triton.get_server_metadata()
    assert server["name"] == "hydra" and server["version"] and "binary_tensor_data" in server["extensions"]
    for version in ["", "1"]:
        model = triton.get_model_metadata("default", version)
        assert model["name"] == "default" and model["versions"] == ["1"]
        assert {i["name"] for i in model["inputs"]} >= {"image"}
        assert {o["name"] for o in model["outputs"]} >= {"segmentation", "depth"}


def test_errors_are_decoded_by_the_client(triton):
    with pytest.raises(InferenceServerException) as e:
        triton.get_model_metadata("nope")
    assert e.value.status() == "404" and "no model named 'nope'" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        triton.get_model_metadata("default", "2")
    assert e.value.status() == "404" and "version" in e.value.message()


# ---- inference

import io  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from service import parse_responses, raw, split_multipart  # noqa: E402

FRAME = (np.random.default_rng(7).random((96, 160, 3)) * 255).astype(np.uint8)
PNG = cv2.imencode(".png", FRAME[:, :, ::-1])[1].tobytes()


def image_input():
    t = tritonhttp.InferInput("image", [1], "BYTES")
    t.set_data_from_numpy(np.array([PNG], dtype=object), binary_data=True)
    return t


def outputs(*names, binary=True):
    return [tritonhttp.InferRequestedOutput(n, binary_data=binary) for n in names]


def v1(server, query):
    """The /v1 answer for FRAME as {output name: bytes}."""
    body = (f"POST /v1/predict?{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(PNG)}\r\n\r\n").encode() + PNG
    status, headers, content = parse_responses(raw(server.port, body))[0]
    assert status == 200
    return {h["content-disposition"].split('name="')[1].split('"')[0]: b for h, b in split_multipart(headers["content-type"], content)}


def test_infer_with_image_bytes_equals_v1(server, triton):
    r = triton.infer("default", [image_input()], outputs=outputs("segmentation", "depth", "logits", "pointcloud", "overlay"))
    ref = v1(server, "outputs=segmentation,depth,pointcloud,overlay")
    seg = r.as_numpy("segmentation")
    assert seg.dtype == np.uint8 and seg.shape == (96, 160)
    assert np.array_equal(seg, np.array(Image.open(io.BytesIO(ref["segmentation"]))))  # palette indices = class ids
    depth = r.as_numpy("depth")
    assert depth.dtype == np.float32 and depth.shape == (96, 160)
    assert np.abs(depth - np.load(io.BytesIO(ref["depth"]))).max() <= 1e-5
    assert r.as_numpy("logits").shape == (6, 24, 40)
    assert r.as_numpy("pointcloud")[0] == ref["pointcloud"]  # the same PLY bytes as /v1
    assert r.as_numpy("overlay")[0] == ref["overlay"]


def test_infer_with_pixels_in_json_or_binary_equals_image_bytes(triton):
    want = triton.infer("default", [image_input()], outputs=outputs("segmentation", "depth"))
    for binary in [False, True]:
        t = tritonhttp.InferInput("pixels", list(FRAME.shape), "UINT8")
        t.set_data_from_numpy(FRAME, binary_data=binary)
        r = triton.infer("default", [t], outputs=outputs("segmentation", "depth", binary=binary))
        assert np.array_equal(r.as_numpy("segmentation"), want.as_numpy("segmentation"))
        assert np.array_equal(r.as_numpy("depth"), want.as_numpy("depth"))


def test_infer_defaults_parameters_and_summary(triton):
    r = triton.infer("default", [image_input()], model_version="1")
    assert [o["name"] for o in r.get_response()["outputs"]] == ["segmentation", "depth"]
    r = triton.infer("default", [image_input()], outputs=outputs("summary"), parameters={"fx": 700, "fast": True, "stride": 2})
    summary = json.loads(r.as_numpy("summary")[0])
    assert summary["camera"]["fx"] == 700 and summary["upsampling"].startswith("fast")


@pytest.mark.parametrize("call, status, says", [
    (lambda t: t.infer("default", [image_input()], parameters={"bogus": 1}), "400", "unknown parameter 'bogus'"),
    (lambda t: t.infer("nope", [image_input()]), "404", "no model named 'nope'"),
    (lambda t: t.infer("default", [image_input()], model_version="3"), "404", "version"),
    (lambda t: t.infer("default", [image_input()], outputs=outputs("colour")), "400", "unknown output 'colour'"),
])
def test_infer_errors_are_decoded_by_the_client(triton, call, status, says):
    with pytest.raises(InferenceServerException) as e:
        call(triton)
    assert e.value.status() == status and says in e.value.message(), e.value.message()


def v2_raw(server, body, extra=b""):
    data = (b"POST /v2/models/default/infer HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n".encode() + extra + b"\r\n" + body)
    return parse_responses(raw(server.port, data))[0]


@pytest.mark.parametrize("body, extra, status, says", [
    (b"{", b"", 400, "not a JSON object"),
    (json.dumps({"inputs": []}).encode(), b"", 400, "one tensor"),
    (json.dumps({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [2, 2, 3], "data": [0] * 12}]}).encode(), b"", 400, "32 or more"),
    (json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 99}}]}).encode(),
     b"", 400, "binary_data_size"),
    (b'{"inputs": []}', b"Inference-Header-Content-Length: 999\r\n", 400, "does not fit"),
    (b'{"inputs": []}', b"Content-Encoding: br\r\n", 415, "Content-Encoding"),
])
def test_malformed_infer_requests_get_the_protocols_error_shape(server, body, extra, status, says):
    got, headers, content = v2_raw(server, body, extra)
    assert got == status and headers["content-type"] == "application/json", content[:300]
    error = json.loads(content)
    assert list(error) == ["error"] and says in error["error"], error


def test_binary_image_without_content_type(server):
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(PNG) + 4}}],
                         "outputs": [{"name": "segmentation", "parameters": {"binary_data": True}}]}).encode()
    got, headers, content = v2_raw(server, header + struct.pack("<I", len(PNG)) + PNG,
                                   f"Inference-Header-Content-Length: {len(header)}\r\n".encode())
    assert got == 200, content[:300]
    n = int(headers["inference-header-content-length"])
    meta = json.loads(content[:n])
    assert meta["model_name"] == "default" and meta["outputs"][0]["shape"] == [96, 160]
    assert len(content) - n == meta["outputs"][0]["parameters"]["binary_data_size"] == 96 * 160


# ---- compression

import gzip  # noqa: E402
import zlib  # noqa: E402


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_request_and_response_equal_plain_ones(triton, algorithm):
    want = triton.infer("default", [image_input()], outputs=outputs("segmentation", "depth"))
    got = triton.infer("default", [image_input()], outputs=outputs("segmentation", "depth"),
                       request_compression_algorithm=algorithm, response_compression_algorithm=algorithm)
    assert np.array_equal(got.as_numpy("segmentation"), want.as_numpy("segmentation"))
    assert np.array_equal(got.as_numpy("depth"), want.as_numpy("depth"))


def binary_request():
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(PNG) + 4}}],
                         "outputs": [{"name": "depth", "parameters": {"binary_data": True}}]}).encode()
    return header, header + struct.pack("<I", len(PNG)) + PNG


@pytest.mark.parametrize("coding, compress", [
    ("gzip", gzip.compress), ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # a raw deflate stream, as some clients send
])
def test_compressed_bodies_are_inflated_and_answers_compressed_on_request(server, coding, compress):
    header, body = binary_request()
    extra = f"Inference-Header-Content-Length: {len(header)}\r\nContent-Encoding: {coding}\r\nAccept-Encoding: {coding}\r\n"
    status, headers, content = v2_raw(server, compress(body), extra.encode())
    assert status == 200 and headers["content-encoding"] == coding, content[:200]
    plain = gzip.decompress(content) if coding == "gzip" else zlib.decompress(content)
    n = int(headers["inference-header-content-length"])
    assert json.loads(plain[:n])["outputs"][0]["shape"] == [96, 160] and len(plain) - n == 96 * 160 * 4
    # Not asked for (or refused with q=0): not compressed.
    for accept in ["", f"Accept-Encoding: {coding};q=0\r\n"]:
        status, headers, content = v2_raw(server, body, f"Inference-Header-Content-Length: {len(header)}\r\n{accept}".encode())
        assert status == 200 and "content-encoding" not in headers and len(content) == n + 96 * 160 * 4


def test_compressed_body_limits_and_errors(server_factory):
    s = server_factory("--max-body-mb", "1")
    header, body = binary_request()
    hl = f"Inference-Header-Content-Length: {len(header)}\r\n".encode()
    cases = [
        # 2 MiB of zeros compress to 2 KB: the limit applies to what they inflate to.
        (gzip.compress(body + bytes(2 << 20)), b"Content-Encoding: gzip\r\n", 413, "inflates to more than"),
        (b"\x1f\x8b not gzip at all", b"Content-Encoding: gzip\r\n", 400, "not valid gzip"),
        (gzip.compress(body)[:-20], b"Content-Encoding: gzip\r\n", 400, "ends before"),
        (gzip.compress(body) + b"junk", b"Content-Encoding: gzip\r\n", 400, "follow the end"),
        (body, b"Content-Encoding: gzip, br\r\n", 415, "Content-Encoding"),
    ]
    for data, extra, status, says in cases:
        got, headers, content = v2_raw(s, data, hl + extra)
        assert got == status and says in json.loads(content)["error"], (says, content[:300])
    # /v1 takes compressed image bodies too.
    data = gzip.compress(PNG)
    req = (f"POST /v1/predict?outputs=segmentation HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: image/png\r\n"
           f"Content-Encoding: gzip\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data
    status, headers, content = parse_responses(raw(s.port, req))[0]
    assert status == 200 and headers["content-type"] == "image/png"
    assert np.array(Image.open(io.BytesIO(content))).shape == (96, 160)


# ---- the model repository extension

import threading  # noqa: E402
import time  # noqa: E402


def wait_until_busy(s, timeout=20):
    """Polls /metrics until a request is in flight."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        req = b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        text = parse_responses(raw(s.port, req))[0][2].decode()
        if any(line.startswith("hydra_inflight_requests") and float(line.split()[-1]) >= 1 for line in text.splitlines()):
            return
        time.sleep(0.005)
    raise AssertionError("no request became busy")


def test_repository_index_unload_and_load(server_factory):
    s = server_factory("--workers", "1", "--threads-per-worker", "1")
    t = tritonhttp.InferenceServerClient(f"127.0.0.1:{s.port}")
    assert "model_repository" in t.get_server_metadata()["extensions"]
    assert t.get_model_repository_index() == [{"name": "default", "version": "1", "state": "READY"}]
    want = t.infer("default", [image_input()]).as_numpy("depth")

    # A request in flight when the unload comes is answered; the unload answers once it has drained.
    big = cv2.imencode(".png", cv2.resize(FRAME, (1226, 370))[:, :, ::-1])[1].tobytes()
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(big) + 4}}],
                         "parameters": {"binary_data_output": True}}).encode()
    answers = []
    # A plain socket: tritonclient's gevent connections cannot be used from a second thread.
    worker = threading.Thread(target=lambda: answers.append(v2_raw(s, header + struct.pack("<I", len(big)) + big,
                                                                   f"Inference-Header-Content-Length: {len(header)}\r\n".encode())))
    c2 = tritonhttp.InferenceServerClient(f"127.0.0.1:{s.port}")
    worker.start()
    wait_until_busy(s)
    c2.unload_model("default")
    worker.join(30)
    status, headers, content = answers[0]
    n = int(headers["inference-header-content-length"])
    assert status == 200 and json.loads(content[:n])["outputs"][1]["shape"] == [370, 1226]
    index = c2.get_model_repository_index()
    assert index == [{"name": "default", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}]
    assert not c2.is_model_ready("default")
    with pytest.raises(InferenceServerException) as e:
        c2.infer("default", [image_input()])
    assert e.value.status() == "404" and "not loaded" in e.value.message()
    c2.unload_model("default")  # unloading an unloaded model succeeds

    c2.load_model("default")
    assert c2.is_model_ready("default") and c2.get_model_repository_index()[0]["state"] == "READY"
    assert np.array_equal(c2.infer("default", [image_input()]).as_numpy("depth"), want)
    c2.load_model("default")  # a load of a loaded model replaces its replicas
    assert np.array_equal(c2.infer("default", [image_input()]).as_numpy("depth"), want)
    for call, status, says in [
        (lambda: c2.load_model("nope"), "404", "no model named 'nope'"),
        (lambda: c2.unload_model("nope"), "404", "no model named 'nope'"),
        (lambda: c2.load_model("default", config='{"backend": "x"}'), "400", "config"),
    ]:
        with pytest.raises(InferenceServerException) as e:
            call()
        assert e.value.status() == status and says in e.value.message(), e.value.message()
    t.close()
    c2.close()


def test_a_failed_load_keeps_the_model(server_factory, tmp_path):
    import shutil
    from service import ROOT
    src = tmp_path / "m.safetensors"
    # The built-in model's file, copied: a model given by path can be read again.
    shutil.copy(ROOT / "Sources/HydraEngine/Resources/default.safetensors", src)
    s = server_factory("--model", f"m={src}", "--workers", "1", "--threads-per-worker", "1")
    t = tritonhttp.InferenceServerClient(f"127.0.0.1:{s.port}")
    want = t.infer("m", [image_input()]).as_numpy("depth")
    src.write_bytes(b"not a safetensors file")
    with pytest.raises(InferenceServerException) as e:
        t.load_model("m")
    assert e.value.status() == "400" and "failed to load model 'm'" in e.value.message()
    assert t.is_model_ready("m") and np.array_equal(t.infer("m", [image_input()]).as_numpy("depth"), want)
    t.unload_model("m")
    with pytest.raises(InferenceServerException):
        t.load_model("m")
    index = t.get_model_repository_index()[0]
    assert index["state"] == "UNAVAILABLE" and index["reason"].startswith("load failed: cannot load model")
    t.close()


# ---- the kserve Python SDK (protocol v2)

import asyncio  # noqa: E402


def test_kserve_rest_client(server):
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    async def calls():
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        base = f"http://127.0.0.1:{server.port}"
        try:
            live = await client.is_server_live(base)
            ready = await client.is_server_ready(base)
            model_ready = await client.is_model_ready(base, "default")
            image = InferInput("image", [1], "BYTES")
            image.set_data_from_numpy(np.array([PNG], dtype=object), binary_data=True)
            request = InferRequest("default", [image], request_outputs=[RequestedOutput("segmentation", {"binary_data": True})])
            r = await client.infer(base, request, model_name="default")
            pixels = InferInput("pixels", list(FRAME.shape), "UINT8")
            pixels.set_data_from_numpy(FRAME, binary_data=False)
            r2 = await client.infer(base, InferRequest("default", [pixels]), model_name="default")
            try:
                await client.infer(base, InferRequest("default", [image]), model_name="nope")
                error = None
            except Exception as e:  # httpx.HTTPStatusError with the server's message
                error = str(e)
            return live, ready, model_ready, r, r2, error
        finally:
            await client.close()

    live, ready, model_ready, r, r2, error = asyncio.run(calls())
    assert live is True and ready is True and model_ready is True
    seg = r.outputs[0].as_numpy()
    assert r.outputs[0].name == "segmentation" and seg.dtype == np.uint8 and seg.shape == (96, 160)
    by_name = {o.name: o.as_numpy() for o in r2.outputs}
    assert np.array_equal(by_name["segmentation"], seg) and by_name["depth"].shape == (96, 160)
    assert error and "no model named 'nope'" in error and "404" in error


# ---- the same queue, backpressure and deadlines as /v1

def test_overload_and_deadlines_in_the_protocols_shape(server_factory):
    s = server_factory("--workers", "1", "--threads-per-worker", "1", "--queue-size", "1")
    big = cv2.imencode(".png", cv2.resize(FRAME, (1226, 370))[:, :, ::-1])[1].tobytes()

    def request(parameters=None):
        top = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(big) + 4}}]}
        if parameters:
            top["parameters"] = parameters
        header = json.dumps(top).encode()
        return v2_raw(s, header + struct.pack("<I", len(big)) + big, f"Inference-Header-Content-Length: {len(header)}\r\n".encode())

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(request())) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(a[0] for a in answers)
    assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}, statuses
    for status, headers, content in answers:
        if status == 503:
            assert headers["retry-after"] and "at capacity" in json.loads(content)["error"]
    # A 1 microsecond timeout has passed by the time a worker takes the request behind a busy one.
    first = threading.Thread(target=lambda: answers.append(request()))
    first.start()
    wait_until_busy(s)
    status, headers, content = request({"timeout": 1})
    first.join(60)
    assert status == 504 and "timeout" in json.loads(content)["error"], content[:200]
