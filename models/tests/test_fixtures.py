"""The committed fixtures in models/fixtures are consistent with the code and with ORT."""

import os
import tomllib

import numpy as np
import onnx
import pytest

from hourglass import fixtures as fx
from hourglass.export import build_model, run_onnx, torch_heatmaps

TOL = 1e-4

ONNX_IO = {
    "hg_s2_f32_per_stack.onnx": (
        {"input": [1, 3, 256, 256]},
        {"heatmaps_0": [1, 16, 64, 64], "heatmaps_1": [1, 16, 64, 64]},
    ),
    "hg_s2_f32_stacked.onnx": ({"input": [1, 3, 256, 256]}, {"heatmaps": [1, 2, 16, 64, 64]}),
    "hg_s2_f32_nhwc.onnx": (
        {"input": [1, 256, 256, 3]},
        {"heatmaps_0": [1, 16, 64, 64], "heatmaps_1": [1, 16, 64, 64]},
    ),
    "hg_s1_f16_in128.onnx": ({"input": [1, 3, 128, 128]}, {"heatmaps_0": [1, 16, 32, 32]}),
}


def _need(fixtures_dir, name):
    path = os.path.join(fixtures_dir, name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not generated (python -m hourglass.fixtures)")
    return path


@pytest.mark.parametrize("name", sorted(ONNX_IO))
def test_fixture_io(fixtures_dir, name):
    m = onnx.load(_need(fixtures_dir, name))

    def dims(v):
        return [d.dim_value for d in v.type.tensor_type.shape.dim]

    ins = {v.name: dims(v) for v in m.graph.input}
    outs = {v.name: dims(v) for v in m.graph.output}
    assert (ins, outs) == ONNX_IO[name]


@pytest.mark.parametrize(
    "name,inp,ref,layout",
    [
        ("hg_s2_f32_per_stack.onnx", "reference_input.npy", "hg_s2_f32_reference.npy", "nchw"),
        ("hg_s2_f32_stacked.onnx", "reference_input.npy", "hg_s2_f32_reference.npy", "nchw"),
        ("hg_s2_f32_nhwc.onnx", "reference_input.npy", "hg_s2_f32_reference.npy", "nhwc"),
        ("hg_s1_f16_in128.onnx", "reference_input_128.npy", "hg_s1_f16_in128_reference.npy", "nchw"),
    ],
)
def test_fixture_matches_reference(fixtures_dir, name, inp, ref, layout):
    x = np.load(_need(fixtures_dir, inp))
    expected = np.load(_need(fixtures_dir, ref))
    assert x.dtype == np.float32 and expected.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    feed = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "nhwc" else x
    outs = run_onnx(_need(fixtures_dir, name), feed)
    got = outs[0][0] if name.endswith("stacked.onnx") else np.concatenate(outs, axis=0)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < TOL


def test_fixture_inputs_are_seeded(fixtures_dir):
    np.testing.assert_array_equal(np.load(_need(fixtures_dir, "reference_input.npy")),
                                  fx.reference_input(256, fx.SEED_INPUT))
    np.testing.assert_array_equal(np.load(_need(fixtures_dir, "reference_input_128.npy")),
                                  fx.reference_input(128, fx.SEED_INPUT_128))


def test_fixture_reference_matches_code(fixtures_dir):
    # the committed reference heatmaps are what the current code computes
    x = np.load(_need(fixtures_dir, "reference_input_128.npy"))
    model = build_model(stacks=1, features=16, joints=16, input_size=128, seed=fx.SEED_S1)
    expected = np.load(_need(fixtures_dir, "hg_s1_f16_in128_reference.npy"))
    np.testing.assert_allclose(torch_heatmaps(model, x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,layout,normalize", [
    ("hg_s2_f32_per_stack.toml", "NCHW", "unit"),
    ("hg_s2_f32_nhwc.toml", "NHWC", "mean_std"),
])
def test_sidecar(fixtures_dir, name, layout, normalize):
    with open(_need(fixtures_dir, name), "rb") as f:
        text = f.read().decode()
    assert text == fx.sidecar_toml(256, 256, layout, normalize)
    doc = tomllib.loads(text)
    assert doc["input"]["size"] == [256, 256]
    assert doc["input"]["layout"] == layout
    assert doc["input"]["channels"] == "RGB"
    assert doc["input"]["normalize"] == normalize
    assert doc["output"] == {"kind": "per_stack", "stack": -1}
    assert doc["joints"] == {"set": "mpii16"}
    if normalize == "mean_std":
        assert doc["input"]["mean"] == [0.485, 0.456, 0.406]
        assert doc["input"]["std"] == [0.229, 0.224, 0.225]
    else:
        assert "mean" not in doc["input"] and "std" not in doc["input"]


def test_no_sidecar_for_inferred_fixtures(fixtures_dir):
    _need(fixtures_dir, "hg_s2_f32_stacked.onnx")
    assert not os.path.exists(os.path.join(fixtures_dir, "hg_s2_f32_stacked.toml"))
    assert not os.path.exists(os.path.join(fixtures_dir, "hg_s1_f16_in128.toml"))


def test_sidecar_template_is_the_documented_format():
    expected = '''# hgpose model contract
[input]
size = [256, 256]        # height, width
layout = "NCHW"          # or "NHWC"
channels = "RGB"         # or "BGR"
normalize = "unit"       # "unit": x/255 ; "mean_std": (x/255 - mean) / std
# mean = [0.485, 0.456, 0.406]
# std = [0.229, 0.224, 0.225]

[output]
kind = "per_stack"       # "per_stack" (one output per stack) or "stacked" ([N,S,J,H,W])
stack = -1               # which stack to read; -1 = last

[joints]
set = "mpii16"
'''
    assert fx.sidecar_toml(256, 256, "NCHW", "unit") == expected
