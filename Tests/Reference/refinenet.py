"""Test-only PyTorch reference of the multi-task Light-Weight RefineNet (MODEL.md).

Written from the layer-by-layer description so that its parameter names are the official
ones; used to make checkpoints with random weights and to compute expected outputs.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        self.residual = cin == cout and stride == 1
        self.output = nn.Sequential(
            conv_bn(cin, hidden, 1),
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, cout, 1, act=False),
        )

    def forward(self, x):
        out = self.output(x)
        return out + x if self.residual else out


class CRPBlock(nn.Module):
    def __init__(self, channels, stages, grouped):
        super().__init__()
        self.stages = stages
        for i in range(stages):
            conv = nn.Conv2d(channels, channels, 1, bias=False, groups=channels if grouped else 1)
            setattr(self, f"{i + 1}_outvar_dimred", conv)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        top = x
        for i in range(self.stages):
            top = self.pool(top)
            top = getattr(self, f"{i + 1}_outvar_dimred")(top)
            x = x + top
        return x


class MultiTaskRefineNet(nn.Module):
    def __init__(self, num_classes=6, normals=False):
        super().__init__()
        self.layer1 = conv_bn(3, 32, 3, 2)
        cin = 32
        for idx, (t, c, n, s) in enumerate(BLOCKS):
            blocks = []
            for r in range(n):
                blocks.append(InvertedResidual(cin, c, s if r == 0 else 1, t))
                cin = c
            setattr(self, f"layer{idx + 2}", nn.Sequential(*blocks))
        for layer, c in [(8, 320), (7, 160), (6, 96), (5, 64), (4, 32), (3, 24)]:
            setattr(self, f"conv{layer}", nn.Conv2d(c, 256, 1, bias=False))
        self.crp4 = nn.Sequential(CRPBlock(256, 4, False))
        self.crp3 = nn.Sequential(CRPBlock(256, 4, False))
        self.crp2 = nn.Sequential(CRPBlock(256, 4, False))
        self.crp1 = nn.Sequential(CRPBlock(256, 4, True))
        self.conv_adapt4 = nn.Conv2d(256, 256, 1, bias=False)
        self.conv_adapt3 = nn.Conv2d(256, 256, 1, bias=False)
        self.conv_adapt2 = nn.Conv2d(256, 256, 1, bias=False)
        self.pre_depth = nn.Conv2d(256, 256, 1, groups=256, bias=False)
        self.depth = nn.Conv2d(256, 1, 3, padding=1, bias=True)
        self.pre_segm = nn.Conv2d(256, 256, 1, groups=256, bias=False)
        self.segm = nn.Conv2d(256, num_classes, 3, padding=1, bias=True)
        self.normals = normals
        if normals:
            self.pre_normal = nn.Conv2d(256, 256, 1, groups=256, bias=False)
            self.normal = nn.Conv2d(256, 3, 3, padding=1, bias=True)
        self.relu = nn.ReLU6(inplace=False)

    @staticmethod
    def up(x, like):
        return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, x):
        x = self.layer1(x)
        x = self.layer2(x)
        l3 = self.layer3(x)
        l4 = self.layer4(l3)
        l5 = self.layer5(l4)
        l6 = self.layer6(l5)
        l7 = self.layer7(l6)
        l8 = self.layer8(l7)
        a = self.relu(self.conv8(l8) + self.conv7(l7))
        a = self.up(self.conv_adapt4(self.crp4(a)), l6)
        b = self.relu(self.conv5(l5) + self.conv6(l6) + a)
        b = self.up(self.conv_adapt3(self.crp3(b)), l4)
        c = self.relu(self.conv4(l4) + b)
        c = self.up(self.conv_adapt2(self.crp2(c)), l3)
        d = self.relu(self.conv3(l3) + c)
        d = self.crp1(d)
        out = [self.segm(self.relu(self.pre_segm(d))), self.depth(self.relu(self.pre_depth(d)))]
        if self.normals:
            out.append(self.normal(self.relu(self.pre_normal(d))))
        return out


def randomise(model, seed, calibrate_size=(320, 256)):
    """Random weights with realistic BatchNorm statistics, deterministic from seed.

    Untrained networks with arbitrary BN statistics amplify float32 rounding layer after layer
    (torch's own float32 then differs from float64 by ~1e-3 relative), which would make a parity
    test meaningless. So, as in a trained network, running statistics are measured on the
    activations (a calibration pass over random frames) and then perturbed slightly, so that
    BatchNorm folding is still exercised with non-trivial values.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and not name.endswith("bias"):  # BN gamma
                p.copy_(0.6 + torch.rand(p.shape, generator=g) * 0.6)
            elif p.dim() == 1:
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 - 0.2)
            else:
                fan_in = p[0].numel()
                bound = (3.0 / fan_in) ** 0.5 if fan_in > 1 else 1.0
                centre = 0.0 if fan_in > 1 else 0.5
                p.copy_(centre + (torch.rand(p.shape, generator=g) * 2 - 1) * bound)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        model.train()
        w, h = calibrate_size
        for _ in range(2):
            model(torch.randn(2, 3, h, w, generator=g))
        for bn in bns:
            bn.momentum = 0.1
            bn.running_mean.add_(torch.randn(bn.running_mean.shape, generator=g) * 0.05)
            bn.running_var.mul_(0.8 + torch.rand(bn.running_var.shape, generator=g) * 0.45)
            bn.num_batches_tracked.fill_(1000)
    return model.eval()


def preprocess(rgb_uint8):
    """HxWx3 uint8 RGB -> 1x3xHxW normalised float tensor."""
    x = torch.from_numpy(rgb_uint8).float().permute(2, 0, 1).unsqueeze(0) / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std
