"""Synthetic people with exact labels: simple figures drawn in real (MPII) poses.

A figure is a torso polygon (shoulders and hips), limbs as thick capsules (tapered polygons with
round ends) of varied widths, a neck, an elliptical head, hands and feet, with random clothing,
skin and shoe colours and low-frequency shading, drawn back-to-front (the far side first) over a
random crop of a real background photo. Poses come from the fully annotated MPII people
(:func:`hourglass.data.mpii.pose_prior`: train split for training, validation split for the
held-out synthetic set); without the annotation file a small built-in pose list is used.

Each sample follows the real crops' convention (:mod:`hourglass.data.real`): a ``CROP x CROP``
image whose person (box side ``h``) is centred, with ``CROP = CONTEXT * h``.
"""

from __future__ import annotations

import glob
import os
from typing import List, Optional, Sequence

import cv2
import numpy as np

from ..targets import (HEAD, L_ANKLE, L_ELBOW, L_HIP, L_KNEE, L_SHOULDER, L_WRIST, NECK, PELVIS,
                       R_ANKLE, R_ELBOW, R_HIP, R_KNEE, R_SHOULDER, R_WRIST, THORAX)

CROP = 256
CONTEXT = 2.0

# A few hand-made poses (x right, y down; MPII order), used when MPII annotations are absent.
_BUILTIN = [
    # standing, arms down
    [(-.12, .48), (-.11, .25), (-.1, .02), (.1, .02), (.11, .25), (.12, .48), (0, .02), (0, -.28),
     (0, -.33), (0, -.5), (-.22, .02), (-.2, -.13), (-.17, -.28), (.17, -.28), (.2, -.13), (.22, .02)],
    # arms raised
    [(-.1, .48), (-.1, .25), (-.09, .02), (.09, .02), (.1, .25), (.1, .48), (0, .02), (0, -.26),
     (0, -.31), (0, -.48), (-.3, -.5), (-.25, -.38), (-.16, -.26), (.16, -.26), (.25, -.38), (.3, -.5)],
    # walking
    [(-.2, .47), (-.12, .26), (-.06, .02), (.08, .02), (.18, .24), (.26, .46), (0, .02), (.02, -.28),
     (.02, -.33), (.03, -.5), (.15, .0), (.1, -.13), (-.12, -.27), (.15, -.28), (.1, -.12), (-.12, .0)],
    # arms sideways, legs apart
    [(-.3, .48), (-.2, .26), (-.09, .03), (.09, .03), (.2, .26), (.3, .48), (0, .03), (0, -.26),
     (0, -.31), (0, -.48), (-.5, -.27), (-.33, -.27), (-.16, -.26), (.16, -.26), (.33, -.27), (.5, -.27)],
    # crouching, one arm forward
    [(-.2, .45), (-.28, .2), (-.05, .15), (.08, .15), (.28, .22), (.2, .45), (.01, .15), (0, -.2),
     (0, -.25), (.02, -.42), (-.35, -.1), (-.22, -.12), (-.14, -.2), (.14, -.2), (.18, .0), (.05, .1)],
]


def builtin_poses() -> np.ndarray:
    return np.asarray(_BUILTIN, dtype=np.float32)


def load_poses(split: str = "train") -> np.ndarray:
    """MPII pose prior for ``split`` if the annotation file is cached, else the built-in list."""
    from .fetch import mpii_annotations_path

    if os.path.exists(mpii_annotations_path()):
        from .mpii import pose_prior

        return pose_prior(split)
    return builtin_poses()


def load_backgrounds(paths: Sequence[str], max_side: int = 640) -> List[np.ndarray]:
    out = []
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            continue
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        s = max_side / max(img.shape[:2])
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out.append(img)
    return out


def background_sets(cache_dir: str):
    """(train backgrounds, held-out backgrounds) from the cache: photos without people, and the
    vtest median background (training only)."""
    files = sorted(glob.glob(os.path.join(cache_dir, "opencv", "*.jpg")) +
                   glob.glob(os.path.join(cache_dir, "opencv", "*.png")) +
                   glob.glob(os.path.join(cache_dir, "skimage", "*.png")) +
                   glob.glob(os.path.join(cache_dir, "skimage", "*.jpg")))
    people = ("messi5", "basketball", "astronaut", "camera")
    files = [f for f in files if not any(p in os.path.basename(f) for p in people)]
    held = [f for f in files if os.path.basename(f) in ("home.jpg", "coffee.png", "leuvenA.jpg")]
    train = [f for f in files if f not in held]
    bgv = os.path.join(cache_dir, "vtest_background.png")
    if os.path.exists(bgv):
        train.append(bgv)
    return load_backgrounds(train), load_backgrounds(held)


