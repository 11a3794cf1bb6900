#!/usr/bin/python3
"""Trains the multi-task network (the test reference's PyTorch definition) on generated scenes.

Segmentation: cross-entropy. Depth: L1 on log depth where the ground truth has depth (0 = none)
within --max-depth. Augmentation: random zoom (depth divided by the zoom, as if the camera moved),
crop, horizontal flip, colour jitter and noise. Logs losses to --log; saves a checkpoint (the
authors' format: {'state_dict': ...}) every --save-minutes and at the end.

    python3 training/train.py --data DIR --minutes 60 --out model.ckpt --log training/logs/train.log
"""
import argparse
import math
import pathlib
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "Tests" / "Reference"))
from refinenet import MEAN, STD, MultiTaskRefineNet  # noqa: E402

KITTI_COLOURS = np.array([[128, 128, 128], [128, 0, 0], [128, 64, 128], [0, 0, 192], [128, 128, 0], [64, 0, 128]])


def colour_to_labels(rgb):
    """KITTI colour-coded ground truth to class ids; 255 where no class colour matches (void)."""
    code = rgb[..., 0].astype(np.int32) << 16 | rgb[..., 1].astype(np.int32) << 8 | rgb[..., 2]
    labels = np.full(rgb.shape[:2], 255, np.uint8)
    for i, c in enumerate(KITTI_COLOURS):
        labels[code == (c[0] << 16 | c[1] << 8 | c[2])] = i
    return labels


def load(data, skip=()):
    """Frames in `data` not in `skip` (whose ground truth is complete)."""
    frames = sorted(p for p in pathlib.Path(data).glob("scene_[0-9]*.png") if p.name not in skip)
    images, labels, depths, names = [], [], [], []
    for p in frames:
        if not p.with_name(p.name.replace("scene_", "scene_depth_gt_")).exists():
            continue  # still being written
        names.append(p.name)
        stem = p.stem.split("_")[-1]
        images.append(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))
        labels.append(colour_to_labels(cv2.cvtColor(cv2.imread(str(p.with_name(f"scene_segm_gt_{stem}.png"))), cv2.COLOR_BGR2RGB)))
        depths.append(cv2.imread(str(p.with_name(f"scene_depth_gt_{stem}.png")), cv2.IMREAD_UNCHANGED))
    return images, labels, depths, names


def sample(rng, image, label, depth, crop_w, crop_h):
    """One augmented crop: zoom, crop, flip, colour."""
    h, w = label.shape
    zoom = rng.uniform(max(crop_h / h, crop_w / w) * 1.01, 2.2)
    nh, nw = int(round(h * zoom)), int(round(w * zoom))
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
    depth = cv2.resize(depth, (nw, nh), interpolation=cv2.INTER_NEAREST).astype(np.float32) / 256.0 / zoom
    y, x = rng.integers(0, nh - crop_h + 1), rng.integers(0, nw - crop_w + 1)
    image, label, depth = image[y:y + crop_h, x:x + crop_w], label[y:y + crop_h, x:x + crop_w], depth[y:y + crop_h, x:x + crop_w]
    if rng.random() < 0.5:
        image, label, depth = image[:, ::-1], label[:, ::-1], depth[:, ::-1]
    img = image.astype(np.float32) / 255.0
    img = img * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)  # brightness / offset
    grey = img.mean(-1, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.6, 1.4)  # saturation
    img = img * rng.uniform(0.9, 1.1, 3)  # white balance
    img += rng.normal(0, rng.uniform(0, 0.03), img.shape)
    img = (np.clip(img, 0, 1) - MEAN) / STD
    return img.transpose(2, 0, 1).astype(np.float32), label.astype(np.int64), depth.astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="final checkpoint (.ckpt)")
    ap.add_argument("--log", required=True)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--max-steps", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", default="384x160")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-depth", type=float, default=80.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-minutes", type=float, default=10)
    ap.add_argument("--resume", help="checkpoint to continue from")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    crop_w, crop_h = map(int, a.crop.split("x"))
    images, labels, depths, names = load(a.data)
    known = set(names)
    assert images, f"no scene_*.png frames in {a.data}"
    model = MultiTaskRefineNet(6, False)
    step = 0
    if a.resume:
        ck = torch.load(a.resume)
        model.load_state_dict(ck["state_dict"])
        step = ck.get("step", 0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    log = open(a.log, "a")
    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()
    say(f"# {len(images)} frames from {a.data}, crop {crop_w}x{crop_h}, batch {a.batch}, {a.minutes} min, lr {a.lr}")
    start = time.time()
    budget = a.minutes * 60
    last_save = start
    stats = []

    def save(path):
        torch.save({"state_dict": model.state_dict(), "step": step}, path)

    while step < a.max_steps and time.time() - start < budget:
        progress = min(1.0, (time.time() - start) / budget)
        lr = a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))) * min(1.0, (step + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = [sample(rng, images[i], labels[i], depths[i], crop_w, crop_h) for i in rng.integers(0, len(images), a.batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch]))
        y = torch.from_numpy(np.stack([b[1] for b in batch]))
        d = torch.from_numpy(np.stack([b[2] for b in batch]))
        seg, dep = model(x)
        seg = F.interpolate(seg, size=(crop_h, crop_w), mode="bilinear", align_corners=False)
        dep = F.interpolate(dep, size=(crop_h, crop_w), mode="bilinear", align_corners=False)[:, 0]
        loss_seg = F.cross_entropy(seg, y, ignore_index=255)
        valid = (d > 0) & (d <= a.max_depth)
        loss_depth = (torch.log(dep.abs().clamp(min=0.05))[valid] - torch.log(d[valid])).abs().mean() if valid.any() else dep.sum() * 0
        loss = loss_seg + loss_depth
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        with torch.no_grad():
            acc = (seg.argmax(1) == y)[y != 255].float().mean().item()
        stats.append((loss_seg.item(), loss_depth.item(), acc))
        if step % 300 == 0:  # frames still being generated join as they appear
            more = load(a.data, known)
            if more[3]:
                images += more[0]; labels += more[1]; depths += more[2]
                known.update(more[3])
                say(f"# {len(images)} frames")
        if step % 25 == 0:
            s = np.mean(stats, 0)
            stats = []
            say(f"step {step} min {(time.time() - start) / 60:.1f} lr {lr:.2e} loss_seg {s[0]:.4f} loss_logdepth {s[1]:.4f} pixel_acc {s[2]:.4f}")
        if time.time() - last_save > a.save_minutes * 60:
            save(a.out)
            last_save = time.time()
            say(f"# saved {a.out} at step {step}")
    save(a.out)
    say(f"# done: {step} steps in {(time.time() - start) / 60:.1f} min -> {a.out}")


if __name__ == "__main__":
    main()
