#!/usr/bin/env python3
"""Soak test: load at about 80 % of saturation for N minutes; RSS and open descriptors must stay
flat (their slopes are reported) and no request may fail except by a 503.

    python3 benchmarks/soak.py --minutes 20 [--hydra .build/release/hydra] [--frame examples/street.png]
"""
import argparse
import pathlib
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "Service"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from loadtest import hey  # noqa: E402
from service import Server  # noqa: E402


def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def fds(pid):
    return len(list(pathlib.Path(f"/proc/{pid}/fd").iterdir()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hydra", default=str(ROOT / ".build/release/hydra"))
    ap.add_argument("--frame", default=str(ROOT / "examples/street.png"))
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--sample-seconds", type=float, default=10)
    ap.add_argument("--max-rss-slope-kib-per-min", type=float, default=256)
    a = ap.parse_args()
    s = Server("--workers", "1", "--threads-per-worker", "2")
    try:
        hey(s.port, a.frame, 3, 2)
        # Saturation as make loadtest measures it: a closed loop with as many clients as the server admits
        # at once (1 worker + a queue of 1), so none is refused and the worker never idles.
        sat = hey(s.port, a.frame, 10, 2)["throughput"]
        rate = 0.8 * sat
        seconds = max(5, int(a.minutes * 60))
        print(f"saturation {sat:.2f} req/s; soaking at {rate:.2f} req/s for {seconds} s", flush=True)
        time.sleep(1)
        baseline_fds = fds(s.proc.pid)
        result = {}
        t = threading.Thread(target=lambda: result.update(hey(s.port, a.frame, seconds, 8, rate_per_worker=rate / 8)))
        t0 = time.time()
        t.start()
        samples = []
        while t.is_alive():
            samples.append((time.time() - t0, s.rss_kib(), fds(s.proc.pid)))
            print(f"t={samples[-1][0]:6.0f} s  RSS {samples[-1][1] / 1024:7.1f} MiB  fds {samples[-1][2]}", flush=True)
            t.join(a.sample_seconds)
        # Only samples taken under load count: afterwards the clients' connections close.
        # Skip the first fifth: allocator and page cache settle while the load ramps up.
        steady = samples[len(samples) // 5:] if len(samples) >= 5 else samples
        xs = [x / 60 for x, _, _ in steady]
        rss_slope = slope(xs, [r for _, r, _ in steady])
        fd_slope = slope(xs, [f for _, _, f in steady])
        print(f"requests {result['requests']}, ok {result['ok']}, status codes {result['codes']}, "
              f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms")
        print(f"RSS slope {rss_slope:.1f} KiB/min, fd slope {fd_slope:.3f} /min over {len(steady)} samples")
        # A descriptor leak shows as descriptors left open once every client has gone (the fd slope
        # under load only reports it: the last sample may fall while clients are closing).
        time.sleep(1)
        after_fds = fds(s.proc.pid)
        print(f"descriptors: {baseline_fds} before the load, {after_fds} after it")
        ok = result["errors"] == 0 and rss_slope < a.max_rss_slope_kib_per_min and after_fds <= baseline_fds
        print("soak: " + ("passed" if ok else "FAILED"))
        sys.exit(0 if ok else 1)
    finally:
        s.stop()


if __name__ == "__main__":
    main()
