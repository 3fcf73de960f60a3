"""Export a Stacked Hourglass to ONNX (opset 13, batch 1) and check it with onnxruntime.

CLI::

    python -m hourglass.export --stacks 2 --features 32 --joints 16 --input-size 256 \\
        --seed 0 --outputs per-stack --layout nchw -o hg.onnx
    python -m hourglass.export --stacks 8 --features 256 --weights ckpt.pt \\
        --outputs stacked -o hg8.onnx

Graph contract:

* one input named ``input``: ``[1, 3, H, W]`` (``--layout nchw``) or
  ``[1, H, W, 3]`` (``--layout nhwc``; a Transpose inside the graph makes it NCHW);
* ``--outputs per-stack``: outputs ``heatmaps_0`` .. ``heatmaps_{S-1}``, each
  ``[1, J, H/4, W/4]``; ``--outputs stacked``: one output ``heatmaps``
  ``[1, S, J, H/4, W/4]``.  Outputs are always channels-first.

Without ``--weights`` the network gets a seeded random initialisation in which
BatchNorm is deliberately not an identity (see :func:`randomize`).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .net import Residual, Size, StackedHourglass, as_hw

OUTPUT_KINDS = ("per-stack", "stacked")
LAYOUTS = ("nchw", "nhwc")
OPSET = 13


# --------------------------------------------------------------------------- model construction


def randomize(model: StackedHourglass, seed: int) -> StackedHourglass:
    """Seeded random weights with non-trivial BatchNorm, for test models.

    * Convolutions: PyTorch's default init distribution (uniform, bound
      1/sqrt(fan_in)) for weights and biases.
    * BatchNorm affine: ``weight`` in [0.5, 1.5], ``bias`` ~ N(0, 0.2); the last BN
      of each residual branch gets ``weight`` in [0.2, 0.5] instead (damped branch).
    * BatchNorm running statistics: calibrated on a seeded random batch of uniform
      [0, 1] pixels (what the fixtures feed), so every BN really shifts and scales
      its input, then perturbed: mean shifted by N(0, 0.1) std, variance scaled by
      a factor in [1.4, 2.8].

    Why the damping and the inflated variances: with exact batch statistics and
    full-strength branches a random network is "chaotic": float32 round-off grows
    ~5x per hourglass, and two runtimes disagree by ~1e-4 after 2 stacks (~1e-3
    after 8).  Slightly contractive BNs keep the float32-vs-float64 error ~1e-6
    while the heatmaps still vary spatially with distinct maxima.

    Deterministic for a given ``seed``; leaves the model in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return torch.empty(t.shape).uniform_(lo, hi, generator=gen)

    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d):
                fan_in = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
                bound = 1.0 / math.sqrt(fan_in)
                mod.weight.copy_(uniform(mod.weight, -bound, bound))
                if mod.bias is not None:
                    mod.bias.copy_(uniform(mod.bias, -bound, bound))
            elif isinstance(mod, nn.BatchNorm2d):
                mod.weight.copy_(uniform(mod.weight, 0.5, 1.5))
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.2)
        for mod in model.modules():
            if isinstance(mod, Residual):
                mod.bn3.weight.copy_(uniform(mod.bn3.weight, 0.2, 0.5))

        # Calibrate running statistics: one train-mode pass with a cumulative average.
        # The innermost hourglass level is input/64 per side, so use enough frames that
        # every BN sees at least 64 values per channel.
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        h, w = model.input_size
        inner = max(1, (h >> (2 + model.depth)) * (w >> (2 + model.depth)))
        frames = max(2, math.ceil(64 / inner))
        model.train()
        model(torch.rand(frames, 3, h, w, generator=gen))
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
            m.num_batches_tracked.zero_()
            c = m.num_features
            m.running_mean.add_(torch.randn(c, generator=gen) * 0.1 * m.running_var.sqrt())
            m.running_var.mul_(torch.empty(c).uniform_(1.4, 2.8, generator=gen))
    model.eval()
    return model


def load_weights(model: nn.Module, path: str) -> None:
    """Load a state dict (possibly wrapped in ``{"state_dict": ...}``) strictly."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict) and "state_dict" in ckpt and isinstance(ckpt["state_dict"], dict):
        ckpt = ckpt["state_dict"]
    # tolerate checkpoints saved from nn.DataParallel
    ckpt = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt.items()}
    model.load_state_dict(ckpt, strict=True)


def build_model(
    stacks: int,
    features: int,
    joints: int = 16,
    input_size: Size = 256,
    depth: int = 4,
    seed: int = 0,
    weights: Optional[str] = None,
    num_modules: int = 1,
) -> StackedHourglass:
    """A network in eval mode: trained ``weights`` if given, else seeded random."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = StackedHourglass(stacks, features, joints, input_size, depth, num_modules)
    if weights:
        load_weights(model, weights)
    else:
        randomize(model, seed)
    return model.eval()


# --------------------------------------------------------------------------- export wrapper


