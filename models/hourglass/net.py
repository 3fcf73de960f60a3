"""Stacked Hourglass network (Newell, Yang & Deng, ECCV 2016).

This module is the single definition of the network used by every other part of
the package (complexity measurement, ONNX export, test fixtures).

Layout, for an input of ``H x W`` pixels:

* stem: 7x7/2 conv (64) + BN + ReLU, Residual(64->128), MaxPool 2x2,
  Residual(128->128), Residual(128->features)  ->  ``features x H/4 x W/4``
* ``stacks`` times: Hourglass(depth) -> Residual -> 1x1 conv + BN + ReLU
  -> 1x1 conv to ``joints`` heatmaps.  Between stacks (intermediate
  supervision) the features and the heatmaps are remapped by 1x1 convs and
  added back onto the trunk.

``forward`` returns the list of every stack's heatmaps, each
``[N, joints, H/4, W/4]``; the last entry is the final prediction.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

Size = Union[int, Sequence[int]]


def as_hw(size: Size) -> Tuple[int, int]:
    """Normalise an ``int`` or ``(height, width)`` to a ``(height, width)`` tuple."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class Residual(nn.Module):
    """Pre-activation bottleneck residual module.

    BN-ReLU-conv1x1(out/2) - BN-ReLU-conv3x3(out/2) - BN-ReLU-conv1x1(out), plus a
    skip connection that is the identity when ``in_ch == out_ch`` and a 1x1 conv
    otherwise.  Spatial size is preserved.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        if out_ch % 2:
            raise ValueError(f"Residual needs an even number of output channels, got {out_ch}")
        mid = out_ch // 2
        self.in_ch = in_ch
        self.out_ch = out_ch
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid, kernel_size=1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, kernel_size=1)
        self.skip = nn.Conv2d(in_ch, out_ch, kernel_size=1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        s = x if self.skip is None else self.skip(x)
        return y + s


def _residuals(in_ch: int, out_ch: int, count: int) -> nn.Sequential:
    """``count`` residual modules in a row; the first one maps ``in_ch`` to ``out_ch``."""
    if count < 1:
        raise ValueError("need at least one residual module per site")
    mods = [Residual(in_ch, out_ch)] + [Residual(out_ch, out_ch) for _ in range(count - 1)]
    return nn.Sequential(*mods)


class Hourglass(nn.Module):
    """Recursive hourglass of the given depth; output shape equals input shape.

    upper branch: residual(s) at the current resolution;
    lower branch: MaxPool 2x2 -> residual(s) -> Hourglass(depth-1) (or residual(s)
    at the innermost level) -> residual(s) -> nearest-neighbour upsample x2;
    output = upper + lower.
    """

    def __init__(self, depth: int, features: int, num_modules: int = 1):
        super().__init__()
        if depth < 1:
            raise ValueError(f"hourglass depth must be >= 1, got {depth}")
        self.depth = depth
        self.up1 = _residuals(features, features, num_modules)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.low1 = _residuals(features, features, num_modules)
        if depth > 1:
            self.low2: nn.Module = Hourglass(depth - 1, features, num_modules)
        else:
            self.low2 = _residuals(features, features, num_modules)
        self.low3 = _residuals(features, features, num_modules)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upper = self.up1(x)
        lower = self.low3(self.low2(self.low1(self.pool(x))))
        return upper + self.up2(lower)


class StackedHourglass(nn.Module):
    """The full network; ``forward`` returns a list of per-stack heatmaps."""

    def __init__(
        self,
        stacks: int = 8,
        features: int = 256,
        joints: int = 16,
        input_size: Size = 256,
        depth: int = 4,
        num_modules: int = 1,
    ):
        super().__init__()
        if stacks < 1:
            raise ValueError(f"need at least one stack, got {stacks}")
        if joints < 1:
            raise ValueError(f"need at least one joint, got {joints}")
        h, w = as_hw(input_size)
        # stem divides by 4, each hourglass level halves once more.
        multiple = 4 * 2**depth
        if h % multiple or w % multiple:
            raise ValueError(
                f"input size {h}x{w} must be a multiple of {multiple} for an hourglass of depth {depth}"
            )
        self.stacks = stacks
        self.features = features
        self.joints = joints
        self.input_size = (h, w)
        self.depth = depth
        self.num_modules = num_modules

        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=False),
            Residual(64, 128),
            nn.MaxPool2d(kernel_size=2, stride=2),
            Residual(128, 128),
            Residual(128, features),
        )
        self.hourglasses = nn.ModuleList(
            Hourglass(depth, features, num_modules) for _ in range(stacks)
        )
        self.post = nn.ModuleList(
            _residuals(features, features, num_modules) for _ in range(stacks)
        )
        self.lin = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(features, features, kernel_size=1),
                nn.BatchNorm2d(features),
                nn.ReLU(inplace=False),
            )
            for _ in range(stacks)
        )
        self.heads = nn.ModuleList(
            nn.Conv2d(features, joints, kernel_size=1) for _ in range(stacks)
        )
        # 1x1 remaps added back onto the trunk, for every stack but the last.
        self.remap_features = nn.ModuleList(
            nn.Conv2d(features, features, kernel_size=1) for _ in range(stacks - 1)
        )
        self.remap_heatmaps = nn.ModuleList(
            nn.Conv2d(joints, features, kernel_size=1) for _ in range(stacks - 1)
        )

    @property
    def heatmap_size(self) -> Tuple[int, int]:
        h, w = self.input_size
        return h // 4, w // 4

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        trunk = self.stem(x)
        outputs: List[torch.Tensor] = []
        for i in range(self.stacks):
            y = self.hourglasses[i](trunk)
            y = self.post[i](y)
            feats = self.lin[i](y)
            heat = self.heads[i](feats)
            outputs.append(heat)
            if i < self.stacks - 1:
                trunk = trunk + self.remap_features[i](feats) + self.remap_heatmaps[i](heat)
        return outputs
