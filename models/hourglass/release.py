"""Export a trained checkpoint as hgpose's model, with sidecar, held-out metrics and card images.

CLI (from models/)::

    python -m hourglass.release --checkpoint runs/default/last.pt --out default

Writes ``<out>/hourglass.onnx`` (opset 13, per-stack outputs ``heatmaps_0..``, input ``input``
``[1, 3, S, S]`` RGB in [0, 1]), ``<out>/hourglass.toml`` (the hgpose model contract),
``<out>/metrics.json`` (held-out PCKh@0.5 / PCK@0.2 via onnxruntime and via the hgpose binary,
and a cheaper teacher against EfficientPoseII's labels) and ``<out>/card/*.png`` (held-out photos
drawn by ``hgpose infer --draw``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import tempfile

import cv2
import numpy as np
import torch

from . import evaluate as ev
from .data.fetch import CACHE, cache_path
from .export import export_onnx, verify
from .targets import JOINT_NAMES
from .checkpoint import load_model_from_checkpoint

SIDECAR = """# hgpose model contract
[input]
size = [{h}, {w}]
layout = "NCHW"
channels = "RGB"
normalize = "unit"
[output]
kind = "per_stack"
stack = -1
[joints]
set = "mpii16"
"""


def hgpose_binary():
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for c in (os.environ.get("HGPOSE_BIN"), os.path.join(here, "target", "release", "hgpose"),
              "/work/target/release/hgpose"):
        if c and os.path.isfile(c):
            return c
    return None


def hgpose_infer(binary, onnx_path, images, extra=()):
    out = subprocess.run([binary, "infer", "--model", onnx_path, *extra, *images],
                         capture_output=True, text=True, check=True)
    res = {}
    for line in out.stdout.splitlines():
        if line.strip():
            o = json.loads(line)
            res[o["source"]] = np.array([[k["x"], k["y"], k["confidence"]] for k in o["keypoints"]], np.float32)
    return res


def hgpose_heldout_real(binary, onnx_path, input_size):
    """PCKh of the hgpose binary itself on the held-out real crops (each crop's network view
    saved as a PNG; hgpose letterboxes the whole image, which is then exactly the view)."""
    from .data.real import CONTEXT, CROP

    (_, gt), rc = ev.real_heldout(input_size)
    inner = int(round(CROP * 1.5 / CONTEXT))
    o = (CROP - inner) // 2
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, img in enumerate(rc.images):
            p = os.path.join(tmp, f"{i:04d}.png")
            cv2.imwrite(p, cv2.cvtColor(np.ascontiguousarray(img[o:o + inner, o:o + inner]), cv2.COLOR_RGB2BGR))
            paths.append(p)
        res = hgpose_infer(binary, onnx_path, paths)
        pred = np.stack([res[p] for p in paths])
    pred[..., :2] *= input_size / inner
    return ev.summarize(pred, gt)


def card_images(binary, onnx_path, out_dir, min_confidence=0.1):
    """Held-out photos drawn by hgpose: messi5.jpg and a few late vtest.avi frames."""
    from .data.real import detect_people, median_background, read_video

    mc = ["--min-confidence", str(min_confidence)]
    os.makedirs(out_dir, exist_ok=True)
    for f in glob.glob(os.path.join(out_dir, "*.png")):
        os.remove(f)
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        src = cache_path("opencv", "messi5.jpg")
        dst = os.path.join(out_dir, "messi5.png")
        subprocess.run([binary, "infer", "--model", onnx_path, *mc, "--box", "60,40,400,300", "--draw", dst, src],
                       check=True, capture_output=True)
        made.append(dst)
        frames = read_video(cache_path("opencv", "vtest.avi"))
        bg = median_background(frames)
        for fi in (660, 700, 740, 780):
            boxes = detect_people(frames[fi], bg)
            if not boxes:
                continue
            x, y, w, h = max(boxes, key=lambda b: b[3])
            side = int(2.2 * h)
            cx, cy = x + w // 2, y + h // 2
            x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
            region = frames[fi][y0:y0 + side, x0:x0 + side]
            p = os.path.join(tmp, f"vtest_{fi}.png")
            cv2.imwrite(p, cv2.cvtColor(region, cv2.COLOR_RGB2BGR))
            dst = os.path.join(out_dir, f"vtest_frame{fi}.png")
            box = f"{x - x0},{y - y0},{w},{h}"
            subprocess.run([binary, "infer", "--model", onnx_path, *mc, "--box", box, "--draw", dst, p],
                           check=True, capture_output=True)
            made.append(dst)
        # one held-out synthetic figure
        x, gt = ev.synth_heldout(256, count=3)
        img = (x[2].transpose(1, 2, 0) * 255).round().astype(np.uint8)
        p = os.path.join(tmp, "synth.png")
        cv2.imwrite(p, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        dst = os.path.join(out_dir, "synthetic_heldout.png")
        subprocess.run([binary, "infer", "--model", onnx_path, *mc, "--draw", dst, p], check=True, capture_output=True)
        made.append(dst)
    for p in made:  # keep the committed PNGs small: 256-colour palette
        from PIL import Image

        Image.open(p).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(p, optimize=True)
    return made


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", default="default")
    ap.add_argument("--cheap-teacher", default="EfficientPoseRT")
    ap.add_argument("--no-card", action="store_true")
    ap.add_argument("--card-min-confidence", type=float, default=0.0,
                    help="hgpose --min-confidence for the card images (0: draw every joint)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, cfg = load_model_from_checkpoint(a.checkpoint)
    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, "hourglass.onnx")
    export_onnx(model, onnx_path, "per-stack", "nchw")
    diff = verify(model, onnx_path, "per-stack", "nchw")
    h, w = model.input_size
    with open(os.path.join(a.out, "hourglass.toml"), "w") as f:
        f.write(SIDECAR.format(h=h, w=w))
    ck = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    metrics = {"checkpoint_step": int(ck["step"]), "onnx_vs_torch_max_abs_diff": float(diff),
               "onnxruntime": ev.evaluate(ev.onnx_predictor(onnx_path), h)}
    try:
        metrics[f"teacher_{a.cheap_teacher}_vs_EfficientPoseII"] = ev.teacher_compare(a.cheap_teacher, h)
    except FileNotFoundError as e:
        metrics["teacher_compare"] = f"skipped: {e}"
    binary = hgpose_binary()
    if binary:
        metrics["hgpose_binary_real_heldout_vs_EfficientPoseII"] = hgpose_heldout_real(binary, onnx_path, h)
        if not a.no_card:
            metrics["card_images"] = [os.path.relpath(p, a.out) for p in card_images(binary, onnx_path, os.path.join(a.out, "card"), a.card_min_confidence)]
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps({k: v for k, v in metrics.items()}, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
