"""Quick training-pipeline test: synthetic data only (built-in poses, plain backgrounds), no
network, no ../shared. A tiny 2-stack model trains for a few steps; the loss summed over all
stacks must fall, every stack must get gradient, and the export must load in the hgpose binary
(skipped, with the reason, when no binary is built)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

pytest.importorskip("cv2", reason="training needs opencv-python-headless (models/requirements-train.txt)")

from hourglass import augment, targets
from hourglass.data import synth
from hourglass.dataset import MixedDataset
from hourglass.export import export_onnx
from hourglass.net import StackedHourglass
from hourglass.train import merged_config, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(out: str, steps: int = 14):
    return merged_config(None, [
        "model.stacks=2", "model.features=8", "model.input_size=64",
        "data.real_weight=0.0", "data.synth_weight=1.0", 'data.poses="builtin"', "data.backgrounds=false",
        f'train.out="{out}"', f"train.steps={steps}", "train.batch_size=3", "train.lr=3e-3",
        "train.warmup=2", "train.eval_every=0", "train.log_every=1", "train.checkpoint_every=1000",
    ])


def test_gaussian_target_peak_and_sigma():
    j = np.array([[32.0, 16.0, 1.0]] + [[0, 0, 0.0]] * 15, dtype=np.float32)
    hm = targets.gaussian_heatmaps(j, 128, 32)
    assert targets.sigma_for(64) == 1.0 and targets.sigma_for(32) == 0.5
    py, px = np.unravel_index(hm[0].argmax(), hm[0].shape)
    assert (px, py) in ((7, 3), (8, 4), (7, 4), (8, 3))  # x/4 = 8.0 lies on a cell border
    assert hm[1:].max() == 0.0
    dec = targets.decode(hm[:1], 4.0)[0]
    assert abs(dec[0] - 32) <= 2 and abs(dec[1] - 16) <= 2


def test_flip_swaps_left_and_right():
    img = np.zeros((64, 64, 3), np.uint8)
    j = np.zeros((16, 3), np.float32)
    j[:, 2] = 1
    j[targets.R_WRIST] = (10, 30, 1)
    j[targets.L_WRIST] = (50, 30, 1)
    m = augment.affine((32, 32), 64, 0.0, True, 64)
    out = augment.warp_joints(j, m, True)
    # after mirroring, the joint labelled right wrist is the old left wrist, now at x = 64 - 50
    assert np.allclose(out[targets.R_WRIST, :2], (14, 30))
    assert np.allclose(out[targets.L_WRIST, :2], (54, 30))
    assert augment.warp_image(img, m, 64).shape == (64, 64, 3)


def test_pckh_counts_correct_joints():
    gt = np.zeros((1, 16, 3), np.float32)
    gt[0, :, 2] = 1
    gt[0, :, 0] = np.arange(16) * 10
    gt[0, targets.NECK, :2] = (0, 0)
    gt[0, targets.HEAD, :2] = (0, 10)  # head size 10 -> threshold 5
    pred = gt.copy()
    pred[0, :8, 0] += 4.0   # within 5
    pred[0, 10:, 0] += 6.0  # beyond 5
    assert targets.pckh(pred, gt)["all"] == pytest.approx(100 * 10 / 16)


def test_every_stack_gets_gradient_and_loss_sums_stacks():
    torch.set_num_threads(1)  # on 2 busy cores, 2 OpenMP threads run several times slower
    torch.manual_seed(0)
    cfg = tiny_config("unused")
    data = MixedDataset(cfg, os.path.join(REPO, "models", "data", "cache"))
    x, t, w = data.batch(0, 0, 2)
    assert x.shape == (2, 3, 64, 64) and t.shape == (2, 16, 16, 16)
    model = StackedHourglass(2, 8, 16, 64)
    outs = model(x)
    loss = targets.stack_loss(outs, t, w)
    per = [targets.stack_loss([o], t, w) for o in outs]
    assert loss.item() == pytest.approx(sum(p.item() for p in per), rel=1e-5)
    loss.backward()
    for i in range(2):
        for mod in (model.heads[i], model.hourglasses[i], model.lin[i]):
            g = sum(p.grad.abs().sum().item() for p in mod.parameters() if p.grad is not None)
            assert g > 0, f"stack {i}: {type(mod).__name__} got no gradient"
    # the first stack's head is trained by its own (intermediate) loss term alone as well
    model.zero_grad()
    targets.stack_loss([model(x)[0]], t, w).backward()
    assert model.heads[0].weight.grad.abs().sum() > 0


def _hgpose_binary():
    for cand in (os.environ.get("HGPOSE_BIN"), os.path.join(REPO, "target", "release", "hgpose"),
                 "/work/target/release/hgpose"):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def test_tiny_training_run_and_export(tmp_path):
    out = str(tmp_path / "run")
    res = train(tiny_config(out), quiet=True)
    losses = [e["loss"] for e in res["log"] if "loss" in e]
    assert len(losses) == 14
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    assert os.path.exists(os.path.join(out, "last.pt"))

    # resume continues from the checkpoint, then stops at the (raised) step count
    cfg = tiny_config(out, steps=15)
    res2 = train(cfg, resume=True, quiet=True)
    assert res2["step"] == 15

    onnx_path = str(tmp_path / "tiny.onnx")
    names = export_onnx(res["model"].eval(), onnx_path, "per-stack", "nchw")
    assert names == ["heatmaps_0", "heatmaps_1"]

    binary = _hgpose_binary()
    if binary is None:
        pytest.skip("no hgpose binary (set HGPOSE_BIN or build target/release/hgpose): "
                    "training and export checked, hgpose loading not checked")
    info = subprocess.run([binary, "info", "--model", onnx_path], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    from PIL import Image

    rng = np.random.default_rng(0)
    img, _ = synth.render_figure(synth.builtin_poses()[0], rng, np.full((256, 256, 3), 128, np.uint8))
    png = str(tmp_path / "person.png")
    Image.fromarray(img).save(png)
    run = subprocess.run([binary, "infer", "--model", onnx_path, png], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    obj = json.loads(run.stdout.strip().splitlines()[0])
    assert len(obj["keypoints"]) == 16


def test_worker_pool_builds_the_same_batches_in_order(tmp_path):
    from hourglass.train import BatchFeed

    cfg = tiny_config(str(tmp_path / "run"))
    data = MixedDataset(cfg, str(tmp_path))
    feed = BatchFeed(data, cfg, str(tmp_path), batch_size=3, workers=2)
    try:
        for step in range(5):
            x, t, w = feed.get(step, last=5)
            ex, et, ew = data.batch(0, step, 3)
            # the pool sends float16: inputs and targets in [0, 1] come back within 2^-11
            assert torch.allclose(x, ex, atol=1e-3) and torch.allclose(t, et, atol=1e-3), step
            assert torch.equal(w, ew), step
    finally:
        feed.close()


def test_steps_planned_from_the_time_budget(tmp_path, capsys):
    cfg = tiny_config(str(tmp_path / "run"), steps=0)
    with pytest.raises(SystemExit, match="max_minutes"):
        train(cfg, quiet=True)
    cfg = tiny_config(str(tmp_path / "run"), steps=0)
    cfg["train"]["max_minutes"] = 0.25
    res = train(cfg, quiet=True)
    planned = cfg["train"]["steps"]
    # planned after the first 50 steps (the warm-up is shorter), to end inside the budget
    assert planned > 50 and "planned" in capsys.readouterr().out
    assert res["step"] == planned or res["log"][-1]["elapsed_s"] >= 15.0
    lrs = [e["lr"] for e in res["log"] if "lr" in e]
    assert lrs[10] == pytest.approx(3e-3)  # the peak is held until the plan is made
    if res["step"] == planned:
        assert lrs[-1] < 0.05 * 3e-3  # and the cosine ends where the planned steps do