def random_background(rng: np.random.Generator, backgrounds: Sequence[np.ndarray], size: int) -> np.ndarray:
    if not backgrounds or rng.random() < 0.08:
        # plain or gradient background
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        img = (c0 * (1 - t) + c1 * t).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(img, (size, size, 3)))
    bg = backgrounds[int(rng.integers(len(backgrounds)))]
    h, w = bg.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = cv2.resize(bg[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


def _colour(rng, dark=False):
    if rng.random() < 0.25:
        v = rng.integers(10, 90) if dark else rng.integers(10, 245)
        return np.array([v, v, v]) + rng.integers(-8, 9, 3)
    return rng.integers(0, 256, 3)


def _skin(rng):
    base = np.array([[255, 220, 185], [225, 180, 140], [190, 140, 100], [140, 95, 65], [90, 60, 40]])
    c = base[int(rng.integers(len(base)))] + rng.integers(-15, 16, 3)
    return np.clip(c, 0, 255)


def _capsule(layer, mask, a, b, r0, r1, colour):
    """Tapered capsule from a (radius r0) to b (radius r1), drawn into ``layer`` and ``mask``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = b - a
    n = np.linalg.norm(d)
    col = tuple(int(c) for c in colour)
    sh = 4  # fixed-point bits
    f = float(1 << sh)
    if n > 1e-3:
        p = np.array([-d[1], d[0]]) / n
        poly = np.array([a + p * r0, b + p * r1, b - p * r1, a - p * r0])
        cv2.fillConvexPoly(layer, np.round(poly * f).astype(np.int32), col, cv2.LINE_AA, sh)
        cv2.fillConvexPoly(mask, np.round(poly * f).astype(np.int32), 255, cv2.LINE_AA, sh)
    for c, r in ((a, r0), (b, r1)):
        cv2.circle(layer, tuple(np.round(c * f).astype(int)), int(round(r * f)), col, -1, cv2.LINE_AA, sh)
        cv2.circle(mask, tuple(np.round(c * f).astype(int)), int(round(r * f)), 255, -1, cv2.LINE_AA, sh)


def render_figure(pose: np.ndarray, rng: np.random.Generator, background: np.ndarray,
                  size: int = CROP) -> tuple:
    """Draw one figure in ``pose`` (normalised ``[16, 2]``) over ``background`` (``size`` square,
    uint8 RGB). Returns (image uint8, joints ``[16, 3]`` in image pixels, weight 1)."""
    h_person = size / CONTEXT
    p = pose.astype(np.float64) * h_person * rng.uniform(0.85, 1.0)
    if rng.random() < 0.5:  # mirror the pose itself (labels follow the drawing: swap sides)
        from ..targets import FLIP_PERM

        p = p[FLIP_PERM] * np.array([-1.0, 1.0])
    p = p + size / 2
    torso = max(np.linalg.norm(p[NECK] - p[PELVIS]), np.linalg.norm(p[HEAD] - p[NECK]) * 1.5, size * 0.06)
    shirt, trousers = _colour(rng), _colour(rng, dark=rng.random() < 0.4)
    skin, shoes = _skin(rng), _colour(rng, dark=True)
    long_sleeves, shorts = rng.random() < 0.5, rng.random() < 0.25
    wscale = rng.uniform(1.1, 1.8)
    w = lambda k: k * torso * wscale * rng.uniform(0.9, 1.1)

    layer = np.zeros((size, size, 3), np.uint8)
    mask = np.zeros((size, size), np.uint8)

    def limb(a, b, ra, rb, col):
        _capsule(layer, mask, p[a], p[b], ra, rb, col)

    def arm(s, e, wr):
        limb(s, e, w(0.13), w(0.11), shirt)
        limb(e, wr, w(0.1), w(0.075), shirt if long_sleeves else skin)
        hand = p[wr] + (p[wr] - p[e]) * 0.18
        _capsule(layer, mask, p[wr], hand, w(0.08), w(0.09), skin)

    def leg(hp, k, a):
        limb(hp, k, w(0.17), w(0.13), trousers)
        limb(k, a, w(0.13), w(0.1), skin if shorts else trousers)
        d = p[a] - p[k]
        foot = p[a] + np.array([d[1], -d[0]]) * rng.choice([-0.25, 0.25]) + d * 0.05
        _capsule(layer, mask, p[a], foot, w(0.08), w(0.07), shoes)

    def body():
        sh_out = (p[L_SHOULDER] - p[R_SHOULDER]) * 0.08
        hip_out = (p[L_HIP] - p[R_HIP]) * 0.15
        poly = np.array([p[R_SHOULDER] - sh_out, p[L_SHOULDER] + sh_out, p[L_HIP] + hip_out, p[R_HIP] - hip_out])
        hull = cv2.convexHull(np.round(poly * 16).astype(np.int32))
        cv2.fillConvexPoly(layer, hull, tuple(int(c) for c in shirt), cv2.LINE_AA, 4)
        cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_AA, 4)
        limb(R_SHOULDER, L_SHOULDER, w(0.12), w(0.12), shirt)
        limb(R_HIP, L_HIP, w(0.15), w(0.15), trousers)
        limb(THORAX, PELVIS, w(0.2), w(0.2), shirt)

    def head():
        limb(THORAX, NECK, w(0.08), w(0.08), skin)
        c = (p[NECK] + p[HEAD]) / 2
        d = p[HEAD] - p[NECK]
        ln = max(np.linalg.norm(d), 2.0)
        ang = float(np.degrees(np.arctan2(d[1], d[0])))
        axes = (int(round(ln * 0.55 * 16)), int(round(ln * rng.uniform(0.36, 0.46) * 16)))
        ctr = tuple(np.round(c * 16).astype(int))
        cv2.ellipse(layer, ctr, axes, ang, 0, 360, tuple(int(v) for v in skin), -1, cv2.LINE_AA, 4)
        cv2.ellipse(mask, ctr, axes, ang, 0, 360, 255, -1, cv2.LINE_AA, 4)
        if rng.random() < 0.6:  # hair on the top half
            hair = tuple(int(v) for v in _colour(rng, dark=True))
            cv2.ellipse(layer, tuple(np.round((c + d * 0.12) * 16).astype(int)),
                        (int(axes[0] * 0.85), int(axes[1] * 1.02)), ang, -90, 90, hair, -1, cv2.LINE_AA, 4)

    right_front = rng.random() < 0.5
    back_arm = (L_SHOULDER, L_ELBOW, L_WRIST) if right_front else (R_SHOULDER, R_ELBOW, R_WRIST)
    front_arm = (R_SHOULDER, R_ELBOW, R_WRIST) if right_front else (L_SHOULDER, L_ELBOW, L_WRIST)
    back_leg = (L_HIP, L_KNEE, L_ANKLE) if right_front else (R_HIP, R_KNEE, R_ANKLE)
    front_leg = (R_HIP, R_KNEE, R_ANKLE) if right_front else (L_HIP, L_KNEE, L_ANKLE)
    arm(*back_arm)
    leg(*back_leg)
    leg(*front_leg)
    body()
    head()
    if rng.random() < 0.7:
        arm(*front_arm)
    else:  # arm behind the torso
        layer2, mask2 = layer.copy(), mask.copy()
        layer[:], mask[:] = 0, 0
        arm(*front_arm)
        keep = mask2 > 0
        layer[keep], mask[keep] = layer2[keep], mask2[keep]

    # low-frequency shading and a little texture
    sh = cv2.resize(rng.uniform(0.6, 1.25, (4, 4)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    tex = 1.0 + rng.normal(0, rng.uniform(0, 0.08), (size, size)).astype(np.float32)
    fig = layer.astype(np.float32) * (sh * tex)[..., None]
    alpha = (cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) / 255.0)[..., None]
    img = background.astype(np.float32) * (1 - alpha) + fig * alpha
    joints = np.concatenate([p, np.ones((16, 1))], axis=1).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), joints


class SyntheticPeople:
    """Endless synthetic samples: ``sample(rng)`` -> (uint8 image CROP^2, joints [16,3])."""

    def __init__(self, poses: np.ndarray, backgrounds: Sequence[np.ndarray], size: int = CROP):
        self.poses = poses
        self.backgrounds = list(backgrounds)
        self.size = size

    def sample(self, rng: np.random.Generator):
        pose = self.poses[int(rng.integers(len(self.poses)))]
        bg = random_background(rng, self.backgrounds, self.size)
        return render_figure(pose, rng, bg, self.size)


def fixed_set(synth: SyntheticPeople, count: int, seed: int):
    """A deterministic list of samples (for held-out evaluation)."""
    rng = np.random.default_rng(seed)
    imgs, joints = [], []
    for _ in range(count):
        im, j = synth.sample(rng)
        imgs.append(im)
        joints.append(j)
    return np.stack(imgs), np.stack(joints)
