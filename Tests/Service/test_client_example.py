"""examples/client.py, as the README runs it: outputs named after the frame, nothing overwritten
unless asked, and a refused request said with the service's problem detail (no traceback)."""
import subprocess
import sys

from service import ROOT, Server
from test_service import png

CLIENT = ROOT / "examples" / "client.py"


def client(port, *args):
    return subprocess.run([sys.executable, str(CLIENT), *map(str, args), "--url", f"http://127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=120)


def test_client_names_files_after_the_frame_and_reports_problems(tmp_path):
    s = Server()
    try:
        frame = tmp_path / "street.png"
        frame.write_bytes(png(96, 64))
        out = tmp_path / "out"
        r = client(s.port, frame, "--outputs", "segmentation,depth,summary", "--out", out)
        assert r.returncode == 0, r.stderr
        assert sorted(p.name for p in out.iterdir()) == ["street_depth.npy", "street_segmentation.png", "street_summary.json"]
        before = (out / "street_summary.json").read_bytes()
        (out / "street_summary.json").write_text("mine")
        r = client(s.port, frame, "--outputs", "segmentation,depth,summary", "--out", out)
        assert r.returncode == 0 and "kept" in r.stderr
        assert (out / "street_summary.json").read_text() == "mine", "an existing file was overwritten"
        r = client(s.port, frame, "--outputs", "segmentation,depth,summary", "--out", out, "--overwrite")
        assert (out / "street_summary.json").read_bytes()[:1] == before[:1] == b"{"
        text = tmp_path / "notes.png"
        text.write_text("not an image")
        r = client(s.port, text, "--out", out)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"error: {text}: 415 ") or r.stderr.startswith(f"error: {text}: 400 "), r.stderr
    finally:
        s.stop()
