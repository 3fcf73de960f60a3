"""Post-training int8 quantization of an hourglass ONNX export, in a form tract runs on integers.

CLI (from models/)::

    python -m hourglass.quantize default/hourglass.onnx -o hg_int8.onnx \\
        --calibration samples/ --method percentile --per-channel

Why not onnxruntime's quantizer: its QDQ format (DequantizeLinear -> Conv -> QuantizeLinear)
is not folded by tract 0.23 (the convolutions stay in float, slower than plain f32), and its
QOperator format emits ``QLinearAdd``, a Microsoft op tract does not know. This script writes
only standard ONNX ops tract maps to its integer kernels:

* every ``Conv`` becomes ``QLinearConv`` (``--format qlinear``) or ``ConvInteger`` followed by
  an explicit float rescale and bias (``--format integer``); a ``Relu`` (or a ``Clip`` from 0,
  TensorFlow's ReLU6) that is a conv's only consumer is folded into the conv's output range;
* weights are symmetric int8 (zero point 0), one scale per output channel (``--per-channel``,
  the default) or one per tensor (``--per-tensor``); biases are int32 at scale
  ``x_scale * w_scale``;
* activations are uint8 or int8, asymmetric or symmetric (``--activations u8|s8|s8sym``), their
  ranges calibrated on images (``--method minmax`` or ``percentile``);
* ops tract cannot run quantized (``Add`` of residuals, ``BatchNormalization``) stay in float
  between a ``DequantizeLinear`` and a ``QuantizeLinear``; ``MaxPool`` and nearest ``Resize``
  run on the quantized tensor when their input is already quantized (``--float-pool`` keeps them
  in float).

Calibration images are preprocessed as ``hgpose infer`` does by default (whole frame padded to a
square with black, resized to the input size, RGB in [0, 1]), plus horizontal flips and a few
square crops of each image, so a single photo already yields several activation samples.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ACTIVATIONS = ("u8", "s8", "s8sym")
METHODS = ("minmax", "percentile")
FORMATS = ("qlinear", "integer")


# --------------------------------------------------------------------------- calibration data


def list_images(paths: Sequence[str]) -> List[str]:
    """Image files named in ``paths`` (files, or folders searched one level deep), sorted."""
    found: List[str] = []
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    found.append(os.path.join(p, name))
        elif os.path.isfile(p):
            found.append(p)
        else:
            raise FileNotFoundError(f"calibration path {p} does not exist; pass image files or folders")
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {list(paths)}")
    return found


def _to_input(img, size: Tuple[int, int]) -> np.ndarray:
    """Pads ``img`` (PIL RGB) to the input's aspect ratio with black, centred, and resizes it."""
    from PIL import Image

    h, w = size
    iw, ih = img.size
    scale = max(iw / w, ih / h)
    cw, ch = int(round(w * scale)), int(round(h * scale))
    canvas = Image.new("RGB", (cw, ch))
    canvas.paste(img, ((cw - iw) // 2, (ch - ih) // 2))
    arr = np.asarray(canvas.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
    return arr.transpose(2, 0, 1)[None]


def calibration_inputs(paths: Sequence[str], size: Tuple[int, int], crops: bool = True) -> List[np.ndarray]:
    """NCHW float inputs: every image whole, flipped, and (``crops``) four square sub-crops."""
    from PIL import Image, ImageOps

    batches = []
    for path in list_images(paths):
        img = Image.open(path).convert("RGB")
        views = [img, ImageOps.mirror(img)]
        if crops:
            iw, ih = img.size
            side = int(min(iw, ih) * 0.7)
            for fx, fy in ((0.5, 0.5), (0.2, 0.3), (0.8, 0.3), (0.5, 0.8)):
                x0 = int((iw - side) * fx)
                y0 = int((ih - side) * fy)
                views.append(img.crop((x0, y0, x0 + side, y0 + side)))
        batches.extend(_to_input(v, size) for v in views)
    return batches


def raw_inputs(path: str, shape: str) -> List[np.ndarray]:
    """Calibration tensors from a raw little-endian float32 file of ``shape`` ("N,C,H,W", or
    N,H,W,C for an NHWC graph), one batch-of-one array per input."""
    dims = [int(d) for d in shape.split(",")]
    if len(dims) != 4 or min(dims) <= 0:
        raise ValueError(f"--inputs-shape {shape!r}: expected N,C,H,W")
    data = np.fromfile(path, dtype="<f4")
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} holds {data.size} float32 values, shape {shape} needs {int(np.prod(dims))}")
    batch = data.reshape(dims)
    return [batch[i : i + 1] for i in range(dims[0])]


def input_size(model: onnx.ModelProto) -> Tuple[int, int]:
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or dims[2] <= 0 or dims[3] <= 0:
        raise ValueError(f"input shape {dims}: expected a fixed [1, 3, H, W] (NCHW) hourglass export")
    return dims[2], dims[3]


def check_input_shape(model: onnx.ModelProto, shape: Tuple[int, ...]) -> None:
    """The graph's input takes one tensor of ``shape`` (fixed dimensions must match)."""
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != len(shape) or any(d > 0 and d != s for d, s in zip(dims[1:], shape[1:])):
        raise ValueError(f"calibration inputs of shape {list(shape)} do not fit the model's input {dims}")


def activation_ranges(
    model: onnx.ModelProto, inputs: Iterable[np.ndarray], method: str, percentile: float
) -> Dict[str, Tuple[float, float]]:
    """Range of every float tensor the graph computes, over the calibration inputs.

    ``minmax``: the extreme values seen. ``percentile``: per input the ``100 - p`` and ``p``
    percentiles, averaged over inputs (clips rare outliers, which int8's 256 levels cannot afford).
    """
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    names = [model.graph.input[0].name]
    for node in probe.graph.node:
        for out in node.output:
            if out and node.op_type != "Constant":
                names.append(out)
                if out not in known:
                    probe.graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    in_name = sess.get_inputs()[0].name
    lows: Dict[str, List[float]] = {}
    highs: Dict[str, List[float]] = {}
    for x in inputs:
        values = dict(zip(out_names, sess.run(None, {in_name: x})))
        values[in_name] = x
        for name in names:
            v = values.get(name)
            if v is None or v.dtype != np.float32:
                continue
            if method == "minmax":
                lo, hi = float(v.min()), float(v.max())
            else:
                lo, hi = (float(t) for t in np.percentile(v, [100.0 - percentile, percentile]))
            lows.setdefault(name, []).append(lo)
            highs.setdefault(name, []).append(hi)
    agg_lo = min if method == "minmax" else (lambda xs: float(np.mean(xs)))
    agg_hi = max if method == "minmax" else (lambda xs: float(np.mean(xs)))
    return {n: (agg_lo(lows[n]), agg_hi(highs[n])) for n in lows}


# --------------------------------------------------------------------------- quantization params


@dataclass(frozen=True)
class QParams:
    scale: float
    zero_point: int
    dtype: int  # TensorProto.UINT8 or TensorProto.INT8


def activation_qparams(lo: float, hi: float, activations: str) -> QParams:
    """Scale and zero point mapping ``[lo, hi]`` (widened to contain 0) onto 8 bits."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    if activations == "s8sym":
        bound = max(-lo, hi)
        return QParams(bound / 127.0, 0, TensorProto.INT8)
    qmin, dtype = (0, TensorProto.UINT8) if activations == "u8" else (-128, TensorProto.INT8)
    scale = (hi - lo) / 255.0
    zp = int(np.clip(qmin - round(lo / scale), qmin, qmin + 255))
    return QParams(scale, zp, dtype)


def weight_qparams(w: np.ndarray, per_channel: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights in [-127, 127] and their scale(s) (per output channel or scalar)."""
    if per_channel:
        bound = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    else:
        bound = np.array(np.abs(w).max())
    scale = np.where(bound > 0, bound / 127.0, 1.0).astype(np.float32)
    bshape = (-1,) + (1,) * (w.ndim - 1) if per_channel else ()
    q = np.clip(np.round(w / scale.reshape(bshape)), -127, 127).astype(np.int8)
    return q, scale


# --------------------------------------------------------------------------- graph rewriting


class _Rewriter:
    """Rebuilds the graph node by node in topological order, tracking which tensors exist in
    float and which only in quantized form (a DequantizeLinear is added when a float op needs one)."""

    def __init__(self, model, ranges, per_channel, activations, fmt, quantize_pool, fuse_relu, keep_float=None):
        self.model = model
        self.keep_float = re.compile(keep_float) if keep_float else None
        self.g = model.graph
        self.ranges = ranges
        self.per_channel = per_channel
        self.activations = activations
        self.fmt = fmt
        self.quantize_pool = quantize_pool
        self.fuse_relu = fuse_relu
        self.inits = {t.name: t for t in self.g.initializer}
        self.consts = {
            n.output[0]: helper.get_attribute_value(n.attribute[0])
            for n in self.g.node
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
        }
        self.consumers: Dict[str, List[onnx.NodeProto]] = {}
        for n in self.g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in self.g.output}
        self.new_nodes: List[onnx.NodeProto] = []
        self.new_inits: List[onnx.TensorProto] = []
        self.quant: Dict[str, Tuple[str, str, str, QParams]] = {}  # float name -> (q, scale, zp)
        self.float_missing: set = set()  # produced only quantized so far
        self.used_inits: set = set()
        self.counts = {"QLinearConv": 0, "ConvInteger": 0, "QuantizeLinear": 0, "DequantizeLinear": 0}

    # -- helpers
    def _const(self, name: str, array: np.ndarray) -> str:
        self.new_inits.append(numpy_helper.from_array(array, name))
        return name

    def _qparam_consts(self, tensor: str, qp: QParams) -> Tuple[str, str]:
        s = self._const(f"{tensor}_scale", np.array(qp.scale, dtype=np.float32))
        np_dt = np.uint8 if qp.dtype == TensorProto.UINT8 else np.int8
        z = self._const(f"{tensor}_zero_point", np.array(qp.zero_point, dtype=np_dt))
        return s, z

    def _range(self, tensor: str) -> Tuple[float, float]:
        if tensor not in self.ranges:
            raise ValueError(f"no calibrated range for tensor {tensor}")
        return self.ranges[tensor]

    def quantized(self, tensor: str) -> Tuple[str, str, str, QParams]:
        """The quantized form of float ``tensor``, adding a QuantizeLinear if there is none."""
        if tensor not in self.quant:
            self.need_float(tensor)
            qp = activation_qparams(*self._range(tensor), self.activations)
            s, z = self._qparam_consts(tensor, qp)
            q = f"{tensor}_quantized"
            self.new_nodes.append(helper.make_node("QuantizeLinear", [tensor, s, z], [q], name=f"{tensor}_Q"))
            self.counts["QuantizeLinear"] += 1
            self.quant[tensor] = (q, s, z, qp)
        return self.quant[tensor]

    def need_float(self, tensor: str) -> None:
        """Makes ``tensor`` exist in float (a DequantizeLinear of its quantized form if needed)."""
        if tensor in self.float_missing:
            q, s, z, _ = self.quant[tensor]
            self.new_nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [tensor], name=f"{tensor}_DQ"))
            self.counts["DequantizeLinear"] += 1
            self.float_missing.discard(tensor)

    def _sole_relu(self, tensor: str) -> Optional[onnx.NodeProto]:
        """The conv's only consumer when it is a ReLU, or a Clip from 0 (ReLU6 of TensorFlow
        exports) with asymmetric activations: the conv's output range is then the clipped one,
        and saturating to it is the clip. (Symmetric int8 has no bound at the clip's top.)"""
        users = self.consumers.get(tensor, [])
        if not self.fuse_relu or len(users) != 1 or tensor in self.outputs:
            return None
        user = users[0]
        if user.op_type == "Relu":
            return user
        if user.op_type == "Clip" and self.activations != "s8sym" and self._clip_min(user) == 0.0:
            self.used_inits.update(n for n in user.input[1:] if n)
            return user
        return None

    def _clip_min(self, node: onnx.NodeProto) -> Optional[float]:
        """A Clip's lower bound: its `min` input (opset 11+) or attribute, if constant."""
        if len(node.input) > 1 and node.input[1]:
            init = self.inits.get(node.input[1])
            return float(numpy_helper.to_array(init)) if init is not None else None
        for a in node.attribute:
            if a.name == "min":
                return float(helper.get_attribute_value(a))
        return None

    # -- ops
    def conv(self, node: onnx.NodeProto, skip: set) -> None:
        x, w_name = node.input[0], node.input[1]
        b_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if w_name not in self.inits or (b_name and b_name not in self.inits):
            raise ValueError(f"{node.name}: weights must be initializers to be quantized")
        w = numpy_helper.to_array(self.inits[w_name]).astype(np.float32)
        b = numpy_helper.to_array(self.inits[b_name]).astype(np.float32) if b_name else np.zeros(w.shape[0], np.float32)
        self.used_inits.update(n for n in (w_name, b_name) if n)
        xq, xs, xz, xqp = self.quantized(x)
        wq, wscale = weight_qparams(w, self.per_channel)
        relu = self._sole_relu(node.output[0])
        y = relu.output[0] if relu is not None else node.output[0]
        if relu is not None:
            skip.add(id(relu))
        base = node.name.strip("/").replace("/", "_") or node.output[0]
        wqn = self._const(f"{base}_w_quantized", wq)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        bias_scale = xqp.scale * wscale.astype(np.float64)
        if self.fmt == "qlinear":
            wsn = self._const(f"{base}_w_scale", wscale)
            # One zero point (0) even with per-channel scales: ONNX allows a scalar, and tract
            # then knows the weights are symmetric and skips the zero-point correction (a sum
            # over the activations per convolution).
            wzn = self._const(f"{base}_w_zero_point", np.array(0, dtype=np.int8))
            lo, hi = self._range(y)
            yqp = activation_qparams(lo, hi, self.activations)
            ys, yz = self._qparam_consts(y, yqp)
            bq = np.round(b / bias_scale).astype(np.int32) if b_name else None
            inputs = [xq, xs, xz, wqn, wsn, wzn, ys, yz]
            if bq is not None:
                inputs.append(self._const(f"{base}_b_quantized", bq.reshape(-1)))
            yq = f"{y}_quantized"
            qmin = 0 if yqp.dtype == TensorProto.UINT8 else -128
            if relu is not None and yqp.zero_point != qmin:
                # The output range does not start at the zero point (symmetric int8): clamping
                # to the 8-bit range is no ReLU, so take max(q, zero point) on the integers.
                self.new_nodes.append(
                    helper.make_node("QLinearConv", inputs, [f"{yq}_pre_relu"], name=f"{base}_quant", **attrs)
                )
                self.new_nodes.append(helper.make_node("Max", [f"{yq}_pre_relu", yz], [yq], name=f"{base}_relu"))
            else:
                self.new_nodes.append(helper.make_node("QLinearConv", inputs, [yq], name=f"{base}_quant", **attrs))
            self.counts["QLinearConv"] += 1
            self.quant[y] = (yq, ys, yz, yqp)
            self.float_missing.add(y)
        else:
            # ConvInteger takes one weight zero point (onnxruntime refuses a per-channel one).
            wzn = self._const(f"{base}_w_zero_point", np.array(0, dtype=np.int8))
            acc = f"{base}_acc"
            self.new_nodes.append(
                helper.make_node("ConvInteger", [xq, wqn, xz, wzn], [acc], name=f"{base}_int", **attrs)
            )
            self.counts["ConvInteger"] += 1
            accf = f"{base}_acc_f"
            self.new_nodes.append(helper.make_node("Cast", [acc], [accf], to=TensorProto.FLOAT))
            cshape = (1, -1, 1, 1)
            sc = self._const(f"{base}_rescale", np.broadcast_to(bias_scale, wscale.shape).astype(np.float32).reshape(cshape))
            scaled = f"{base}_scaled"
            self.new_nodes.append(helper.make_node("Mul", [accf, sc], [scaled]))
            bn = self._const(f"{base}_bias", b.reshape(cshape))
            out = node.output[0]
            self.new_nodes.append(helper.make_node("Add", [scaled, bn], [out]))
            if relu is not None:
                self.new_nodes.append(relu)

    def passthrough_quantized(self, node: onnx.NodeProto) -> bool:
        """MaxPool / nearest Resize straight on the quantized tensor (order-preserving ops)."""
        if not self.quantize_pool or node.input[0] not in self.float_missing:
            return False
        if node.op_type == "Resize":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            mode = attrs.get("mode", b"nearest")
            if (mode.decode() if isinstance(mode, bytes) else mode) != "nearest":
                return False
        elif node.op_type != "MaxPool" or len(node.output) != 1:
            return False
        q, s, z, qp = self.quant[node.input[0]]
        yq = f"{node.output[0]}_quantized"
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.input[0] = q
        new.output[0] = yq
        self.new_nodes.append(new)
        self.quant[node.output[0]] = (yq, s, z, qp)
        self.float_missing.add(node.output[0])
        return True

    def run(self) -> onnx.ModelProto:
        skip: set = set()
        for node in self.g.node:
            if id(node) in skip:
                continue
            if node.op_type == "Conv" and not (self.keep_float and self.keep_float.search(node.name)):
                self.conv(node, skip)
            elif node.op_type in ("MaxPool", "Resize") and self.passthrough_quantized(node):
                pass
            else:
                for i in node.input:
                    if i:
                        self.need_float(i)
                self.new_nodes.append(node)
        for o in self.g.output:
            self.need_float(o.name)
        graph = helper.make_graph(
            self.new_nodes,
            self.g.name + "_int8",
            list(self.g.input),
            list(self.g.output),
            [t for t in self.g.initializer if t.name not in self.used_inits or self._still_used(t.name)]
            + self.new_inits,
        )
        out = helper.make_model(graph, opset_imports=list(self.model.opset_import), producer_name="hgpose-quantize")
        out.ir_version = self.model.ir_version
        return out

    def _still_used(self, name: str) -> bool:
        return any(name in n.input for n in self.new_nodes)


