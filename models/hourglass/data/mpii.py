"""The MPII Human Pose annotations in the JSON format shipped by ``pytorch-stacked-hourglass``
(``stacked_hourglass/res/mpii_annotations.json.gz``; fetched by :mod:`hourglass.data.fetch`).

One record per annotated person (25,204; ``isValidation`` 1.0 for the 2,958 of the usual
validation split)::

    {"img_paths": "015601864.jpg", "img_width": 1280.0, "img_height": 720.0,
     "objpos": [x, y],                 # rough person centre
     "scale_provided": s,              # person height ~ 200 * s pixels
     "joint_self": [[x, y, vis] * 16], # MPII joint order; x = y = 0: not annotated
     "isValidation": 0.0 | 1.0, ...}

Joints with ``x, y > 0`` are annotated (``vis`` 0 then means annotated but occluded); those get
weight 1. :class:`MPIIDataset` crops real MPII images (``--mpii-images DIR`` holding the
``images/`` of ``mpii_human_pose_v1.tar.gz``) like the paper: centre ``objpos`` moved down by
``15 * s``, side ``200 * s * 1.25``.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import List, Optional

import numpy as np

from .fetch import mpii_annotations_path


def load_records(path: Optional[str] = None) -> List[dict]:
    path = path or mpii_annotations_path()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def record_joints(rec: dict) -> np.ndarray:
    """``[16, 3]`` float32: x, y, weight (1 where annotated). Converts MPII's 1-based pixel
    coordinates to the continuous convention (pixel ``i`` covers ``[i, i+1)``): ``x - 1 + 0.5``."""
    j = np.asarray(rec["joint_self"], dtype=np.float32)
    ann = (j[:, 0] > 0) & (j[:, 1] > 0)
    out = np.zeros((16, 3), dtype=np.float32)
    out[:, :2] = j[:, :2] - 0.5
    out[:, 2] = ann.astype(np.float32)
    return out


def record_box(rec: dict):
    """(cx, cy, side) of the paper's crop."""
    s = float(rec["scale_provided"])
    cx, cy = rec["objpos"]
    return float(cx), float(cy) + 15.0 * s, 200.0 * s * 1.25


def pose_prior(split: str = "train", path: Optional[str] = None) -> np.ndarray:
    """Fully annotated MPII poses, ``[N, 16, 2]``, normalised: centred on the joints' bounding box
    and divided by its longer side. ``split``: ``train`` (isValidation 0) or ``val``."""
    recs = load_records(path)
    want = 1.0 if split == "val" else 0.0
    poses = []
    for r in recs:
        if float(r.get("isValidation", 0.0)) != want:
            continue
        j = record_joints(r)
        if (j[:, 2] <= 0).any():
            continue
        p = j[:, :2]
        lo, hi = p.min(0), p.max(0)
        ext = float((hi - lo).max())
        if ext < 20:
            continue
        poses.append((p - (lo + hi) / 2) / ext)
    return np.asarray(poses, dtype=np.float32)


class MPIIDataset:
    """Real MPII images (not shipped; a user supplies the image folder)."""

    def __init__(self, image_dir: str, split: str = "train", annotations: Optional[str] = None):
        self.image_dir = image_dir
        want = 1.0 if split == "val" else 0.0
        self.records = [r for r in load_records(annotations) if float(r.get("isValidation", 0.0)) == want]
        if not self.records:
            raise ValueError("no MPII records for split " + split)
        missing = [r["img_paths"] for r in self.records[:5]
                   if not os.path.exists(os.path.join(image_dir, r["img_paths"]))]
        if missing:
            raise FileNotFoundError(f"MPII images not found in {image_dir} (e.g. {missing[0]})")

    def __len__(self) -> int:
        return len(self.records)

    def get(self, i: int):
        """(uint8 RGB image, joints [16,3], (cx, cy, side))."""
        from .real import load_rgb

        r = self.records[i]
        return load_rgb(os.path.join(self.image_dir, r["img_paths"])), record_joints(r), record_box(r)
