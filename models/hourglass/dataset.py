"""Training samples: a seeded mixture of teacher-labelled real crops, synthetic figures and
(optionally) real MPII images, augmented and turned into input tensors and target heatmaps.

Every sample is a pure function of ``(seed, step, index)``, so a resumed run sees exactly the
batches an uninterrupted one would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .augment import AugmentConfig, colour_jitter, random_geometry, warp_image, warp_joints
from .data import real as real_data
from .data import synth as synth_data
from .targets import gaussian_heatmaps, target_weights

# In the stored crops (real and synthetic) the person box side is CROP / CONTEXT; the network
# sees it with the runtime's 25% margin on each side, i.e. a square of side 1.5 * box.
CROP = real_data.CROP
VIEW = 1.5 * CROP / real_data.CONTEXT
CENTER = (CROP / 2, CROP / 2)


@dataclass
class Sample:
    image: np.ndarray      # float32 [3, S, S] in [0, 1]
    target: np.ndarray     # float32 [J, S/4, S/4]
    weight: np.ndarray     # float32 [J]
    joints: np.ndarray     # float32 [J, 3], input pixels


def make_sample(img: np.ndarray, joints: np.ndarray, center, side: float, input_size: int,
                rng: Optional[np.random.Generator], aug: Optional[AugmentConfig]) -> Sample:
    if rng is not None and aug is not None:
        center, side, rot, flip = random_geometry(rng, aug, center, side)
    else:
        rot, flip = 0.0, False
    from .augment import affine

    m = affine(center, side, rot, flip, input_size)
    im = warp_image(img, m, input_size)
    j = warp_joints(joints, m, flip)
    x = colour_jitter(im, rng, aug) if (rng is not None and aug is not None) else im.astype(np.float32) / 255.0
    out = input_size // 4
    return Sample(x.transpose(2, 0, 1).copy(), gaussian_heatmaps(j, input_size, out),
                  target_weights(j, input_size), j.astype(np.float32))


class RealCrops:
    """Teacher-labelled crops from :mod:`hourglass.data.real` (one split)."""

    def __init__(self, npz: str, split: str, min_confidence: float = 0.3):
        d = np.load(npz)
        keep = d["splits"] == split
        self.images = d["images"][keep]
        self.joints = d["joints"][keep].copy()
        self.sources = d["sources"][keep]
        self.confidence = self.joints[:, :, 2].copy()
        self.joints[:, :, 2] = (self.confidence >= min_confidence).astype(np.float32)

    def __len__(self):
        return len(self.images)


class MixedDataset:
    def __init__(self, cfg: dict, cache_dir: str):
        d = cfg["data"]
        self.input_size = int(cfg["model"]["input_size"])
        self.aug = AugmentConfig(**cfg.get("augment", {}))
        self.weights = {"real": float(d.get("real_weight", 0.0)), "synth": float(d.get("synth_weight", 0.0)),
                        "mpii": float(d.get("mpii_weight", 0.0))}
        self.real = None
        if self.weights["real"] > 0:
            npz = os.path.join(cache_dir, d.get("real_npz", "real_EfficientPoseII.npz"))
            self.real = RealCrops(npz, "train", float(d.get("min_teacher_confidence", 0.3)))
            # photos are few: let them be drawn as often as `photo_boost` vtest crops each
            boost = float(d.get("photo_boost", 20.0))
            p = np.array([1.0 if s.startswith("vtest") else boost for s in self.real.sources])
            self.real_p = p / p.sum()
        self.synth = None
        if self.weights["synth"] > 0:
            poses = synth_data.load_poses("train") if d.get("poses", "mpii") == "mpii" else synth_data.builtin_poses()
            bgs = synth_data.background_sets(cache_dir)[0] if d.get("backgrounds", True) else []
            self.synth = synth_data.SyntheticPeople(poses, bgs)
        self.mpii = None
        if self.weights["mpii"] > 0:
            from .data.mpii import MPIIDataset

            self.mpii = MPIIDataset(d["mpii_images"], "train", d.get("mpii_annotations") or None)
        names = [k for k, v in self.weights.items() if v > 0]
        if not names:
            raise ValueError("no data source has a positive weight")
        self.names = names
        w = np.array([self.weights[k] for k in names])
        self.p = w / w.sum()

    def sample(self, rng: np.random.Generator) -> Sample:
        src = self.names[int(rng.choice(len(self.names), p=self.p))]
        if src == "real":
            i = int(rng.choice(len(self.real), p=self.real_p))
            return make_sample(self.real.images[i], self.real.joints[i], CENTER, VIEW, self.input_size, rng, self.aug)
        if src == "synth":
            img, j = self.synth.sample(rng)
            return make_sample(img, j, CENTER, VIEW, self.input_size, rng, self.aug)
        img, j, (cx, cy, side) = self.mpii.get(int(rng.integers(len(self.mpii))))
        return make_sample(img, j, (cx, cy), side, self.input_size, rng, self.aug)

    def batch(self, seed: int, step: int, batch_size: int):
        rng = np.random.default_rng([seed, step])
        samples = [self.sample(rng) for _ in range(batch_size)]
        x = torch.from_numpy(np.stack([s.image for s in samples]))
        t = torch.from_numpy(np.stack([s.target for s in samples]))
        w = torch.from_numpy(np.stack([s.weight for s in samples]))
        return x, t, w
