"""Geometric and photometric augmentation.

The geometric part is one affine warp from a source image to the square network input: centre,
side (source pixels shown across the input), rotation and an optional horizontal flip, which
also swaps the left/right joint labels (:data:`hourglass.targets.FLIP_PERM`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .targets import FLIP_PERM


@dataclass
class AugmentConfig:
    scale: float = 0.25        # side multiplied by exp(U(-1,1) * log(1+scale))
    rotation: float = 30.0     # degrees, drawn N(0, rotation/2) clipped to +-rotation; 40% of samples
    rotation_prob: float = 0.4
    flip: bool = True
    shift: float = 0.08        # centre jitter, fraction of the side
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    hue_gain: float = 0.1      # per-channel gain jitter
    gray_prob: float = 0.1
    blur_prob: float = 0.15
    noise: float = 0.02


def affine(center, side: float, rot_deg: float, flip: bool, out_size: int) -> np.ndarray:
    """2x3 matrix mapping continuous source coordinates to continuous output coordinates."""
    s = out_size / side
    a = math.radians(rot_deg)
    c, si = math.cos(a) * s, math.sin(a) * s
    cx, cy = center
    # rotate by -a around the centre (positive = counter-clockwise person on screen), scale
    m = np.array([[c, si, 0.0], [-si, c, 0.0]])
    m[:, 2] = np.array([out_size / 2, out_size / 2]) - m[:, :2] @ np.array([cx, cy])
    if flip:
        m = np.array([[-1.0, 0.0, out_size], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
    return m


def warp_image(img: np.ndarray, m: np.ndarray, out_size: int) -> np.ndarray:
    """Warp with a continuous-coordinate affine (pixel centres at i+0.5); black outside."""
    # cv2 uses pixel-index coordinates (centres at integers): idx = cont - 0.5
    t = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    ti = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    mi = (ti @ np.vstack([m, [0, 0, 1]]) @ t)[:2]
    return cv2.warpAffine(img, mi, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def warp_joints(joints: np.ndarray, m: np.ndarray, flip: bool) -> np.ndarray:
    out = joints.copy()
    out[:, :2] = joints[:, :2] @ m[:, :2].T + m[:, 2]
    if flip:
        out = out[FLIP_PERM]
    return out


def random_geometry(rng: np.random.Generator, cfg: AugmentConfig, center, side):
    sc = math.exp(rng.uniform(-1, 1) * math.log(1 + cfg.scale))
    rot = 0.0
    if rng.random() < cfg.rotation_prob:
        rot = float(np.clip(rng.normal(0, cfg.rotation / 2), -cfg.rotation, cfg.rotation))
    flip = bool(cfg.flip and rng.random() < 0.5)
    side = side * sc
    c = (center[0] + rng.uniform(-1, 1) * cfg.shift * side,
         center[1] + rng.uniform(-1, 1) * cfg.shift * side)
    return c, side, rot, flip


def colour_jitter(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """uint8 RGB -> float32 RGB in [0, 1]."""
    x = img.astype(np.float32) / 255.0
    if rng.random() < cfg.gray_prob:
        g = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        x = np.repeat(g[..., None], 3, axis=-1)
    else:
        g = x.mean(axis=-1, keepdims=True)
        x = g + (x - g) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
        x = x * rng.uniform(1 - cfg.hue_gain, 1 + cfg.hue_gain, size=3).astype(np.float32)
    mean = x.mean()
    x = mean + (x - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
    x = x * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    if rng.random() < cfg.blur_prob:
        k = int(rng.choice([3, 5]))
        x = cv2.GaussianBlur(x, (k, k), 0)
    if cfg.noise > 0:
        x = x + rng.normal(0, cfg.noise * rng.random(), size=x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32)