def quantize_model(
    model: onnx.ModelProto,
    ranges: Dict[str, Tuple[float, float]],
    per_channel: bool = True,
    activations: str = "u8",
    fmt: str = "qlinear",
    quantize_pool: bool = True,
    fuse_relu: bool = True,
    keep_float: Optional[str] = None,
) -> Tuple[onnx.ModelProto, Dict[str, int]]:
    """The int8 rewrite of float ``model`` given calibrated ``ranges``; returns it and op counts."""
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations {activations!r}: use one of {ACTIVATIONS}")
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {FORMATS}")
    rw = _Rewriter(model, ranges, per_channel, activations, fmt, quantize_pool, fuse_relu, keep_float)
    return rw.run(), rw.counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m hourglass.quantize",
        description="Quantize an hourglass ONNX export to int8 (QLinearConv / ConvInteger) for tract.",
    )
    p.add_argument("model", help="float ONNX export (fixed [1, 3, H, W] input)")
    p.add_argument("-o", "--output", required=True, help="where to write the int8 ONNX model")
    p.add_argument(
        "--calibration",
        nargs="+",
        default=[os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")],
        metavar="DIR_OR_IMAGE",
        help="calibration images or folders of images (default: models/samples)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--per-channel", dest="per_channel", action="store_true", default=True,
                       help="one weight scale per output channel (default)")
    group.add_argument("--per-tensor", dest="per_channel", action="store_false",
                       help="one weight scale per convolution")
    p.add_argument("--method", choices=METHODS, default="percentile", help="activation range estimate")
    p.add_argument("--percentile", type=float, default=99.99, help="upper percentile for --method percentile")
    p.add_argument("--activations", choices=ACTIVATIONS, default="u8",
                   help="u8 / s8 asymmetric, or s8sym (int8, zero point 0)")
    p.add_argument("--format", choices=FORMATS, default="qlinear",
                   help="qlinear: QLinearConv (requantized int8 out); integer: ConvInteger + float rescale")
    p.add_argument("--keep-float", metavar="REGEX",
                   help="convolutions whose node name matches stay in float (sensitive layers, e.g. the "
                        "stem or the heatmap heads)")
    p.add_argument("--float-pool", action="store_true", help="run MaxPool / Resize in float")
    p.add_argument("--no-fuse-relu", action="store_true", help="keep Relu as a separate float op")
    p.add_argument("--no-crops", action="store_true", help="calibrate on whole images and flips only")
    p.add_argument("--inputs", metavar="FILE",
                   help="calibration tensors as raw little-endian float32 (what `hgpose quantize` writes: "
                        "frames preprocessed exactly as hgpose does); replaces --calibration")
    p.add_argument("--inputs-shape", metavar="N,C,H,W", help="shape of --inputs")
    p.add_argument("--sidecar", action="store_true",
                   help="copy the model's .toml sidecar beside the output")
    args = p.parse_args(argv)
    if not 50.0 < args.percentile <= 100.0:
        p.error("--percentile must be in (50, 100]")

    model = onnx.load(args.model)
    if args.inputs:
        # Preprocessed by hgpose in the graph's own layout (NCHW or NHWC): only the shape must match.
        if not args.inputs_shape:
            p.error("--inputs needs --inputs-shape N,C,H,W")
        inputs = raw_inputs(args.inputs, args.inputs_shape)
        check_input_shape(model, inputs[0].shape)
    else:
        inputs = calibration_inputs(args.calibration, input_size(model), crops=not args.no_crops)
    ranges = activation_ranges(model, inputs, args.method, args.percentile)
    qmodel, counts = quantize_model(
        model, ranges, args.per_channel, args.activations, args.format, not args.float_pool, not args.no_fuse_relu,
        args.keep_float,
    )
    onnx.checker.check_model(qmodel)
    onnx.save(qmodel, args.output)
    if args.sidecar:
        side = os.path.splitext(args.model)[0] + ".toml"
        if os.path.isfile(side):
            with open(side) as src, open(os.path.splitext(args.output)[0] + ".toml", "w") as dst:
                dst.write(src.read())
    ops = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    print(f"{args.output}: {len(inputs)} calibration inputs, {ops}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
