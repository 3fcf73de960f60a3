"""Target heatmaps, heatmap decoding and PCK metrics.

Coordinates are continuous pixel coordinates: pixel ``i`` covers ``[i, i+1)``, so its centre is
``i + 0.5`` (the Rust decoder's convention). A joint at input coordinate ``x`` sits at heatmap
coordinate ``x / stride``; heatmap cell ``c`` has its centre at ``c + 0.5``.

Joint arrays are ``[J, 3]``: ``x, y, w`` where ``w`` is the joint's weight/visibility
(0 = unlabelled: no target, not scored).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch

# MPII order
JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE, PELVIS, THORAX, NECK, HEAD = range(10)
R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST = range(10, 16)
FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
FLIP_PERM = np.arange(16)
for _a, _b in FLIP_PAIRS:
    FLIP_PERM[_a], FLIP_PERM[_b] = _b, _a
SKELETON = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
)


def sigma_for(out_size: int) -> float:
    """The paper's sigma of 1 heatmap pixel at 64x64, scaled with the output size."""
    return out_size / 64.0


def gaussian_heatmaps(joints: np.ndarray, in_size: int, out_size: int,
                      sigma: Optional[float] = None) -> np.ndarray:
    """``[J, out, out]`` float32 Gaussians (peak 1) at the joints; zero maps for ``w == 0``
    or joints that fall more than 3 sigma outside the map."""
    if sigma is None:
        sigma = sigma_for(out_size)
    stride = in_size / out_size
    grid = np.arange(out_size, dtype=np.float32) + 0.5
    maps = np.zeros((len(joints), out_size, out_size), dtype=np.float32)
    for j, (x, y, w) in enumerate(joints):
        if w <= 0:
            continue
        cx, cy = x / stride, y / stride
        if not (-3 * sigma < cx < out_size + 3 * sigma and -3 * sigma < cy < out_size + 3 * sigma):
            continue
        gx = np.exp(-((grid - cx) ** 2) / (2 * sigma * sigma))
        gy = np.exp(-((grid - cy) ** 2) / (2 * sigma * sigma))
        maps[j] = gy[:, None] * gx[None, :]
    return maps


def target_weights(joints: np.ndarray, in_size: int) -> np.ndarray:
    """Per-joint loss weight: the label weight; joints outside the input get weight 1 with an
    all-zero target (the network should not fire)."""
    return (joints[:, 2] > 0).astype(np.float32)


def decode(heatmaps: np.ndarray, stride: float) -> np.ndarray:
    """``[..., J, h, w]`` heatmaps -> ``[..., J, 3]`` (x, y in input pixels, peak value).

    Argmax, then a quarter pixel towards the higher neighbour on each axis (as in the paper
    and the Rust decoder)."""
    hm = np.asarray(heatmaps, dtype=np.float32)
    lead = hm.shape[:-2]
    h, w = hm.shape[-2:]
    flat = hm.reshape(-1, h, w)
    out = np.zeros((flat.shape[0], 3), dtype=np.float32)
    for i, m in enumerate(flat):
        idx = int(np.argmax(m))
        py, px = divmod(idx, w)
        dx = dy = 0.0
        if 0 < px < w - 1:
            dx = 0.25 * np.sign(m[py, px + 1] - m[py, px - 1])
        if 0 < py < h - 1:
            dy = 0.25 * np.sign(m[py + 1, px] - m[py - 1, px])
        out[i] = ((px + 0.5 + dx) * stride, (py + 0.5 + dy) * stride, m[py, px])
    return out.reshape(*lead, 3)


def decode_torch(heatmaps: torch.Tensor, stride: float) -> np.ndarray:
    return decode(heatmaps.detach().float().cpu().numpy(), stride)


def head_size(gt: np.ndarray) -> np.ndarray:
    """``[N, J, 3]`` -> ``[N]`` head_top..upper_neck distance (NaN when either is unlabelled)."""
    d = np.linalg.norm(gt[:, HEAD, :2] - gt[:, NECK, :2], axis=-1)
    ok = (gt[:, HEAD, 2] > 0) & (gt[:, NECK, 2] > 0)
    return np.where(ok, d, np.nan)


def torso_size(gt: np.ndarray) -> np.ndarray:
    """``[N]`` torso diameter: the longer shoulder-to-opposite-hip distance; where those joints
    are missing, the diagonal of the labelled joints' bounding box."""
    n = len(gt)
    out = np.full(n, np.nan, dtype=np.float64)
    for i in range(n):
        g = gt[i]
        ds = []
        for a, b in ((L_SHOULDER, R_HIP), (R_SHOULDER, L_HIP)):
            if g[a, 2] > 0 and g[b, 2] > 0:
                ds.append(np.linalg.norm(g[a, :2] - g[b, :2]))
        if ds:
            out[i] = max(ds)
        else:
            v = g[g[:, 2] > 0, :2]
            if len(v) >= 2:
                out[i] = np.linalg.norm(v.max(0) - v.min(0))
    return out


def pck(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, thr: float) -> Dict[str, float]:
    """PCK in percent: a joint is correct when ``|pred - gt| <= thr * norm``.

    Only labelled joints (``w > 0``) of samples with a finite, positive ``norm`` count.
    Returns ``{"all": ..., <joint name>: ...}`` and ``"count"`` (joints scored)."""
    dist = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    valid = (gt[..., 2] > 0) & np.isfinite(norm)[:, None] & (np.nan_to_num(norm) > 0)[:, None]
    ok = (dist <= thr * np.nan_to_num(norm)[:, None]) & valid
    res = {"all": 100.0 * ok.sum() / max(1, valid.sum()), "count": float(valid.sum())}
    for j, name in enumerate(JOINT_NAMES):
        res[name] = 100.0 * ok[:, j].sum() / max(1, valid[:, j].sum())
    return res


def pckh(pred: np.ndarray, gt: np.ndarray, thr: float = 0.5) -> Dict[str, float]:
    return pck(pred, gt, head_size(gt), thr)


def pck_torso(pred: np.ndarray, gt: np.ndarray, thr: float = 0.2) -> Dict[str, float]:
    return pck(pred, gt, torso_size(gt), thr)


def stack_loss(outputs: Sequence[torch.Tensor], target: torch.Tensor,
               weight: torch.Tensor) -> torch.Tensor:
    """Intermediate supervision: the sum over EVERY stack of the weighted mean squared error.

    ``outputs``: list of ``[N, J, h, w]``; ``target``: ``[N, J, h, w]``; ``weight``: ``[N, J]``."""
    w = weight[:, :, None, None]
    total = outputs[0].new_zeros(())
    for out in outputs:
        total = total + (((out - target) ** 2) * w).mean()
    return total
