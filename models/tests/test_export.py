import os

import numpy as np
import onnx
import pytest
import torch

from hourglass.export import (
    build_model,
    export_onnx,
    main,
    onnx_as_stack,
    run_onnx,
    torch_heatmaps,
    verify,
)

STACKS, FEATURES, JOINTS, SIZE = 2, 16, 16, 64  # heatmaps 16x16
TOL = 1e-4


@pytest.fixture(scope="module")
def model():
    return build_model(STACKS, FEATURES, JOINTS, SIZE, seed=3)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(11).random((1, 3, SIZE, SIZE), dtype=np.float32)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    paths = {}
    for outputs, layout in (("per-stack", "nchw"), ("stacked", "nchw"), ("per-stack", "nhwc")):
        p = str(d / f"{outputs}_{layout}.onnx")
        export_onnx(model, p, outputs, layout)
        paths[(outputs, layout)] = p
    return paths


def _io(path):
    m = onnx.load(path)

    def dims(v):
        return [d.dim_value for d in v.type.tensor_type.shape.dim]

    return {v.name: dims(v) for v in m.graph.input}, {v.name: dims(v) for v in m.graph.output}, m


@pytest.mark.parametrize(
    "outputs,layout", [("per-stack", "nchw"), ("stacked", "nchw"), ("per-stack", "nhwc")]
)
def test_roundtrip_matches_onnxruntime(model, exported, x, outputs, layout):
    diff = verify(model, exported[(outputs, layout)], outputs, layout, x)
    print(f"{outputs}/{layout}: max abs diff {diff:.3g}")
    assert diff < TOL


def test_graph_contract(exported):
    hm = SIZE // 4
    ins, outs, m = _io(exported[("per-stack", "nchw")])
    assert ins == {"input": [1, 3, SIZE, SIZE]}
    assert outs == {f"heatmaps_{i}": [1, JOINTS, hm, hm] for i in range(STACKS)}
    assert [o.name for o in m.graph.output] == ["heatmaps_0", "heatmaps_1"]
    assert m.opset_import[0].version == 13

    ins, outs, _ = _io(exported[("stacked", "nchw")])
    assert ins == {"input": [1, 3, SIZE, SIZE]}
    assert outs == {"heatmaps": [1, STACKS, JOINTS, hm, hm]}

    ins, outs, m = _io(exported[("per-stack", "nhwc")])
    assert ins == {"input": [1, SIZE, SIZE, 3]}
    assert outs == {f"heatmaps_{i}": [1, JOINTS, hm, hm] for i in range(STACKS)}
    first = m.graph.node[0]
    assert first.op_type == "Transpose" and list(first.attribute[0].ints) == [0, 3, 1, 2]


def test_stacked_equals_per_stack(exported, x):
    per = run_onnx(exported[("per-stack", "nchw")], x)
    (stacked,) = run_onnx(exported[("stacked", "nchw")], x)
    assert stacked.shape == (1, STACKS, JOINTS, SIZE // 4, SIZE // 4)
    np.testing.assert_allclose(stacked, np.stack(per, axis=1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(onnx_as_stack([stacked], "stacked"),
                               onnx_as_stack(per, "per-stack"), rtol=0, atol=1e-6)


def test_nhwc_equals_nchw(exported, x):
    nchw = run_onnx(exported[("per-stack", "nchw")], x)
    nhwc = run_onnx(exported[("per-stack", "nhwc")], np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    for a, b in zip(nchw, nhwc):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_random_init_is_not_degenerate(model, x):
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not torch.allclose(b.running_mean, torch.zeros_like(b.running_mean)) for b in bns)
    assert all(not torch.allclose(b.running_var, torch.ones_like(b.running_var)) for b in bns)
    assert all(not torch.allclose(b.weight, torch.ones_like(b.weight)) for b in bns)
    heat = torch_heatmaps(model, x)
    assert np.isfinite(heat).all()
    assert heat.std() > 1e-2
    per_map = heat.reshape(STACKS * JOINTS, -1)
    assert (per_map.std(axis=1) > 1e-3).all()  # every heatmap varies spatially
    assert np.abs(heat).max() < 100


def test_export_is_deterministic(tmp_path):
    paths = []
    for i, seed in enumerate((5, 5, 6)):
        m = build_model(1, 8, 4, 64, seed=seed)
        p = tmp_path / f"m{i}.onnx"
        export_onnx(m, str(p), "per-stack", "nchw")
        paths.append(p.read_bytes())
    assert paths[0] == paths[1]
    assert paths[0] != paths[2]


def test_seed_determines_weights():
    a = build_model(1, 8, 4, 64, seed=5).state_dict()
    b = build_model(1, 8, 4, 64, seed=5).state_dict()
    c = build_model(1, 8, 4, 64, seed=6).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_weights_checkpoint(tmp_path, x):
    src = build_model(STACKS, FEATURES, JOINTS, SIZE, seed=9)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, ckpt)
    loaded = build_model(STACKS, FEATURES, JOINTS, SIZE, seed=0, weights=str(ckpt))
    np.testing.assert_array_equal(torch_heatmaps(src, x), torch_heatmaps(loaded, x))


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    main(["--stacks", "2", "--features", "8", "--joints", "5", "--input-size", "64", "--seed", "1",
          "--outputs", "stacked", "--layout", "nhwc", "-o", str(out)])
    text = capsys.readouterr().out
    assert "max abs diff" in text
    ins, outs, _ = _io(str(out))
    assert ins == {"input": [1, 64, 64, 3]}
    assert outs == {"heatmaps": [1, 2, 5, 16, 16]}
    assert os.path.getsize(out) > 0
