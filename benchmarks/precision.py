#!/usr/bin/env python3
"""Accuracy of each precision, Hydra's and its peers', on the built-in trained weights -> benchmarks/PRECISION.md.

Against PyTorch f32 on the same weights (network resolution, before any resizing): label agreement
(argmax equal) and depth mean relative error, on the shared real frames and on held-out generated
scenes; for Hydra also mIoU and depth RMSE against the scenes' ground truth (`hydra eval --precision`).
Peers: OpenVINO's default (bf16 on AVX512-BF16 CPUs) and ONNX Runtime's static int8 (QDQ, per-channel,
min-max, the 12 calibration scenes of `make calibrate`) run by ONNX Runtime and by OpenVINO.

    python benchmarks/precision.py --hydra .build/release/hydra --scenes out/heldout [--count 500]
"""
import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "Reference"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from refinenet import MultiTaskRefineNet, preprocess  # noqa: E402
import safetensors_reader  # noqa: E402
from compare import quantize, scenes, versions  # noqa: E402

WEIGHTS = ROOT / "Sources/HydraEngine/Resources/default.safetensors"
FRAMES = ROOT.parent / "shared/data/frames"


def reference_model():
    m = MultiTaskRefineNet(6, False)
    m.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in safetensors_reader.read(WEIGHTS).items()})
    return m.eval()


def rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def compare(logits, depth, ref_logits, ref_depth):
    """Label agreement and depth mean relative error of one output against the f32 reference."""
    agree = float((logits.argmax(0) == ref_logits.argmax(0)).mean())
    rel = float(np.mean(np.abs(depth - ref_depth) / np.maximum(np.abs(ref_depth), 1e-3)))
    return agree, rel


class Peer:
    """A peer engine on one input size: ONNX Runtime or OpenVINO on an ONNX model."""

    def __init__(self, kind, onnx_path, threads=2):
        if kind == "ort":
            import onnxruntime as ort
            o = ort.SessionOptions()
            o.intra_op_num_threads = threads
            s = ort.InferenceSession(str(onnx_path), o, providers=["CPUExecutionProvider"])
            self.run = lambda x: s.run(None, {"image": x})
        else:
            import openvino as ov
            core = ov.Core()
            c = core.compile_model(core.read_model(str(onnx_path)), "CPU", {"INFERENCE_NUM_THREADS": threads})
            r = c.create_infer_request()
            self.run = lambda x: [r.infer({0: x})[o] for o in c.outputs]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hydra", default=str(ROOT / ".build/release/hydra"))
    ap.add_argument("--scenes", required=True, help="held-out generated scenes with ground truth (training/scenes.py)")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "PRECISION.md"))
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hydra-precision-"))
    torch.set_num_threads(2)
    model = reference_model()
    held = sorted(p for p in pathlib.Path(a.scenes).glob("scene_*.png") if "_gt_" not in p.name)[:a.count]
    sets = {"KITTI_joint_000099 (real, 1226x370)": [FRAMES / "KITTI_joint_000099.png"],
            "NYUD_joint_000464 (real, 640x480, indoor: outside the model's domain)": [FRAMES / "NYUD_joint_000464.png"],
            f"{len(held)} held-out generated scenes (1242x375)": held}
    calib = scenes(tmp)
    hydra_precisions = ["f32", "bf16", "int8"]
    engines = [f"Hydra {p}" for p in hydra_precisions] + ["OpenVINO default (bf16 here)", "ONNX Runtime int8", "OpenVINO int8"]
    results, evals = {}, {}
    for title, images in sets.items():
        sums = {e: [0.0, 0.0] for e in engines}
        # Hydra: raw network outputs of every image, one process per precision.
        for p in hydra_precisions:
            raw = tmp / f"raw-{p}-{abs(hash(title))}"
            subprocess.run([a.hydra, "predict", "--precision", p, "--outputs", "summary", "--out", str(tmp / "o"), "--raw-dir", str(raw),
                            *map(str, images)], check=True, capture_output=True)
        peers = {}
        for i, path in enumerate(images):
            img = rgb(path)
            h, w = img.shape[:2]
            x = preprocess(img)
            with torch.no_grad():
                ref_logits, ref_depth = (t[0].numpy() for t in model(x))
            ref_depth = ref_depth[0]
            for p in hydra_precisions:
                d = tmp / f"raw-{p}-{abs(hash(title))}"
                d = d / path.stem if len(images) > 1 else d
                logits, depth = np.load(d / "segm_logits.npy"), np.load(d / "depth.npy")
                r = compare(logits, depth.reshape(ref_depth.shape), ref_logits, ref_depth)
                sums[f"Hydra {p}"][0] += r[0]
                sums[f"Hydra {p}"][1] += r[1]
            if (w, h) not in peers:
                onnx_path = tmp / f"m_{w}x{h}.onnx"
                torch.onnx.export(model, x, str(onnx_path), opset_version=13, input_names=["image"], output_names=["segm", "depth"])
                qdq = quantize(onnx_path, calib, w, h, tmp / f"m_{w}x{h}.int8.onnx")
                peers[(w, h)] = {"OpenVINO default (bf16 here)": Peer("ov", onnx_path), "ONNX Runtime int8": Peer("ort", qdq),
                                 "OpenVINO int8": Peer("ov", qdq)}
            xn = np.ascontiguousarray(x.numpy())
            for name, peer in peers[(w, h)].items():
                out = peer.run(xn)
                r = compare(out[0][0], out[1][0][0], ref_logits, ref_depth)
                sums[name][0] += r[0]
                sums[name][1] += r[1]
            if (i + 1) % 50 == 0:
                print(f"{title}: {i + 1}/{len(images)}", flush=True)
        results[title] = {e: (s[0] / len(images), s[1] / len(images)) for e, s in sums.items()}
        print(title, {e: f"{v[0] * 100:.2f} % / {v[1] * 100:.2f} %" for e, v in results[title].items()}, flush=True)
    # mIoU and RMSE against ground truth, per Hydra precision.
    kitti = tmp / "kitti"
    kitti.mkdir()
    for f in ["KITTI_joint_000099.png", "KITTI_joint_segm_gt_000099.png"]:
        (kitti / f).symlink_to(FRAMES / f)
    for title, folder, extra in [(sets_key(sets, "held-out"), a.scenes, ["--limit", str(a.count)]), ("KITTI_joint_000099 (real)", kitti, [])]:
        for p in hydra_precisions:
            out = subprocess.run([a.hydra, "eval", "--dataset", "kitti", "--precision", p, "--json", str(tmp / "e.json"), *extra, str(folder)],
                                 check=True, capture_output=True, text=True)
            evals[(title, p)] = json.loads((tmp / "e.json").read_text())
    write(a, results, evals, versions())


