"""Post-training int8 quantization of an hourglass ONNX export, in a form tract runs on integers.

CLI (from models/)::

    python -m hourglass.quantize default/hourglass.onnx -o hg_int8.onnx --calibration samples/

Why not onnxruntime's quantizer: its QDQ format (DequantizeLinear -> Conv -> QuantizeLinear)
is not folded by tract 0.23 (the convolutions stay in float, slower than plain f32), and its
QOperator format emits ``QLinearAdd``, a Microsoft op tract does not know. This script writes
only standard ONNX ops tract maps to its integer kernels:

* every ``Conv`` becomes ``QLinearConv`` (``--format qlinear``) or ``ConvInteger`` followed by
  an explicit float rescale and bias (``--format integer``); a ``Relu`` (or a ``Clip`` from 0,
  TensorFlow's ReLU6) that is a conv's only consumer is folded into the conv's output range;
* weights are symmetric int8 (zero point 0), one scale per output channel (``--per-channel``,
  the default) or one per tensor (``--per-tensor``); biases are int32 at scale
  ``x_scale * w_scale``, corrected for the mean shift that rounding the weights causes (bias
  correction; ``--no-bias-correction``);
* activations are uint8 or int8, asymmetric or symmetric (``--activations u8|s8|s8sym``), their
  ranges calibrated on images (``--method mse``, the clipping of least expected error, the
  default; ``minmax`` or ``percentile``);
* convolutions that write graph outputs (the heatmaps) keep their accumulators in float
  (ConvInteger and a rescale), so heatmaps are not rounded to 8 bits;
* mixed precision: grouped (depthwise) convolutions stay in float (tract runs them faster so;
  ``--quantize-grouped``), and so do the convolutions whose quantization costs the heatmaps most
  per multiply-add, the fewest that bring the output within ``--target-error``
  (``--float-layers auto``, the default) or exactly ``--float-layers N`` of them;
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
METHODS = ("minmax", "percentile", "mse")
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


class _Probe:
    """An onnxruntime session that returns every float tensor the graph computes."""

    def __init__(self, model: onnx.ModelProto):
        import onnxruntime as ort

        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        known = {o.name for o in probe.graph.output}
        self.names = [model.graph.input[0].name]
        for node in probe.graph.node:
            for out in node.output:
                if out and node.op_type != "Constant":
                    self.names.append(out)
                    if out not in known:
                        probe.graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.out_names = [o.name for o in self.sess.get_outputs()]
        self.in_name = self.sess.get_inputs()[0].name

    def tensors(self, x: np.ndarray) -> Iterable[Tuple[str, np.ndarray]]:
        values = dict(zip(self.out_names, self.sess.run(None, {self.in_name: x})))
        values[self.in_name] = x
        for name in self.names:
            v = values.get(name)
            if v is not None and v.dtype == np.float32:
                yield name, v


HISTOGRAM_BINS = 2048
# Calibration inputs the per-convolution sensitivity is measured on (one model run each per conv).
SENSITIVITY_INPUTS = 12


def _mse_range(hist: np.ndarray, edges: np.ndarray) -> Tuple[float, float]:
    """The clipping range [lo', hi'] inside the observed [lo, hi] whose 8-bit quantization has the
    least expected squared error over the histogram: rounding error (step^2 / 12) for values
    inside, distance to the bound for values clipped. Both ends shrink toward 0 together."""
    centres = (edges[:-1] + edges[1:]) / 2
    lo, hi = min(float(edges[0]), 0.0), max(float(edges[-1]), 0.0)
    best, best_err = (lo, hi), np.inf
    for a in np.linspace(1.0, 0.2, 81):
        clo, chi = lo * a, hi * a
        step = (chi - clo) / 255.0
        if step <= 0:
            continue
        clipped = np.clip(centres, clo, chi)
        err = float(np.sum(hist * ((centres - clipped) ** 2 + np.where(centres == clipped, step * step / 12, 0.0))))
        if err < best_err:
            best, best_err = (clo, chi), err
    return best


def calibrate(
    model: onnx.ModelProto, inputs: Sequence[np.ndarray], method: str, percentile: float
) -> Tuple[Dict[str, Tuple[float, float]], Dict[str, np.ndarray]]:
    """Range of every float tensor the graph computes over the calibration inputs, and the mean of
    every channel (axis 1) of every convolution's input (for bias correction), in one pass.

    ``minmax``: the extreme values seen. ``percentile``: per input the ``100 - p`` and ``p``
    percentiles, averaged over inputs (clips rare outliers, which int8's 256 levels cannot afford).
    ``mse``: a second pass histograms every tensor over its min/max range and picks the clipping
    range of least expected quantization error (:func:`_mse_range`).
    """
    conv_inputs = {n.input[0] for n in model.graph.node if n.op_type == "Conv"}
    probe = _Probe(model)
    lows: Dict[str, List[float]] = {}
    highs: Dict[str, List[float]] = {}
    sums: Dict[str, np.ndarray] = {}
    for x in inputs:
        for name, v in probe.tensors(x):
            if method == "percentile":
                lo, hi = (float(t) for t in np.percentile(v, [100.0 - percentile, percentile]))
            else:
                lo, hi = float(v.min()), float(v.max())
            lows.setdefault(name, []).append(lo)
            highs.setdefault(name, []).append(hi)
            if name in conv_inputs and v.ndim == 4:
                sums[name] = sums.get(name, 0.0) + v.mean(axis=(0, 2, 3), dtype=np.float64)
    means = {n: s / len(inputs) for n, s in sums.items()}
    if method == "percentile":
        return {n: (float(np.mean(lows[n])), float(np.mean(highs[n]))) for n in lows}, means
    ranges = {n: (min(lows[n]), max(highs[n])) for n in lows}
    if method == "minmax":
        return ranges, means
    hists = {n: np.zeros(HISTOGRAM_BINS) for n in ranges}
    for x in inputs:
        for name, v in probe.tensors(x):
            lo, hi = ranges[name]
            if hi > lo:
                hists[name] += np.histogram(v, bins=HISTOGRAM_BINS, range=(lo, hi))[0]
    ranges = {
        n: _mse_range(hists[n], np.linspace(lo, hi, HISTOGRAM_BINS + 1)) if hi > lo else (lo, hi)
        for n, (lo, hi) in ranges.items()
    }
    return ranges, means


# --------------------------------------------------------------------------- channel equalization


def _group(node: onnx.NodeProto) -> int:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)


def _equalizable_pairs(model: onnx.ModelProto) -> List[Tuple[onnx.NodeProto, onnx.NodeProto]]:
    """``(producer, conv)`` pairs joined by a ReLU that nothing else reads: ``producer`` is an
    ungrouped Conv or a BatchNormalization whose output only that ReLU reads, ``conv`` an
    ungrouped Conv; the weights, bias, scale and shift involved are initializers no other node
    reads."""
    inits = {t.name for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    readers: Dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    outputs = {o.name for o in model.graph.output}

    def private(tensor: str) -> bool:
        return readers.get(tensor, 0) == 1 and tensor not in outputs

    pairs = []
    for conv in model.graph.node:
        if conv.op_type != "Conv" or _group(conv) != 1:
            continue
        relu = producer.get(conv.input[0])
        if relu is None or relu.op_type != "Relu" or not private(relu.output[0]):
            continue
        prev = producer.get(relu.input[0])
        if prev is None or not private(prev.output[0]):
            continue
        constants = [conv.input[1], *(i for i in prev.input[1:3] if i)]
        # A shared initializer would be rescaled for another node too.
        if not all(c in inits and readers.get(c) == 1 for c in constants):
            continue
        if (prev.op_type == "Conv" and _group(prev) == 1) or (
            prev.op_type == "BatchNormalization" and len(prev.input) >= 3
        ):
            pairs.append((prev, conv))
    return pairs


def _channel_peaks(model: onnx.ModelProto, inputs: Sequence[np.ndarray], tensors: set) -> Dict[str, np.ndarray]:
    """Largest absolute value of each channel (axis 1) of ``tensors`` over ``inputs``."""
    probe = _Probe(model)
    peaks: Dict[str, np.ndarray] = {}
    for x in inputs:
        for name, v in probe.tensors(x):
            if name in tensors and v.ndim == 4:
                peaks[name] = np.maximum(peaks.get(name, 0.0), np.abs(v).max(axis=(0, 2, 3)))
    return peaks


def equalize_channels(
    model: onnx.ModelProto, inputs: Sequence[np.ndarray], strength: float = 0.5
) -> Tuple[onnx.ModelProto, int]:
    """Cross-layer equalization through ReLUs (Nagel et al. 2019), exact in float.

    8-bit activations get one scale per tensor, so a channel whose values stay far below the
    tensor's largest is left a few levels. ReLU commutes with a positive scale, so channel ``c``
    of what feeds the ReLU (a convolution's filters and bias, or a batch norm's scale and shift)
    can be multiplied by ``s_c`` and the next convolution's input channel ``c`` divided by it
    without changing the float result. ``s_c = (peak / peak_c) ** strength``: 1 moves all of a
    channel's range into the weights (every channel reaches the tensor's peak), 0 changes nothing;
    in between shares the rounding between the activation and the next convolution's weights.
    Returns the rewritten copy and how many convolutions it rescaled."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    pairs = _equalizable_pairs(out)
    if not pairs or strength <= 0:
        return out, 0
    peaks = _channel_peaks(model, inputs, {conv.input[0] for _, conv in pairs})
    inits = {t.name: t for t in out.graph.initializer}

    def rescale(name: str, factor: np.ndarray, axis: int) -> None:
        value = numpy_helper.to_array(inits[name]).astype(np.float64)
        shape = [1] * value.ndim
        shape[axis] = -1
        inits[name].CopyFrom(numpy_helper.from_array((value * factor.reshape(shape)).astype(np.float32), name))

    rescaled = 0
    for prev, conv in pairs:
        peak = peaks.get(conv.input[0])
        if peak is None or peak.max() <= 0:
            continue
        rescaled += 1
        # Dead channels (never above a thousandth of the peak) are raised only that far.
        peak = np.maximum(peak.astype(np.float64), 1e-3 * peak.max())
        s = (peak.max() / peak) ** strength
        rescale(conv.input[1], 1.0 / s, axis=1)
        for name in prev.input[1:3]:  # Conv: weights, bias; BatchNormalization: scale, shift
            if name:
                rescale(name, s, axis=0)
    return out, rescaled


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


