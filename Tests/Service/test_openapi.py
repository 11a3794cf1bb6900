"""openapi.yaml is a valid OpenAPI 3.1 document and the running server conforms to it."""
import pathlib
import shutil
import subprocess
import sys

from service import ROOT, Server

SPEC = ROOT / "openapi.yaml"


def test_spec_is_valid_openapi_3_1():
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename
    spec, _ = read_from_filename(str(SPEC))
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_running_server_conforms_to_the_spec(tmp_path):
    s = Server("--queue-size", "32", "--workers", "1", "--threads-per-worker", "2")
    try:
        exe = shutil.which("schemathesis", path=str(pathlib.Path(sys.executable).parent)) or "schemathesis"
        # positive_data_acceptance is left out: a schema cannot say "a decodable PNG", so schema-valid
        # random bytes are rightly refused (415/422).
        config = pathlib.Path(__file__).with_name("schemathesis.toml")
        p = subprocess.run([exe, "--config-file", str(config), "run", str(SPEC), "--url", f"http://127.0.0.1:{s.port}", "--max-examples", "25",
                            "--exclude-checks", "positive_data_acceptance", "--seed", "2019", "--no-color"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache stays out of the tree
        print(p.stdout[-3000:])
        assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
        assert "failures" not in p.stdout.splitlines()[-1] or " 0 failures" in p.stdout.splitlines()[-1]
    finally:
        assert s.stop() == 0