def sets_key(sets, word):
    return next(k for k in sets if word in k)


def write(a, results, evals, v):
    sens = json.loads((ROOT / "benchmarks" / "int8-sensitivity.json").read_text())
    lines = ["# Accuracy per precision", "",
             "Generated by `make precision` (benchmarks/precision.py); do not edit by hand. docs/PRECISION.md says what runs in each precision.", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
             f"- machine: {v['cpu']}; onnxruntime {v['onnxruntime']}, openvino {v['openvino']}, torch {v['torch']}",
             "- weights: the built-in model (trained by the project on generated street scenes); reference: PyTorch f32 on the same "
             "weights; outputs compared at the network's resolution (a quarter of the input), before any resizing",
             "- int8 calibration: 12 generated scenes (seeds 700000-700011), the same for Hydra (`hydra calibrate`) and for ONNX Runtime's "
             "quantize_static (QDQ, per-channel s8 weights, u8 activations, min-max); the held-out scenes are seeds 800000 on", "",
             "## Agreement with f32", "", "Label agreement (argmax equal) / depth mean relative error, mean over the images of each set.", "",
             "| engine | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    engines = list(next(iter(results.values())))
    for e in engines:
        lines.append(f"| {e} | " + " | ".join(f"{r[e][0] * 100:.2f} % / {r[e][1] * 100:.2f} %" for r in results.values()) + " |")
    lines += ["", "## Against ground truth (`hydra eval --precision`)", "",
              "| set | precision | mIoU | pixel accuracy | depth RMSE (m) | abs-rel |", "|---|---|---|---|---|---|"]
    for (title, p), e in evals.items():
        dep = e.get("depth", {})

        def f(d, k, scale=1, unit=""):
            return f"{d[k] * scale:.2f}{unit}" if d.get(k) is not None else "-"
        lines.append(f"| {title} | {p} | {f(e, 'miou', 100, ' %')} | {f(e, 'pixel_accuracy', 100, ' %')} | {f(dep, 'rmse_m')} | "
                     f"{f(dep, 'abs_rel', 100, ' %')} |")
    lines += ["", "## int8 per-layer sensitivity (`hydra calibrate`, on its 12 calibration scenes)", "",
              f"Agreement with f32 when only that layer runs in int8 (the others in bf16); no layer in int8: "
              f"{sens['noneInt8']['labels'] * 100:.2f} % / {sens['noneInt8']['depthRelativeError'] * 100:.2f} %; all in int8: "
              f"{sens['allInt8']['labels'] * 100:.2f} % / {sens['allInt8']['depthRelativeError'] * 100:.2f} %; kept in bf16: "
              f"{', '.join(sens['keep']) or 'none'}. Most sensitive first.", "",
              "| layer | share of the multiply-adds int8 can run | label agreement | depth relative error |", "|---|---|---|---|"]
    for l in sens["layers"]:
        lines.append(f"| {l['layer']} | {l['multiplyAddShare'] * 100:.2f} % | {l['agreement']['labels'] * 100:.2f} % | "
                     f"{l['agreement']['depthRelativeError'] * 100:.2f} % |")
    pathlib.Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
