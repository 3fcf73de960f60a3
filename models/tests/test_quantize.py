"""int8 quantization of the bundled model (hourglass.quantize): the graph is valid ONNX, its
convolutions are integer ops, ReLU stays a ReLU, and its heatmaps follow the float model's."""

import os
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from hourglass.quantize import (
    activation_qparams,
    calibration_inputs,
    main,
    weight_qparams,
)

MODELS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(MODELS_DIR, "default", "hourglass.onnx")
SAMPLE = os.path.join(MODELS_DIR, "samples", "astronaut.jpg")


def _run(path, x):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[-1]


def _heatmap_corr(path, x):
    ref, got = _run(DEFAULT, x), _run(path, x)
    return float(np.corrcoef(ref.ravel(), got.ravel())[0, 1])


@pytest.fixture(scope="module")
def sample_input():
    return calibration_inputs([SAMPLE], (128, 128), crops=False)[0]


@pytest.mark.parametrize(
    "flags, conv_op",
    [
        ([], "QLinearConv"),
        (["--per-tensor", "--activations", "s8sym", "--method", "minmax"], "QLinearConv"),
        (["--format", "integer"], "ConvInteger"),
    ],
)
def test_quantized_model_is_valid_int8(tmp_path, sample_input, flags, conv_op):
    out = str(tmp_path / "hg_int8.onnx")
    assert main([DEFAULT, "-o", out, "--calibration", SAMPLE, "--no-crops", "--sidecar"] + flags) == 0
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    ops = Counter(n.op_type for n in model.graph.node)
    float_convs = Counter(n.op_type for n in onnx.load(DEFAULT).graph.node)["Conv"]
    assert ops[conv_op] == float_convs and ops["Conv"] == 0
    assert [o.name for o in model.graph.output] == [o.name for o in onnx.load(DEFAULT).graph.output]
    assert os.path.isfile(str(tmp_path / "hg_int8.toml"))
    # Quantization noise, not a different network: heatmaps track the float ones.
    assert _heatmap_corr(out, sample_input) > 0.9


def test_activation_qparams_cover_range_and_zero():
    for kind in ("u8", "s8", "s8sym"):
        qp = activation_qparams(-0.5, 2.0, kind)
        lo, hi = (0, 255) if kind == "u8" else (-128, 127)
        assert lo <= qp.zero_point <= hi
        # -0.5, 0 and 2.0 land inside the integer range, 0 exactly on the zero point
        for v in (-0.5, 2.0):
            assert lo - 0.5 <= v / qp.scale + qp.zero_point <= hi + 0.5
    assert activation_qparams(0.0, 1.0, "u8").zero_point == 0
    assert activation_qparams(0.0, 1.0, "s8").zero_point == -128
    assert activation_qparams(-3.0, 1.0, "s8sym").zero_point == 0


def test_weight_qparams_per_channel_round_trip():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32) * np.array([1, 10, 0.1, 0.0], np.float32)[:, None, None, None]
    q, s = weight_qparams(w, per_channel=True)
    assert q.dtype == np.int8 and s.shape == (4,) and np.abs(q).max() <= 127
    back = q.astype(np.float32) * s[:, None, None, None]
    assert np.all(np.abs(back - w) <= s[:, None, None, None] / 2 + 1e-7)
    qt, st = weight_qparams(w, per_channel=False)
    assert st.shape == () and np.abs(qt).max() == 127


def test_raw_inputs_calibrate_like_images(tmp_path, sample_input):
    """`hgpose quantize` hands over its own preprocessed tensors as raw float32."""
    raw = tmp_path / "calib.f32"
    batch = np.concatenate([sample_input, sample_input[:, :, :, ::-1]])
    batch.astype("<f4").tofile(raw)
    out = str(tmp_path / "hg_int8.onnx")
    shape = ",".join(str(d) for d in batch.shape)
    assert main([DEFAULT, "-o", out, "--inputs", str(raw), "--inputs-shape", shape]) == 0
    assert _heatmap_corr(out, sample_input) > 0.9
    with pytest.raises(ValueError, match="float32 values"):
        main([DEFAULT, "-o", out, "--inputs", str(raw), "--inputs-shape", "3,3,128,128"])


def test_keep_float_leaves_matching_convolutions_in_float(tmp_path):
    out = str(tmp_path / "hg_int8.onnx")
    assert main([DEFAULT, "-o", out, "--calibration", SAMPLE, "--no-crops", "--keep-float", "heads"]) == 0
    float_model = onnx.load(DEFAULT)
    heads = [n.name for n in float_model.graph.node if n.op_type == "Conv" and "heads" in n.name]
    assert heads
    ops = Counter(n.op_type for n in onnx.load(out).graph.node)
    assert ops["Conv"] == len(heads)
    assert ops["QLinearConv"] == Counter(n.op_type for n in float_model.graph.node)["Conv"] - len(heads)


def test_raw_inputs_in_the_graphs_own_nhwc_layout(tmp_path):
    """TensorFlow-style NHWC exports: hgpose writes the calibration tensors NHWC; the quantizer
    takes them as they are and refuses a shape the graph cannot take."""
    nhwc = os.path.join(MODELS_DIR, "fixtures", "hg_s2_f32_nhwc.onnx")
    x = calibration_inputs([SAMPLE], (256, 256), crops=False)[0].transpose(0, 2, 3, 1)
    raw = tmp_path / "calib.f32"
    np.ascontiguousarray(x).astype("<f4").tofile(raw)
    out = str(tmp_path / "nhwc_int8.onnx")
    assert main([nhwc, "-o", out, "--inputs", str(raw), "--inputs-shape", "1,256,256,3"]) == 0
    ops = Counter(n.op_type for n in onnx.load(out).graph.node)
    assert ops["QLinearConv"] > 0, ops
    ref, got = _run(nhwc, x), _run(out, x)
    assert float(np.corrcoef(ref.ravel(), got.ravel())[0, 1]) > 0.9
    with pytest.raises(ValueError, match="do not fit"):
        main([nhwc, "-o", out, "--inputs", str(raw), "--inputs-shape", "1,3,256,256"])
