#!/usr/bin/python3
"""Rescales a checkpoint's depth head for a camera of another focal length.

A monocular depth network learns depth from apparent size, which scales with the focal length in
pixels. Frames rendered at half resolution have half KITTI's focal length (360.8 px), so for
full-resolution KITTI frames (721.5 px) the depth output is multiplied by their ratio. The head is
linear (conv weight and bias), so scaling both is exact.

    python3 training/calibrate_depth.py IN.ckpt OUT.ckpt --train-width 621 --target-width 1242
"""
import argparse

import torch

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("input")
ap.add_argument("output")
ap.add_argument("--train-width", type=float, default=621)
ap.add_argument("--target-width", type=float, default=1242)
a = ap.parse_args()
factor = a.target_width / a.train_width
ck = torch.load(a.input)
sd = ck["state_dict"]
sd["depth.weight"] *= factor
sd["depth.bias"] *= factor
torch.save({"state_dict": sd, "depth_calibration": factor}, a.output)
print(f"depth head x{factor:.4f} -> {a.output}")
