"""Parameter count and multiply-accumulates (MACs) per frame of a Stacked Hourglass.

MACs are counted for convolutions only (they are >99% of the work):
``out_h * out_w * out_c * (in_c / groups) * k_h * k_w`` per conv, batch 1.
BatchNorm, ReLU, pooling, upsampling and the residual additions are not counted.

Two independent counts are provided and must agree:

* :func:`count_macs` runs the real module with forward hooks on every ``Conv2d``
  (on PyTorch's ``meta`` device, so no arithmetic is actually done);
* :func:`analytic_macs` / :func:`analytic_params` evaluate closed formulas that
  follow the architecture description, without building the module.

CLI::

    python -m hourglass.complexity --stacks 8 --features 256
"""

from __future__ import annotations

import argparse
from typing import Optional, Tuple

import torch
import torch.nn as nn

from .net import Size, StackedHourglass, as_hw


# --------------------------------------------------------------------------- module-based counts


def count_params(model: nn.Module) -> int:
    """Number of learnable parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def conv_macs(conv: nn.Conv2d, out_h: int, out_w: int) -> int:
    """MACs of one ``Conv2d`` producing an ``out_h x out_w`` map, batch 1."""
    kh, kw = conv.kernel_size
    return out_h * out_w * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw


def count_macs(model: nn.Module, input_size: Size, device: Optional[str] = "meta") -> int:
    """Conv MACs of one forward pass of a batch-1 frame, measured with forward hooks.

    ``device="meta"`` runs the graph shape-only (fast, no memory); the model is
    expected to live on that device too (see :func:`build_meta`).  Pass
    ``device=None`` to use the model's own device.
    """
    h, w = as_hw(input_size)
    total = 0

    def hook(mod: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += conv_macs(mod, output.shape[-2], output.shape[-1])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        if device is None:
            device = next(model.parameters()).device
        x = torch.zeros(1, 3, h, w, device=device)
        model.eval()  # batch-1 BatchNorm cannot run in training mode at 1x1 resolution
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def build_meta(**cfg) -> StackedHourglass:
    """Build a network on the meta device (no storage, no init cost)."""
    with torch.device("meta"):
        return StackedHourglass(**cfg)


# --------------------------------------------------------------------------- closed formulas


def _conv_p(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout  # weights + bias


def _bn_p(c: int) -> int:
    return 2 * c  # weight + bias


def _residual_p(cin: int, cout: int) -> int:
    mid = cout // 2
    p = _bn_p(cin) + _conv_p(cin, mid, 1) + _bn_p(mid) + _conv_p(mid, mid, 3)
    p += _bn_p(mid) + _conv_p(mid, cout, 1)
    if cin != cout:
        p += _conv_p(cin, cout, 1)
    return p


def _residual_macs(h: int, w: int, cin: int, cout: int) -> int:
    mid = cout // 2
    per_pixel = cin * mid + mid * mid * 9 + mid * cout
    if cin != cout:
        per_pixel += cin * cout
    return h * w * per_pixel


def _hourglass_p(depth: int, f: int, m: int) -> int:
    inner = _hourglass_p(depth - 1, f, m) if depth > 1 else m * _residual_p(f, f)
    return 3 * m * _residual_p(f, f) + inner  # up1, low1, low3 + inner


def _hourglass_macs(depth: int, h: int, w: int, f: int, m: int) -> int:
    hh, hw = h // 2, w // 2
    inner = _hourglass_macs(depth - 1, hh, hw, f, m) if depth > 1 else m * _residual_macs(hh, hw, f, f)
    return (
        m * _residual_macs(h, w, f, f)  # up1
        + m * _residual_macs(hh, hw, f, f)  # low1
        + inner  # low2
        + m * _residual_macs(hh, hw, f, f)  # low3
    )


def analytic_params(
    stacks: int = 8, features: int = 256, joints: int = 16, depth: int = 4, num_modules: int = 1
) -> int:
    f, j, m = features, joints, num_modules
    stem = _conv_p(3, 64, 7) + _bn_p(64) + _residual_p(64, 128) + _residual_p(128, 128)
    stem += _residual_p(128, f)
    per_stack = (
        _hourglass_p(depth, f, m)
        + _residual_p(f, f) + (m - 1) * _residual_p(f, f)  # post residual(s)
        + _conv_p(f, f, 1) + _bn_p(f)  # lin
        + _conv_p(f, j, 1)  # heatmap head
    )
    remaps = _conv_p(f, f, 1) + _conv_p(j, f, 1)
    return stem + stacks * per_stack + (stacks - 1) * remaps


def analytic_macs(
    stacks: int = 8,
    features: int = 256,
    joints: int = 16,
    input_size: Size = 256,
    depth: int = 4,
    num_modules: int = 1,
) -> int:
    f, j, m = features, joints, num_modules
    h, w = as_hw(input_size)
    h2, w2 = h // 2, w // 2  # after the 7x7 stride-2 conv (padding 3)
    h4, w4 = h // 4, w // 4  # after the max-pool
    stem = h2 * w2 * 64 * 3 * 7 * 7
    stem += _residual_macs(h2, w2, 64, 128)
    stem += _residual_macs(h4, w4, 128, 128) + _residual_macs(h4, w4, 128, f)
    per_stack = (
        _hourglass_macs(depth, h4, w4, f, m)
        + m * _residual_macs(h4, w4, f, f)  # post residual(s)
        + h4 * w4 * f * f  # lin
        + h4 * w4 * f * j  # heatmap head
    )
    remaps = h4 * w4 * (f * f + j * f)
    return stem + stacks * per_stack + (stacks - 1) * remaps


# --------------------------------------------------------------------------- CLI


def measure(
    stacks: int = 8,
    features: int = 256,
    joints: int = 16,
    input_size: Size = 256,
    depth: int = 4,
    num_modules: int = 1,
) -> Tuple[int, int]:
    """``(params, macs)`` measured on the real module; asserts the formulas agree."""
    cfg = dict(stacks=stacks, features=features, joints=joints, input_size=input_size,
               depth=depth, num_modules=num_modules)
    model = build_meta(**cfg)
    params = count_params(model)
    macs = count_macs(model, input_size)
    a_params = analytic_params(stacks, features, joints, depth, num_modules)
    a_macs = analytic_macs(**cfg)
    if (params, macs) != (a_params, a_macs):
        raise AssertionError(
            f"module count ({params} params, {macs} MACs) != formula ({a_params}, {a_macs})"
        )
    return params, macs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stacks", type=int, default=8)
    ap.add_argument("--features", type=int, default=256)
    ap.add_argument("--joints", type=int, default=16)
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--modules", type=int, default=1, help="residual modules per hourglass site")
    args = ap.parse_args(argv)
    params, macs = measure(args.stacks, args.features, args.joints, args.input_size,
                           args.depth, args.modules)
    hm = args.input_size // 4
    print(f"stacked hourglass: stacks={args.stacks} features={args.features} joints={args.joints} "
          f"input={args.input_size}x{args.input_size} depth={args.depth} -> heatmaps {hm}x{hm}")
    print(f"params: {params} ({params / 1e6:.2f} M)")
    print(f"MACs:   {macs} ({macs / 1e9:.2f} GMACs per frame, convolutions only; "
          f"~{2 * macs / 1e9:.2f} GFLOPs)")
    print("(hook count and closed formula agree)")


if __name__ == "__main__":
    main()
