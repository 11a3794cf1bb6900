"""Re-runs the findings of the hardening issue (#14) against one or two builds of hydra and prints
what each saw, side by side (Markdown), e.g. before and after a change:

    .venv/bin/python benchmarks/hardening.py --hydra .build/release/hydra --before /tmp/old/hydra

Flags a build does not know (`--max-memory`) are left out for it. The memory rows use
--max-memory 1Gi, the limit Deploy/base sets for the container. Takes about two minutes per build.
"""
import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests/Service"))
import hardening as h  # noqa: E402
from service import Server  # noqa: E402

DEFAULT_MODEL = ROOT / "Sources/HydraEngine/Resources/default.safetensors"


def knows(binary, flag):
    return flag in subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout


def run(binary, findings):
    budget = ["--max-memory", "1Gi"] if knows(binary, "--max-memory") else []
    rows = {}

    def server(*flags):
        return Server(*flags, binary=binary)

    def each(key, fn):
        if findings and key.split()[0] not in findings:
            return
        try:
            rows[key] = fn()
        except Exception as e:  # a probe that fails is itself an observation
            rows[key] = f"probe failed: {type(e).__name__}: {e}"
        print(f"  {key}: {rows[key]}", file=sys.stderr)

    frame = h.zeros_png(96, 64)
    s = server()
    each("1 Expect 100-continue + bad chunk + reset", lambda: h.expect_then_reset(s))
    s.stop()
    s = server()
    each("2 530 refused requests + reset", lambda: h.refused_then_reset(s))
    s.stop()
    s = server("--max-connections", "4")
    each("2 over the connection cap: 503 read by an uploading client (of 20)", lambda: h.over_cap_upload(s, 4))
    s.stop()
    s = server(*budget)
    each("3 20 MP frame (5000x4000 zeros)", lambda: h.large_frame(s))
    s.stop()
    s = server(*budget)
    each("4 40 x 31 MiB held uploads", lambda: h.held_uploads(s))
    each("4 512 idle connections", lambda: h.idle_connections(s))
    s.stop()
    if not findings or "5" in findings:
        bomb = h.zlib_bomb()
        s = server()
        each("5 zlib bomb (64x48, inflates to 8 GiB)", lambda: h.bomb_request(s, bomb))
        s.stop()
    s = server()
    each("6 SIGHUP with a request in flight", lambda: h.sighup_in_flight(s, h.zeros_png(1226, 370)))
    s.stop()
    s = server()
    for name, data in h.framing_cases(frame):
        each(f"7-11 {name}", lambda data=data: h.statuses(s.port, data))
    each("9 trailer Accept: image/png", lambda: h.trailer_accept(s.port, frame))
    each("15 HTTP/1.0 + Expect: 100-continue", lambda: h.http10_expect(s.port))
    s.stop()
    each("12 FIFO x.safetensors in --model-dir", lambda: h.fifo_model_dir(binary))
    each("13 class colours with 2 components", lambda: h.bad_colours_model(DEFAULT_MODEL, binary))
    each("14 stderr never read: 400 logged requests", lambda: h.unread_stderr(binary))
    return rows


def cell(v):
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hydra", default=str(ROOT / ".build/release/hydra"))
    ap.add_argument("--before", help="an older hydra to run first, for a before/after table")
    ap.add_argument("--only", nargs="*", default=[], help="finding numbers to run (e.g. 1 3 7-11)")
    ap.add_argument("--json", help="also write the observations here")
    a = ap.parse_args()
    builds = ([("before", a.before)] if a.before else []) + [("after" if a.before else "hydra", a.hydra)]
    results = {}
    for label, binary in builds:
        print(f"{label}: {binary}", file=sys.stderr)
        results[label] = run(binary, a.only)
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(results, indent=1))
    labels = [l for l, _ in builds]
    print("| finding | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for key in results[labels[-1]]:
        print(f"| {key} | " + " | ".join(cell(results[l].get(key, "")).replace("|", "/") for l in labels) + " |")


if __name__ == "__main__":
    main()