def _weight_rounding_shift(w: np.ndarray, wq: np.ndarray, wscale: np.ndarray, mean_x: np.ndarray, groups: int) -> np.ndarray:
    """Per output channel, the mean shift that rounding the weights adds to the convolution's
    output, for inputs whose channels average ``mean_x`` (bias correction, Nagel et al. 2019;
    padding at the borders is ignored)."""
    bshape = (-1,) + (1,) * (w.ndim - 1) if wscale.ndim else ()
    err = (wq.astype(np.float64) * wscale.reshape(bshape) - w).reshape(w.shape[0], w.shape[1], -1).sum(axis=2)
    per_group = mean_x.reshape(groups, -1)
    group_of = np.arange(w.shape[0]) // (w.shape[0] // groups)
    return np.einsum("oi,oi->o", err, per_group[group_of]).astype(np.float32)


def _int32(values: np.ndarray) -> np.ndarray:
    """int32 values, saturated (a bias over a near-zero input scale would overflow)."""
    info = np.iinfo(np.int32)
    return np.clip(np.nan_to_num(values, nan=0.0), info.min, info.max).astype(np.int32)


# --------------------------------------------------------------------------- graph rewriting


class _Rewriter:
    """Rebuilds the graph node by node in topological order, tracking which tensors exist in
    float and which only in quantized form (a DequantizeLinear is added when a float op needs one)."""

    def __init__(
        self, model, ranges, per_channel, activations, fmt, quantize_pool, fuse_relu, keep_float=None,
        means=None, float_outputs=True, float_convs=(),
    ):
        self.model = model
        self.float_convs = set(float_convs)
        self.means = means or {}
        self.float_outputs = float_outputs
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
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if x in self.means:
            b = b - _weight_rounding_shift(w, wq, wscale, self.means[x], int(attrs.get("group", 1)))
            b_name = b_name or f"{node.output[0]}_bias"
        relu = self._sole_relu(node.output[0])
        y = relu.output[0] if relu is not None else node.output[0]
        if relu is not None:
            skip.add(id(relu))
        base = node.name.strip("/").replace("/", "_") or node.output[0]
        wqn = self._const(f"{base}_w_quantized", wq)
        bias_scale = xqp.scale * wscale.astype(np.float64)
        # A graph output (the heatmaps) leaves the integer accumulators in float: requantizing it
        # to 8 bits would round near-equal heatmap values into ties and move the argmax.
        heads_in_float = self.float_outputs and (node.output[0] in self.outputs or y in self.outputs)
        if self.fmt == "qlinear" and not heads_in_float:
            wsn = self._const(f"{base}_w_scale", wscale)
            # One zero point (0) even with per-channel scales: ONNX allows a scalar, and tract
            # then knows the weights are symmetric and skips the zero-point correction (a sum
            # over the activations per convolution).
            wzn = self._const(f"{base}_w_zero_point", np.array(0, dtype=np.int8))
            lo, hi = self._range(y)
            yqp = activation_qparams(lo, hi, self.activations)
            ys, yz = self._qparam_consts(y, yqp)
            bq = _int32(np.round(b / bias_scale)) if b_name else None
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
            if node.op_type == "Conv" and not self._stays_float(node):
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

    def _stays_float(self, node: onnx.NodeProto) -> bool:
        return node.output[0] in self.float_convs or bool(self.keep_float and self.keep_float.search(node.name))

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
    means: Optional[Dict[str, np.ndarray]] = None,
    float_outputs: bool = True,
    float_convs: Iterable[str] = (),
) -> Tuple[onnx.ModelProto, Dict[str, int]]:
    """The int8 rewrite of float ``model`` given calibrated ``ranges``; returns it and op counts.

    ``means`` (from :func:`calibrate`) turns on bias correction; ``float_outputs`` keeps graph
    outputs out of 8 bits; convolutions whose first output is in ``float_convs``, or whose name
    matches ``keep_float``, stay in float."""
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations {activations!r}: use one of {ACTIVATIONS}")
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {FORMATS}")
    rw = _Rewriter(
        model, ranges, per_channel, activations, fmt, quantize_pool, fuse_relu, keep_float, means, float_outputs,
        float_convs,
    )
    return rw.run(), rw.counts


