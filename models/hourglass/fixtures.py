"""Write the test fixtures that the Rust side of hgpose loads (deterministic, seeded).

Usage (from the repository root)::

    PYTHONPATH=models python -m hourglass.fixtures models/fixtures

Files (see models/fixtures/README.md):

* ``hg_s2_f32_per_stack.onnx`` + ``.toml``: 2 stacks, 32 features, 16 joints,
  256x256 NCHW input, outputs ``heatmaps_0``, ``heatmaps_1`` ``[1,16,64,64]``;
* ``hg_s2_f32_stacked.onnx``: same weights, one output ``heatmaps`` ``[1,2,16,64,64]``;
* ``hg_s2_f32_nhwc.onnx`` + ``.toml``: same weights, NHWC input ``[1,256,256,3]``,
  per-stack outputs;
* ``hg_s1_f16_in128.onnx``: 1 stack, 16 features, 16 joints, 128x128 NCHW input,
  output ``heatmaps_0`` ``[1,16,32,32]``;
* ``reference_input.npy`` ``[1,3,256,256]`` and ``reference_input_128.npy``
  ``[1,3,128,128]``: float32 in [0, 1];
* ``hg_s2_f32_reference.npy`` ``[2,16,64,64]`` and ``hg_s1_f16_in128_reference.npy``
  ``[1,16,32,32]``: PyTorch heatmaps of every stack for those inputs.
"""

from __future__ import annotations

import argparse
import os
from typing import Dict, List

import numpy as np

from .export import build_model, export_onnx, torch_heatmaps, verify

SEED_S2 = 2016  # weights of the 2-stack fixtures
SEED_S1 = 2017  # weights of the 128x128 fixture
SEED_INPUT = 7  # reference_input.npy
SEED_INPUT_128 = 8  # reference_input_128.npy
TOLERANCE = 1e-4

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sidecar_toml(
    height: int,
    width: int,
    layout: str,
    normalize: str,
    kind: str = "per_stack",
    channels: str = "RGB",
    stack: int = -1,
    joint_set: str = "mpii16",
) -> str:
    """The model-contract TOML the Rust side reads next to an .onnx file."""
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(layout)
    if normalize not in ("unit", "mean_std"):
        raise ValueError(normalize)
    if kind not in ("per_stack", "stacked"):
        raise ValueError(kind)
    if channels not in ("RGB", "BGR"):
        raise ValueError(channels)
    other = {"NCHW": "NHWC", "NHWC": "NCHW", "RGB": "BGR", "BGR": "RGB"}
    comment = "" if normalize == "mean_std" else "# "

    def row(assignment: str, note: str) -> str:
        return f"{assignment:<25}# {note}"

    lines = [
        "# hgpose model contract",
        "[input]",
        row(f"size = [{height}, {width}]", "height, width"),
        row(f'layout = "{layout}"', f'or "{other[layout]}"'),
        row(f'channels = "{channels}"', f'or "{other[channels]}"'),
        row(f'normalize = "{normalize}"', '"unit": x/255 ; "mean_std": (x/255 - mean) / std'),
        f"{comment}mean = [{', '.join(str(v) for v in IMAGENET_MEAN)}]",
        f"{comment}std = [{', '.join(str(v) for v in IMAGENET_STD)}]",
        "",
        "[output]",
        row(f'kind = "{kind}"', '"per_stack" (one output per stack) or "stacked" ([N,S,J,H,W])'),
        row(f"stack = {stack}", "which stack to read; -1 = last"),
        "",
        "[joints]",
        f'set = "{joint_set}"',
        "",
    ]
    return "\n".join(lines)


def reference_input(size: int, seed: int) -> np.ndarray:
    """Seeded float32 ``[1, 3, size, size]`` in [0, 1]."""
    return np.random.default_rng(seed).random((1, 3, size, size), dtype=np.float32)


def write(outdir: str) -> Dict[str, float]:
    """Write every fixture into ``outdir``; returns ORT-vs-PyTorch max abs diffs."""
    os.makedirs(outdir, exist_ok=True)
    p = lambda name: os.path.join(outdir, name)  # noqa: E731
    diffs: Dict[str, float] = {}

    x256 = reference_input(256, SEED_INPUT)
    x128 = reference_input(128, SEED_INPUT_128)
    np.save(p("reference_input.npy"), x256)
    np.save(p("reference_input_128.npy"), x128)

    # --- 2 stacks x 32 features, 256x256: three exports of one set of weights
    s2 = build_model(stacks=2, features=32, joints=16, input_size=256, seed=SEED_S2)
    ref_s2 = torch_heatmaps(s2, x256)
    assert ref_s2.shape == (2, 16, 64, 64), ref_s2.shape
    np.save(p("hg_s2_f32_reference.npy"), ref_s2)
    for name, outputs, layout in (
        ("hg_s2_f32_per_stack.onnx", "per-stack", "nchw"),
        ("hg_s2_f32_stacked.onnx", "stacked", "nchw"),
        ("hg_s2_f32_nhwc.onnx", "per-stack", "nhwc"),
    ):
        export_onnx(s2, p(name), outputs, layout)
        diffs[name] = verify(s2, p(name), outputs, layout, x256)

    with open(p("hg_s2_f32_per_stack.toml"), "w") as f:
        f.write(sidecar_toml(256, 256, "NCHW", "unit"))
    with open(p("hg_s2_f32_nhwc.toml"), "w") as f:
        f.write(sidecar_toml(256, 256, "NHWC", "mean_std"))

    # --- 1 stack x 16 features, 128x128 (no sidecar: the Rust side infers)
    s1 = build_model(stacks=1, features=16, joints=16, input_size=128, seed=SEED_S1)
    ref_s1 = torch_heatmaps(s1, x128)
    assert ref_s1.shape == (1, 16, 32, 32), ref_s1.shape
    np.save(p("hg_s1_f16_in128_reference.npy"), ref_s1)
    export_onnx(s1, p("hg_s1_f16_in128.onnx"), "per-stack", "nchw")
    diffs["hg_s1_f16_in128.onnx"] = verify(s1, p("hg_s1_f16_in128.onnx"), "per-stack", "nchw", x128)

    for name, diff in diffs.items():
        if not diff < TOLERANCE:
            raise AssertionError(f"{name}: onnxruntime vs PyTorch max abs diff {diff:.3g}")
    return diffs


def summary(outdir: str, names: List[str]) -> str:
    from .export import describe

    lines = []
    for name in sorted(names):
        path = os.path.join(outdir, name)
        size = os.path.getsize(path)
        lines.append(f"{name} ({size / 1e6:.2f} MB)")
        if name.endswith(".onnx"):
            lines.append(describe(path))
        elif name.endswith(".npy"):
            a = np.load(path)
            lines.append(f"  {a.dtype} {list(a.shape)} min {a.min():.4g} max {a.max():.4g}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Write hgpose's ONNX/NumPy test fixtures.")
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
    ap.add_argument("outdir", nargs="?", default=default,
                    help="directory to write into (default: models/fixtures)")
    args = ap.parse_args(argv)
    diffs = write(args.outdir)
    names = [n for n in os.listdir(args.outdir) if n.endswith((".onnx", ".npy", ".toml"))]
    print(summary(args.outdir, names))
    total = sum(os.path.getsize(os.path.join(args.outdir, n)) for n in names)
    print(f"total {total / 1e6:.2f} MB")
    for name, diff in diffs.items():
        print(f"onnxruntime vs PyTorch, {name}: max abs diff = {diff:.3g}")


if __name__ == "__main__":
    main()
