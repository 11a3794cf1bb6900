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
    assert server["name"] == "hydra" and server["version"]
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
