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
