"""Held-out evaluation: PCKh@0.5 (head = head_top..upper_neck distance) and PCK@0.2 (torso).

Held-out sets (never trained on):

* ``real``: teacher-labelled person crops from the last 20% of ``vtest.avi`` and ``messi5.jpg``
  (:mod:`hourglass.data.real`); only joints the teacher gave confidence >= 0.3 are scored.
* ``synth``: 200 synthetic figures in MPII *validation* poses over backgrounds never used in
  training (:func:`synth_heldout`).

CLI (from models/)::

    python -m hourglass.evaluate --onnx default/hourglass.onnx
    python -m hourglass.evaluate --checkpoint runs/default/last.pt
    python -m hourglass.evaluate --onnx default/hourglass.onnx --teacher-compare EfficientPoseRT
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Callable, Dict

import numpy as np
import torch

from . import dataset as ds
from .data import synth as synth_data
from .data.fetch import CACHE
from .targets import decode, pck_torso, pckh

SYNTH_HELDOUT_COUNT = 200
SYNTH_HELDOUT_SEED = 20161008


def real_heldout(input_size: int, npz: str = None, min_confidence: float = 0.3):
    npz = npz or os.path.join(CACHE, "real_EfficientPoseII.npz")
    rc = ds.RealCrops(npz, "heldout", min_confidence)
    return _prepare(rc.images, rc.joints, input_size), rc


def synth_heldout(input_size: int, count: int = SYNTH_HELDOUT_COUNT, cache_dir: str = CACHE):
    poses = synth_data.load_poses("val")
    _, held_bgs = synth_data.background_sets(cache_dir)
    s = synth_data.SyntheticPeople(poses, held_bgs)
    imgs, joints = synth_data.fixed_set(s, count, SYNTH_HELDOUT_SEED)
    return _prepare(imgs, joints, input_size)


def _prepare(images, joints, input_size):
    xs, gts = [], []
    for im, j in zip(images, joints):
        s = ds.make_sample(im, j, ds.CENTER, ds.VIEW, input_size, None, None)
        xs.append(s.image)
        gts.append(s.joints)
    return np.stack(xs), np.stack(gts)


def torch_predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            out = []
            for i in range(0, len(x), 16):
                out.append(model(torch.from_numpy(x[i:i + 16]).to(device))[-1].cpu().numpy())
        return np.concatenate(out)
    return run


def onnx_predictor(path: str) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    last = sess.get_outputs()[-1].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.concatenate([sess.run([last], {"input": x[i:i + 1]})[0] for i in range(len(x))])
    return run


def score(predict, x: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    hm = predict(x)
    pred = decode(hm, x.shape[-1] / hm.shape[-1])
    return summarize(pred, gt)


def summarize(pred, gt) -> Dict[str, float]:
    a, b = pckh(pred, gt, 0.5), pck_torso(pred, gt, 0.2)
    return {"PCKh@0.5": round(a["all"], 2), "PCK@0.2": round(b["all"], 2), "joints": int(a["count"]),
            "samples": int(len(gt)),
            "per_joint_PCKh@0.5": {k: round(v, 1) for k, v in a.items() if k not in ("all", "count")}}


def evaluate(predict, input_size: int) -> Dict[str, dict]:
    res = {}
    if os.path.exists(os.path.join(CACHE, "real_EfficientPoseII.npz")):
        (x, gt), _ = real_heldout(input_size)
        res["real_heldout_vs_EfficientPoseII"] = score(predict, x, gt)
    x, gt = synth_heldout(input_size)
    res["synth_heldout_exact"] = score(predict, x, gt)
    return res


def teacher_compare(cheap: str, input_size: int = 256) -> Dict[str, float]:
    """A cheaper teacher on the same held-out real crops, scored against EfficientPoseII's labels."""
    from .data.real import CONTEXT, CROP
    from .data.teacher import Teacher

    (_, gt), rc = real_heldout(input_size)
    t = Teacher(cheap)
    inner = int(round(CROP * 1.5 / CONTEXT))
    o = (CROP - inner) // 2
    preds = []
    for img in rc.images:
        j = t.predict(img[o:o + inner, o:o + inner])
        j[:, :2] = j[:, :2] * (input_size / inner)  # crop-centre region -> network input pixels
        preds.append(j)
    return summarize(np.stack(preds), gt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx")
    ap.add_argument("--checkpoint")
    ap.add_argument("--teacher-compare", metavar="TEACHER")
    ap.add_argument("-o", "--output", help="write the metrics as JSON here")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    res = {}
    if a.onnx:
        import onnx

        dims = onnx.load(a.onnx).graph.input[0].type.tensor_type.shape.dim
        size = int(dims[-1].dim_value)
        res["model"] = evaluate(onnx_predictor(a.onnx), size)
    if a.checkpoint:
        from .checkpoint import load_model_from_checkpoint

        model, cfg = load_model_from_checkpoint(a.checkpoint)
        res["checkpoint"] = evaluate(torch_predictor(model), int(cfg["model"]["input_size"]))
    if a.teacher_compare:
        res[f"teacher_{a.teacher_compare}_vs_EfficientPoseII"] = teacher_compare(a.teacher_compare)
    text = json.dumps(res, indent=2)
    print(text)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def evaluation_sets(input_size: int, cache_dir: str = CACHE):
    """{name: (inputs [N,3,S,S], gt joints [N,16,3])} for the held-out sets available."""
    sets = {}
    npz = os.path.join(cache_dir, "real_EfficientPoseII.npz")
    if os.path.exists(npz):
        sets["real_heldout_vs_EfficientPoseII"] = real_heldout(input_size, npz)[0]
    sets["synth_heldout_exact"] = synth_heldout(input_size, cache_dir=cache_dir)
    return sets


def mpii_val_set(input_size: int, image_dir: str, annotations: str = None, count: int = 500):
    """The first ``count`` people of MPII's validation split (real images; user-supplied)."""
    from .data.mpii import MPIIDataset

    d = MPIIDataset(image_dir, "val", annotations or None)
    xs, gts = [], []
    for i in range(min(count, len(d))):
        img, j, (cx, cy, side) = d.get(i)
        s = ds.make_sample(img, j, (cx, cy), side, input_size, None, None)
        xs.append(s.image)
        gts.append(s.joints)
    return np.stack(xs), np.stack(gts)
