"""Real people: person crops from the cached photos and ``vtest.avi``, labelled by a teacher.

* ``vtest.avi`` (static camera): median background over sampled frames, absolute difference,
  morphology, connected components; blobs of pedestrian size and shape become person boxes.
  Frames ``< 80%`` of the video are for training, the last 20% are held out.
* Photos: fixed person boxes (``PHOTO_BOXES``). ``messi5.jpg`` is held out.

Each person is stored as a ``CROP x CROP`` RGB crop centred on the box with side
``CONTEXT * box height`` (context for augmentation), and the teacher's 16 joints (MPII order)
in crop pixels with the teacher's peak confidence. The teacher sees the box with the runtime's
default 25% margin on each side (side ``1.5 * h``), letterboxed.

CLI (from models/)::

    python -m hourglass.data.real --teacher EfficientPoseII      # writes data/cache/real_<teacher>.npz
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from .fetch import cache_path, fetch_all

CROP = 256
CONTEXT = 2.0
MARGIN_VIEW = 1.5  # what the network sees of a box: the runtime's default 25% margin each side
HELDOUT_FRACTION = 0.2

# x, y, w, h person boxes in the cached photos; (file, box, split)
PHOTO_BOXES = [
    ("opencv/messi5.jpg", (60, 40, 400, 300), "heldout"),
    ("opencv/basketball1.png", (25, 65, 150, 415), "train"),
    ("opencv/basketball2.png", (25, 65, 160, 415), "train"),
    ("opencv/basketball1.png", (415, 5, 225, 475), "train"),
    ("opencv/basketball2.png", (415, 5, 225, 475), "train"),
    ("skimage/astronaut.png", (60, 0, 360, 512), "train"),
    ("skimage/camera.png", (0, 40, 330, 472), "train"),
]


def load_rgb(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop_square(img: np.ndarray, cx: float, cy: float, side: float, out: int) -> np.ndarray:
    """Square crop of ``side`` source pixels centred at (cx, cy), resized to ``out``; black outside."""
    s = out / side
    m = np.array([[s, 0, out / 2 - s * cx - 0.5 + 0.5 * s], [0, s, out / 2 - s * cy - 0.5 + 0.5 * s]])
    return cv2.warpAffine(img, m, (out, out), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def box_view(img: np.ndarray, box, out: int = 0) -> np.ndarray:
    """The runtime's view of person ``box`` (x, y, w, h): the square of side
    ``MARGIN_VIEW * max(w, h)`` around it, resized to ``out`` pixels (0: its own size)."""
    x, y, w, h = box
    side = MARGIN_VIEW * max(w, h)
    return crop_square(img, x + w / 2, y + h / 2, side, out or int(round(side)))


def read_video(path: str) -> np.ndarray:
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def median_background(frames: np.ndarray, step: int = 8) -> np.ndarray:
    return np.median(frames[::step], axis=0).astype(np.uint8)


def detect_people(frame: np.ndarray, bg: np.ndarray, thr: int = 30):
    """Person boxes (x, y, w, h) from background subtraction."""
    diff = np.abs(frame.astype(np.int16) - bg.astype(np.int16)).max(axis=-1)
    mask = (diff > thr).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 15)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    H, W = mask.shape
    boxes = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if h < 70 or h > 320 or not (1.6 <= h / max(w, 1) <= 4.5):
            continue
        if area < 0.35 * w * h:
            continue
        if x <= 2 or y <= 2 or x + w >= W - 2 or y + h >= H - 2:
            continue
        boxes.append((int(x), int(y), int(w), int(h)))
    return boxes


def build(teacher_name: str = "EfficientPoseII", train_step: int = 3, heldout_step: int = 4,
          max_train: int = 700, max_heldout: int = 160, seed: int = 0, out: str = None) -> str:
    from .teacher import Teacher

    fetch_all()
    out = out or cache_path(f"real_{teacher_name}.npz")
    teacher = Teacher(teacher_name)
    rng = np.random.default_rng(seed)
    frames = read_video(cache_path("opencv", "vtest.avi"))
    bg = median_background(frames)
    cv2.imwrite(cache_path("vtest_background.png"), cv2.cvtColor(bg, cv2.COLOR_RGB2BGR))
    split_at = int(round(len(frames) * (1 - HELDOUT_FRACTION)))
    cand = {"train": [], "heldout": []}
    for fi in range(len(frames)):
        split = "train" if fi < split_at else "heldout"
        step = train_step if split == "train" else heldout_step
        if fi % step:
            continue
        for box in detect_people(frames[fi], bg):
            cand[split].append((f"vtest:{fi}", fi, box))
    print(f"vtest: {len(frames)} frames, split at {split_at}; candidate boxes: "
          f"train {len(cand['train'])}, heldout {len(cand['heldout'])}", flush=True)
    for split, cap in (("train", max_train), ("heldout", max_heldout)):
        if len(cand[split]) > cap:
            keep = np.sort(rng.choice(len(cand[split]), cap, replace=False))
            cand[split] = [cand[split][i] for i in keep]

    images, joints, sources, splits = [], [], [], []

    def add(img, box, source, split):
        x, y, w, h = box
        cx, cy = x + w / 2, y + h / 2
        side_in = MARGIN_VIEW * max(w, h)
        tin = box_view(img, box, max(teacher.size, 64))
        j = teacher.predict(tin)
        j[:, :2] = j[:, :2] * (side_in / tin.shape[0])  # -> offset from crop corner, source px
        side = CONTEXT * max(w, h)
        k = CROP / side
        j[:, 0] = (j[:, 0] - side_in / 2) * k + CROP / 2
        j[:, 1] = (j[:, 1] - side_in / 2) * k + CROP / 2
        images.append(crop_square(img, cx, cy, side, CROP))
        joints.append(j)
        sources.append(source)
        splits.append(split)

    t0 = time.time()
    for path, box, split in PHOTO_BOXES:
        add(load_rgb(cache_path(path)), box, path, split)
    for split in ("train", "heldout"):
        for i, (src, fi, box) in enumerate(cand[split]):
            add(frames[fi], box, src, split)
            if i % 100 == 0:
                print(f"  {split} {i}/{len(cand[split])}  {time.time() - t0:.0f}s", flush=True)
    np.savez_compressed(out, images=np.stack(images), joints=np.stack(joints).astype(np.float32),
                        sources=np.array(sources), splits=np.array(splits), teacher=teacher_name)
    print(f"wrote {out}: {len(images)} crops in {time.time() - t0:.0f}s", flush=True)
    return out


def relabel(npz: str, teacher_name: str, out: str) -> str:
    """Run another teacher on the same crops (for comparing teachers on identical inputs)."""
    from .teacher import Teacher

    d = np.load(npz)
    teacher = Teacher(teacher_name)
    images = d["images"]
    res = []
    # the teacher saw the central 1.5/CONTEXT of each crop
    inner = int(round(CROP * 1.5 / CONTEXT))
    o = (CROP - inner) // 2
    for img in images:
        j = teacher.predict(img[o:o + inner, o:o + inner])
        j[:, :2] += o
        res.append(j)
    np.savez_compressed(out, joints=np.stack(res), teacher=teacher_name)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="EfficientPoseII")
    ap.add_argument("--max-train", type=int, default=700)
    ap.add_argument("--max-heldout", type=int, default=160)
    ap.add_argument("--detect-only", action="store_true")
    a = ap.parse_args(argv)
    if a.detect_only:
        fetch_all()
        frames = read_video(cache_path("opencv", "vtest.avi"))
        bg = median_background(frames)
        counts = [len(detect_people(f, bg)) for f in frames[::3]]
        print(len(frames), frames.shape, "boxes per frame", np.mean(counts), sum(counts))
        return 0
    build(a.teacher, max_train=a.max_train, max_heldout=a.max_heldout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
