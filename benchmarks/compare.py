#!/usr/bin/env python3
"""Hydra against ONNX Runtime, OpenVINO and PyTorch on the same weights, interleaved, one script.

Runs the built-in trained weights (Sources/HydraEngine/Resources/default.safetensors, the official
parameter names) in every engine: as they are for Hydra, loaded into the test reference network for
PyTorch and exported to ONNX for the others (`--weights random`: a random checkpoint with realistic
BatchNorm statistics instead, converted with `hydra convert`). Trained weights matter for int8: the
calibration keeps in bf16 only the layers that int8 would hurt, which on random weights are many.
For every size and thread count, engines run in interleaved blocks (each block: a few timed runs of
every engine) so machine noise hits all alike. Hydra's time includes its uint8 ->
float preprocessing; the others get a ready float tensor. Writes benchmarks/RESULTS.md.

Reduced precision, where the CPU has AVX512-BF16 / AVX512-VNNI: Hydra bf16 and int8 against
OpenVINO's bf16 (its default on such CPUs) and int8 from ONNX Runtime's static quantization (QDQ,
per-channel weights, min-max calibration), run by ONNX Runtime and by OpenVINO. Both int8 models are
calibrated on the same 12 generated street scenes (training/scenes.py, the seeds `make calibrate`
uses): `hydra calibrate` on the scenes, quantize_static on them resized to the benchmark size.

    python benchmarks/compare.py --hydra .build/release/hydra [--runs 30] [--blocks 6]
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "Reference"))
from refinenet import MultiTaskRefineNet, randomise  # noqa: E402


def conv_flops(model, w, h):
    """2 x multiply-accumulates of every convolution at this input size."""
    total = [0]

    def hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * k
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, h, w))
    for x in hs:
        x.remove()
    return total[0]


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * q)))]


class Hydra:
    name = "Hydra"

    def __init__(self, exe, model, w, h, threads, precision="f32"):
        self.cmd = [exe, "bench", "--model", model, "--size", f"{w}x{h}", "--threads", str(threads), "--warmup", "2", "--json",
                    "--precision", precision]
        if precision != "f32":
            self.name = f"Hydra {precision}"

    def block(self, n):
        p = subprocess.run(self.cmd + ["--runs", str(n)], capture_output=True, text=True, check=True)
        return json.loads(p.stdout)["times_ms"]


class Timed:
    def block(self, n):
        self.run()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.run()
            times.append((time.perf_counter() - t0) * 1e3)
        return times


class ORT(Timed):
    name = "ONNX Runtime"

    def __init__(self, onnx_path, x, threads):
        import onnxruntime as ort
        o = ort.SessionOptions()
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.s = ort.InferenceSession(str(onnx_path), o, providers=["CPUExecutionProvider"])
        self.feed = {self.s.get_inputs()[0].name: x}

    def run(self):
        self.s.run(None, self.feed)


class OpenVINO(Timed):
    """f32 unless told otherwise: on CPUs with AVX512-BF16 or AMX OpenVINO's default is bfloat16,
    which is not the same computation (max logit error ~1.8 here against ~2e-4 in f32)."""
    name = "OpenVINO"

    def __init__(self, onnx_path, x, threads, precision="f32"):
        import openvino as ov
        core = ov.Core()
        cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        if precision:
            cfg["INFERENCE_PRECISION_HINT"] = precision
        else:
            self.name = "OpenVINO default (bf16 here)"
        self.c = core.compile_model(core.read_model(str(onnx_path)), "CPU", cfg)
        self.r = self.c.create_infer_request()
        self.x = x

    def run(self):
        self.r.infer({0: self.x})


class OpenVINOInt8(OpenVINO):
    """The ONNX Runtime QDQ model, compiled by OpenVINO with its defaults (int8 where the model says so)."""
    def __init__(self, qdq_path, x, threads):
        super().__init__(qdq_path, x, threads, precision=None)
        self.name = "OpenVINO int8"


def scenes(tmp):
    """The 12 calibration scenes of `make calibrate`, generated once."""
    out = tmp / "calib"
    if not out.exists():
        subprocess.run(["/usr/bin/python3", str(ROOT / "training" / "scenes.py"), "--out", str(out), "--count", "12",
                        "--start", "700000", "--width", "1242", "--height", "375"], check=True, capture_output=True)
    return sorted(p for p in out.glob("scene_*.png") if "_gt_" not in p.name)


def quantize(onnx_path, images, w, h, out):
    """ONNX Runtime static int8 quantization: QDQ, per-channel s8 weights, u8 activations, min-max ranges."""
    import cv2
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(images)

        def get_next(self):
            p = next(self.items, None)
            if p is None:
                return None
            rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(p)), (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
            x = ((rgb.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None]
            return {"image": np.ascontiguousarray(x)}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(onnx_path), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return out


class Torch(Timed):
    name = "PyTorch"

    def __init__(self, model, x, threads):
        self.m, self.x, self.threads = model, torch.from_numpy(x), threads

    def run(self):
        torch.set_num_threads(self.threads)
        with torch.no_grad():
            self.m(self.x)


# Hydra's bf16 and int8 run where the CPU has the instructions (elsewhere they refuse to start).
FLAGS = open("/proc/cpuinfo").read()
BF16 = "avx512_bf16" in FLAGS
INT8 = BF16 and "avx512_vnni" in FLAGS


def versions():
    import onnxruntime
    import openvino
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
    return {"cpu": cpu, "cores": os.cpu_count(), "avx512f": "avx512f" in flags, "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__,
            "numpy": np.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hydra", default=str(ROOT / ".build/release/hydra"))
    ap.add_argument("--runs", type=int, default=30, help="timed runs per engine and configuration")
    ap.add_argument("--blocks", type=int, default=6, help="interleaved blocks the runs are split into")
    ap.add_argument("--sizes", default="1226x370,640x480")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--weights", choices=["built-in", "random"], default="built-in")
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hydra-bench-"))
    if a.weights == "built-in":
        import shutil
        import safetensors_reader
        weights = ROOT / "Sources/HydraEngine/Resources/default.safetensors"
        model = MultiTaskRefineNet(6, False)
        model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in safetensors_reader.read(weights).items()})
        model.eval()
        shutil.copy(weights, tmp / "m.safetensors")
    else:
        model = randomise(MultiTaskRefineNet(a.classes, False), seed=2019)
        torch.save({"state_dict": model.state_dict()}, tmp / "m.ckpt")
        subprocess.run([a.hydra, "convert", str(tmp / "m.ckpt"), str(tmp / "m.safetensors")], check=True, capture_output=True)
    if INT8:
        images = scenes(tmp)
        subprocess.run([a.hydra, "calibrate", "--model", str(tmp / "m.safetensors"), "--images", str(images[0].parent),
                        "--out", str(tmp / "m-int8.safetensors")], check=True, capture_output=True)
    rows, raw = [], {}
    per_block = max(1, a.runs // a.blocks)
    for size in a.sizes.split(","):
        w, h = map(int, size.split("x"))
        onnx_path = tmp / f"m_{w}x{h}.onnx"
        x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
        torch.onnx.export(model, torch.from_numpy(x), str(onnx_path), opset_version=13, input_names=["image"],
                          output_names=["segm", "depth"])
        flops = conv_flops(model, w, h)
        for threads in map(int, a.threads.split(",")):
            engines = [Hydra(a.hydra, str(tmp / "m.safetensors"), w, h, threads), ORT(onnx_path, x, threads),
                       OpenVINO(onnx_path, x, threads), OpenVINO(onnx_path, x, threads, precision=None), Torch(model, x, threads)]
            if BF16:
                engines.insert(1, Hydra(a.hydra, str(tmp / "m.safetensors"), w, h, threads, precision="bf16"))
            if INT8:
                qdq = tmp / f"m_{w}x{h}.int8.onnx"
                if not qdq.exists():
                    quantize(onnx_path, images, w, h, qdq)
                engines.insert(2, Hydra(a.hydra, str(tmp / "m-int8.safetensors"), w, h, threads, precision="int8"))
                ort8 = ORT(qdq, x, threads)
                ort8.name = "ONNX Runtime int8"
                engines += [ort8, OpenVINOInt8(qdq, x, threads)]
            times = {e.name: [] for e in engines}
            for _ in range(a.blocks):
                for e in engines:
                    times[e.name] += e.block(per_block)
            med = {k: statistics.median(v) for k, v in times.items()}
            row = {"size": size, "threads": threads, "gflop": flops / 1e9}
            for k, v in times.items():
                row[k] = (med[k], percentile(v, 0.9), flops / (med[k] / 1e3) / 1e9)
            row["hydra/ort"] = med["Hydra"] / med["ONNX Runtime"]
            row["hydra/openvino"] = med["Hydra"] / med["OpenVINO"]
            if BF16:
                row["bf16/f32"] = med["Hydra bf16"] / med["Hydra"]
                row["bf16/openvino bf16"] = med["Hydra bf16"] / med["OpenVINO default (bf16 here)"]
            if INT8:
                row["int8/f32"] = med["Hydra int8"] / med["Hydra"]
                row["int8/best peer int8"] = med["Hydra int8"] / min(med["ONNX Runtime int8"], med["OpenVINO int8"])
            rows.append(row)
            raw[f"{size} {threads}t"] = times
            print(f"{size} {threads} thread(s): " + ", ".join(f"{k} {v[0]:.1f} ms (p90 {v[1]:.1f})" for k, v in row.items()
                                                            if isinstance(v, tuple))
                  + f"; Hydra/ORT {row['hydra/ort']:.2f}, Hydra/OpenVINO {row['hydra/openvino']:.2f}"
                  + (f"; Hydra bf16/f32 {row['bf16/f32']:.2f}, Hydra bf16/OpenVINO bf16 {row['bf16/openvino bf16']:.2f}" if BF16 else "")
                  + (f"; Hydra int8/f32 {row['int8/f32']:.2f}, Hydra int8/faster peer int8 {row['int8/best peer int8']:.2f}" if INT8 else ""),
                  flush=True)
    write(a, rows, raw, versions(), per_block)


def write(a, rows, raw, v, per_block):
    names = (["Hydra"] + (["Hydra bf16"] if BF16 else []) + (["Hydra int8"] if INT8 else [])
             + ["ONNX Runtime", "OpenVINO", "OpenVINO default (bf16 here)", "PyTorch"]
             + (["ONNX Runtime int8", "OpenVINO int8"] if INT8 else []))
    extra = (["bf16/f32", "bf16/openvino bf16"] if BF16 else []) + (["int8/f32", "int8/best peer int8"] if INT8 else [])
    lines = ["# Benchmark results", "",
             "Generated by `make bench` (benchmarks/compare.py); do not edit by hand.", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
             f"- machine: {v['cpu']}, {v['cores']} cores, AVX-512: {v['avx512f']}",
             f"- versions: onnxruntime {v['onnxruntime']}, openvino {v['openvino']}, torch {v['torch']}, numpy {v['numpy']}, python {v['python']}",
             f"- method: batch 1, same weights ({'the built-in trained model' if a.weights == 'built-in' else 'random'}, {a.classes} classes, 2 heads), {a.blocks} interleaved blocks x {per_block} timed runs per engine "
             "after warm-up; Hydra's time includes uint8 -> float preprocessing; ORT with all graph optimisations, "
             "OpenVINO with the LATENCY hint and f32 inference precision (its default on this CPU is bfloat16, "
             "listed separately: not the same computation); GFLOP/s = convolution FLOPs / median time; "
             "Hydra/ORT and Hydra/OpenVINO compare the f32 engines; Hydra bf16 (`--precision bf16`, on CPUs with "
             "AVX512-BF16) is compared with Hydra f32 and with OpenVINO's bf16 default; Hydra int8 (`--precision int8`, "
             "AVX512-VNNI, `hydra calibrate` on 12 generated scenes) with Hydra f32 and with the faster of ONNX Runtime "
             "and OpenVINO running ONNX Runtime's QDQ int8 model (quantize_static, per-channel, min-max, the same 12 scenes).", "",
             "| size | threads | GFLOP | " + " | ".join(f"{n} median / p90 ms (GFLOP/s)" for n in names) + " | Hydra/ORT | Hydra/OpenVINO |"
             + "".join(f" Hydra {e} |" for e in extra),
             "|---|---|---|" + "---|" * len(names) + "---|---|" + "---|" * len(extra)]
    for r in rows:
        cells = [f"{r[n][0]:.1f} / {r[n][1]:.1f} ({r[n][2]:.0f})" for n in names]
        lines.append(f"| {r['size']} | {r['threads']} | {r['gflop']:.2f} | " + " | ".join(cells)
                     + f" | {r['hydra/ort']:.2f} | {r['hydra/openvino']:.2f} |" + "".join(f" {r[e]:.2f} |" for e in extra))
    lines += ["", "## Raw times (ms)", ""]
    for k, t in raw.items():
        lines.append(f"### {k}")
        for n in names:
            lines.append(f"- {n}: " + ", ".join(f"{x:.1f}" for x in t[n]))
        lines.append("")
    pathlib.Path(a.out).write_text("\n".join(lines))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