class ExportWrapper(nn.Module):
    """Adapts the network's list output and input layout to the ONNX contract."""

    def __init__(self, model: StackedHourglass, outputs: str = "per-stack", layout: str = "nchw"):
        super().__init__()
        if outputs not in OUTPUT_KINDS:
            raise ValueError(f"outputs must be one of {OUTPUT_KINDS}, got {outputs!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.model = model
        self.outputs = outputs
        self.layout = layout

    def forward(self, x: torch.Tensor):
        if self.layout == "nhwc":
            x = x.permute(0, 3, 1, 2)
        heatmaps = self.model(x)
        if self.outputs == "stacked":
            return torch.cat([h.unsqueeze(1) for h in heatmaps], dim=1)
        return tuple(heatmaps)

    def input_shape(self) -> Tuple[int, int, int, int]:
        h, w = self.model.input_size
        return (1, h, w, 3) if self.layout == "nhwc" else (1, 3, h, w)

    def output_names(self) -> List[str]:
        if self.outputs == "stacked":
            return ["heatmaps"]
        return [f"heatmaps_{i}" for i in range(self.model.stacks)]


def export_onnx(
    model: StackedHourglass, path: str, outputs: str = "per-stack", layout: str = "nchw"
) -> List[str]:
    """Write ``model`` to ``path`` as ONNX; returns the output names."""
    model.eval()
    wrapper = ExportWrapper(model, outputs, layout).eval()
    dummy = torch.zeros(wrapper.input_shape())
    names = wrapper.output_names()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but works
        torch.onnx.export(
            wrapper,
            (dummy,),
            buf,
            opset_version=OPSET,
            dynamo=False,
            input_names=["input"],
            output_names=names,
            do_constant_folding=True,
            export_params=True,
        )
    import onnx

    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    proto.producer_name = "hgpose/models/hourglass"
    proto.producer_version = ""  # keep files byte-identical across torch patch releases
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return names


# --------------------------------------------------------------------------- verification


def torch_heatmaps(model: StackedHourglass, x_nchw: np.ndarray) -> np.ndarray:
    """All stacks' heatmaps for one NCHW batch-1 input, as ``[S, J, H/4, W/4]`` float32."""
    with torch.no_grad():
        outs = model(torch.from_numpy(np.ascontiguousarray(x_nchw, dtype=np.float32)))
    return torch.cat(outs, dim=0).numpy().astype(np.float32)


def run_onnx(path: str, x: np.ndarray) -> List[np.ndarray]:
    """Run an ONNX file with onnxruntime (CPU, deterministic settings)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.astype(np.float32)})


def onnx_as_stack(outs: Sequence[np.ndarray], outputs: str) -> np.ndarray:
    """ORT outputs of either kind -> ``[S, J, H, W]``."""
    if outputs == "stacked":
        (stacked,) = outs
        return stacked[0]
    return np.concatenate(outs, axis=0)


def verify(
    model: StackedHourglass,
    path: str,
    outputs: str = "per-stack",
    layout: str = "nchw",
    x_nchw: Optional[np.ndarray] = None,
    seed: int = 1234,
) -> float:
    """Max abs difference between onnxruntime on ``path`` and PyTorch on ``model``."""
    if x_nchw is None:
        h, w = model.input_size
        x_nchw = np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)
    ref = torch_heatmaps(model, x_nchw)
    feed = x_nchw.transpose(0, 2, 3, 1) if layout == "nhwc" else x_nchw
    got = onnx_as_stack(run_onnx(path, np.ascontiguousarray(feed)), outputs)
    if got.shape != ref.shape:
        raise AssertionError(f"ONNX output shape {got.shape} != PyTorch {ref.shape}")
    return float(np.max(np.abs(got - ref)))


def describe(path: str) -> str:
    """One line per graph input/output with its static shape."""
    import onnx

    m = onnx.load(path)

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]

    lines = [f"  input  {v.name}: {dims(v)}" for v in m.graph.input]
    lines += [f"  output {v.name}: {dims(v)}" for v in m.graph.output]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Export a Stacked Hourglass network to ONNX.")
    ap.add_argument("--stacks", type=int, default=8)
    ap.add_argument("--features", type=int, default=256)
    ap.add_argument("--joints", type=int, default=16)
    ap.add_argument("--input-size", type=int, default=256, help="square input side, multiple of 64")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--modules", type=int, default=1, help="residual modules per hourglass site")
    ap.add_argument("--seed", type=int, default=0, help="seed for the random init (ignored with --weights)")
    ap.add_argument("--weights", help="PyTorch state_dict checkpoint to load instead of random init")
    ap.add_argument("--outputs", choices=OUTPUT_KINDS, default="per-stack")
    ap.add_argument("--layout", choices=LAYOUTS, default="nchw")
    ap.add_argument("-o", "--output", required=True, help="path of the .onnx file to write")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max abs diff allowed vs PyTorch")
    args = ap.parse_args(argv)

    model = build_model(args.stacks, args.features, args.joints, args.input_size, args.depth,
                        args.seed, args.weights, args.modules)
    export_onnx(model, args.output, args.outputs, args.layout)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.2f} MB, opset {OPSET})")
    print(describe(args.output))
    diff = verify(model, args.output, args.outputs, args.layout)
    print(f"onnxruntime vs PyTorch: max abs diff = {diff:.3g}")
    if not diff < args.tolerance:
        raise SystemExit(f"ONNX export does not match PyTorch (max abs diff {diff:.3g} >= {args.tolerance})")


if __name__ == "__main__":
    main()