# --------------------------------------------------------------------------- mixed precision


def conv_outputs(model: onnx.ModelProto, grouped: Optional[bool] = None) -> List[str]:
    """First output of every Conv (its identity: node names may be empty), in graph order; only
    grouped (``group > 1``, e.g. depthwise) or only ungrouped ones when ``grouped`` is given."""
    found = []
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        if grouped is None or grouped == (_group(n) > 1):
            found.append(n.output[0])
    return found


def integer_convs_in_float(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every QLinearConv and ConvInteger computed by a float Conv on the same
    integers: DequantizeLinear -> Conv -> QuantizeLinear, and Cast -> Sub -> Conv -> Cast for
    ConvInteger (zero points and scales as in the integer op, so only float summation order
    differs from exact integer sums). This is how the quantized model is measured here.

    onnxruntime's own QLinearConv multiplies uint8 activations by int8 weights with AVX2's
    ``vpmaddubsw``, which saturates pairs of products at 16 bits: on CPUs without AVX-512 VNNI it
    computes another function than the model's (tract and VNNI do not saturate), so measuring
    with it there chose the wrong convolutions to keep in float. Run it with graph optimizations
    off, or onnxruntime may fuse the emulation back into QLinearConv."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name: t for t in out.graph.initializer}

    def value(name: str) -> np.ndarray:
        if name not in inits:
            raise ValueError(f"{name} is not an initializer: cannot emulate its convolution")
        return numpy_helper.to_array(inits[name])

    def const(name: str, array: np.ndarray) -> str:
        out.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def per_output_channel(scale: np.ndarray, w: np.ndarray) -> np.ndarray:
        return scale.reshape((-1,) + (1,) * (w.ndim - 1)) if scale.ndim else scale

    nodes = []
    for n in out.graph.node:
        conv_attrs = [a for a in n.attribute]
        tag = n.output[0]
        if n.op_type == "QLinearConv":
            x, xs, xz, w, ws, wz, ys, yz = n.input[:8]
            wv, wsv, wzv = value(w), value(ws).astype(np.float64), value(wz).astype(np.float64)
            wf = (wv.astype(np.float64) - per_output_channel(wzv, wv)) * per_output_channel(wsv, wv)
            conv_in = [f"{tag}_emu_x", const(f"{tag}_emu_w", wf.astype(np.float32))]
            if len(n.input) > 8 and n.input[8]:
                bias = value(n.input[8]).astype(np.float64) * float(value(xs)) * wsv
                conv_in.append(const(f"{tag}_emu_b", bias.astype(np.float32)))
            nodes += [
                helper.make_node("DequantizeLinear", [x, xs, xz], [conv_in[0]]),
                helper.make_node("Conv", conv_in, [f"{tag}_emu_y"]),
                helper.make_node("QuantizeLinear", [f"{tag}_emu_y", ys, yz], [tag]),
            ]
        elif n.op_type == "ConvInteger":
            x, w = n.input[:2]
            xz = n.input[2] if len(n.input) > 2 and n.input[2] else None
            wz = n.input[3] if len(n.input) > 3 and n.input[3] else None
            wv = value(w).astype(np.float64)
            if wz:
                wv = wv - per_output_channel(value(wz).astype(np.float64), wv)
            x_f = f"{tag}_emu_x"
            nodes.append(helper.make_node("Cast", [x], [x_f], to=TensorProto.FLOAT))
            if xz:
                zero = const(f"{tag}_emu_xz", np.array(float(value(xz)), dtype=np.float32))
                nodes.append(helper.make_node("Sub", [x_f, zero], [f"{tag}_emu_xc"]))
                x_f = f"{tag}_emu_xc"
            nodes += [
                helper.make_node("Conv", [x_f, const(f"{tag}_emu_w", wv.astype(np.float32))], [f"{tag}_emu_y"]),
                helper.make_node("Cast", [f"{tag}_emu_y"], [tag], to=TensorProto.INT32),
            ]
        else:
            nodes.append(n)
            continue
        nodes[-2].attribute.extend(conv_attrs)  # the Conv keeps kernel, pads, strides, group
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


class HeatmapError:
    """Relative squared error of one of a model's outputs (``output``: its index among the graph's
    outputs, the heatmaps hgpose reads) against the float model's, averaged over a fixed set of
    inputs. Integer convolutions run as :func:`integer_convs_in_float` emulates them, with
    onnxruntime's graph optimizations off (with them on, some graphs mixing float and QLinear
    convolutions came out wrong)."""

    def __init__(self, model: onnx.ModelProto, inputs: Sequence[np.ndarray], output: int = -1):
        self.inputs = list(inputs)
        self.output = output
        self.reference = self._outputs(model)

    @staticmethod
    def _session(model: onnx.ModelProto):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def _outputs(self, model: onnx.ModelProto) -> List[np.ndarray]:
        sess = self._session(integer_convs_in_float(model))
        name, out = sess.get_inputs()[0].name, sess.get_outputs()[self.output].name
        return [sess.run([out], {name: x})[0].astype(np.float64) for x in self.inputs]

    def __call__(self, model: onnx.ModelProto) -> float:
        errs = [np.sum((a - b) ** 2) / max(np.sum(a**2), 1e-30) for a, b in zip(self.reference, self._outputs(model))]
        return float(np.mean(errs))


def conv_macs(model: onnx.ModelProto) -> Dict[str, int]:
    """Multiply-adds of every Conv per inference, by first output (weight size alone where ONNX
    shape inference cannot size the output)."""
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(model).graph
        infos = list(inferred.value_info) + list(inferred.output)
    except Exception:  # noqa: BLE001 - sizes are a ranking aid, weights alone still rank
        infos = []
    out_elems = {}
    for v in infos:
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            out_elems[v.name] = int(np.prod(dims))
    inits = {t.name: t for t in model.graph.initializer}
    macs = {}
    for n in model.graph.node:
        if n.op_type == "Conv" and n.input[1] in inits:
            w = inits[n.input[1]].dims
            macs[n.output[0]] = out_elems.get(n.output[0], int(w[0])) * int(np.prod(w[1:]))
    return macs


def layer_sensitivity(
    build, candidates: Sequence[str], error: HeatmapError, macs: Optional[Dict[str, int]] = None
) -> List[Tuple[float, str]]:
    """For each convolution in ``candidates``, the output error with it alone quantized
    (``build(float_convs)`` makes the model). Ranked by that error per multiply-add when ``macs``
    is given (what leaving it in float buys per unit of float work), else by the error alone;
    the first is the one to leave in float first."""
    everything = set(candidates)
    found = [(error(build(everything - {c})), c) for c in candidates]
    cost = (lambda c: max(macs.get(c, 1), 1)) if macs else (lambda c: 1)
    return sorted(found, key=lambda t: -t[0] / cost(t[1]))


def choose_float_convs(
    build, rank, error: HeatmapError, target: float, most: int
) -> Tuple[List[str], float]:
    """The fewest most-sensitive convolutions to leave in float for the quantized model's output
    error to be at most ``target`` (trying 0, 1, 2, 3, 4, 6, 8, 12, ... up to ``most``); returns
    them and the error reached (``most`` of them when the target is out of reach). ``rank()``
    gives the convolutions most sensitive first; it is called only when all-int8 misses the
    target (ranking runs the model once per convolution)."""
    err = error(build(set()))
    if err <= target or most == 0:
        return [], err
    names = [c for _, c in rank()]
    k = 1
    while True:
        err = error(build(set(names[:k])))
        if err <= target or k == most:
            return names[:k], err
        k = min(most, k + 1 if k < 4 else k + k // 2)


def pick_float_convs(
    model: onnx.ModelProto, inputs: Sequence[np.ndarray], build, candidates: Sequence[str], float_layers: str,
    target: float, output: int = -1,
) -> List[str]:
    """The convolutions among ``candidates`` to leave in float, for ``--float-layers`` ("auto" or a
    count), printing what was chosen and why."""
    wanted = len(candidates) // 4 if float_layers == "auto" else min(int(float_layers), len(candidates))
    if wanted == 0:
        return []
    error = HeatmapError(model, inputs[:: max(1, len(inputs) // SENSITIVITY_INPUTS)][:SENSITIVITY_INPUTS], output)

    def rank() -> List[Tuple[float, str]]:
        return layer_sensitivity(build, candidates, error, conv_macs(model))

    if float_layers == "auto":
        chosen, err = choose_float_convs(build, rank, error, target, wanted)
        where = f"{len(chosen)} sensitive convolution(s) in float" if chosen else "every convolution in int8"
        verdict = "reached" if err <= target else "NOT reached"
        print(
            f"output error {err:.2e} with {where} "
            f"(target {target:.0e} {verdict}, on {len(error.inputs)} calibration inputs)"
        )
    else:
        chosen = [c for _, c in rank()[:wanted]]
    names = {n.output[0]: n.name or n.output[0] for n in model.graph.node}
    for c in chosen:
        print(f"  in float: {names[c]}")
    return chosen


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
    p.add_argument("--method", choices=METHODS, default="mse",
                   help="activation ranges: minmax, percentile, or mse (least quantization error; default)")
    p.add_argument("--percentile", type=float, default=99.99, help="upper percentile for --method percentile")
    p.add_argument("--activations", choices=ACTIVATIONS, default="u8",
                   help="u8 / s8 asymmetric, or s8sym (int8, zero point 0)")
    p.add_argument("--format", choices=FORMATS, default="qlinear",
                   help="qlinear: QLinearConv (requantized int8 out); integer: ConvInteger + float rescale")
    p.add_argument("--keep-float", metavar="REGEX",
                   help="convolutions whose node name matches stay in float (sensitive layers, e.g. the "
                        "stem or the heatmap heads)")
    p.add_argument("--float-layers", default="auto", metavar="N|auto",
                   help="leave the N convolutions in float whose quantization alone costs the most output "
                        "accuracy; auto (default): the fewest for --target-error, at most a quarter of them")
    p.add_argument("--target-error", type=float, default=0.01,
                   help="for --float-layers auto: relative squared error of the last output against the "
                        "float model's, on the calibration inputs (default 0.01)")
    p.add_argument("--output-index", type=int, default=-1,
                   help="which graph output holds the heatmaps that --target-error is measured on "
                        "(default: the last)")
    p.add_argument("--quantize-grouped", action="store_true",
                   help="quantize grouped (depthwise) convolutions too; by default they stay in float, "
                        "where tract runs them faster than its grouped integer path")
    p.add_argument("--equalize", type=float, default=0.0, metavar="STRENGTH",
                   help="cross-layer channel equalization through ReLUs before calibration, 0 (off) to 1 "
                        "(every channel's range moved into the next convolution's weights)")
    p.add_argument("--no-bias-correction", action="store_true",
                   help="do not fold the mean shift that rounding the weights causes into the biases")
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
    if not args.target_error > 0:
        p.error(f"--target-error {args.target_error}: give a positive relative error, e.g. 0.01")
    if args.float_layers != "auto" and not args.float_layers.isdigit():
        p.error(f"--float-layers {args.float_layers!r}: give a count or auto")

    model = onnx.load(args.model)
    if args.inputs:
        # Preprocessed by hgpose in the graph's own layout (NCHW or NHWC): only the shape must match.
        if not args.inputs_shape:
            p.error("--inputs needs --inputs-shape N,C,H,W")
        inputs = raw_inputs(args.inputs, args.inputs_shape)
        check_input_shape(model, inputs[0].shape)
    else:
        inputs = calibration_inputs(args.calibration, input_size(model), crops=not args.no_crops)
    if not 0.0 <= args.equalize <= 1.0:
        p.error(f"--equalize {args.equalize}: give a strength from 0 (off) to 1")
    if args.equalize > 0:
        model, rescaled = equalize_channels(model, inputs, args.equalize)
        print(f"channel equalization (strength {args.equalize}): {rescaled} convolution(s) rescaled")
    ranges, means = calibrate(model, inputs, args.method, args.percentile)
    if args.no_bias_correction:
        means = None

    def build(float_convs) -> onnx.ModelProto:
        return quantize_model(
            model, ranges, args.per_channel, args.activations, args.format, not args.float_pool,
            not args.no_fuse_relu, args.keep_float, means, True, float_convs,
        )[0]

    grouped = [] if args.quantize_grouped else conv_outputs(model, grouped=True)
    if grouped:
        print(f"{len(grouped)} grouped convolution(s) stay in float (--quantize-grouped to quantize them)")
    candidates = [c for c in conv_outputs(model) if c not in grouped]
    sensitive = pick_float_convs(
        model, inputs, lambda f: build(set(grouped) | set(f)), candidates, args.float_layers, args.target_error,
        args.output_index,
    )
    qmodel, counts = quantize_model(
        model, ranges, args.per_channel, args.activations, args.format, not args.float_pool, not args.no_fuse_relu,
        args.keep_float, means, True, set(grouped) | set(sensitive),
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
