"""EfficientPose teachers (ONNX, onnxruntime) used to label real photos.

The models are read at run time from ``../shared/teachers`` (or ``$HGPOSE_TEACHERS``); they are
never copied into the repository. Pre-processing as upstream: RGB, letterbox (long side to the
input size, zero padding to a centred square), then ImageNet mean/std (non-Lite models) or
``x / 127.5 - 1`` (Lite). Decoding: argmax per channel of the full-resolution map. The channels
come in EfficientPose's order and are remapped to MPII order here.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEFAULT_DIR = os.environ.get("HGPOSE_TEACHERS", os.path.join(os.path.dirname(REPO), "shared", "teachers"))

# EfficientPose channel order -> names
EP_ORDER = (
    "head_top", "upper_neck", "r_shoulder", "r_elbow", "r_wrist", "thorax", "l_shoulder",
    "l_elbow", "l_wrist", "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
)
SIZES = {"EfficientPoseRT": 224, "EfficientPoseRT_LITE": 224, "EfficientPoseI": 256, "EfficientPoseII": 368}


def _ep_to_mpii():
    from ..targets import JOINT_NAMES

    return np.array([EP_ORDER.index(n) for n in JOINT_NAMES])


class Teacher:
    def __init__(self, name: str = "EfficientPoseII", directory: str = DEFAULT_DIR, threads: int = 2):
        import onnxruntime as ort

        path = os.path.join(directory, name + ".onnx")
        if not os.path.exists(path):
            raise FileNotFoundError(f"teacher model not found: {path}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.input_name = self.sess.get_inputs()[0].name
        self.output_names = [o.name for o in self.sess.get_outputs()]
        self.name = name
        self.size = SIZES[name]
        self.lite = "LITE" in name
        self.perm = _ep_to_mpii()

    def _output(self, outs):
        for o in outs:
            if o.ndim == 4 and o.shape[1] == self.size and o.shape[-1] == 16:
                return o
        return outs[-1]

    def predict(self, img: np.ndarray) -> np.ndarray:
        """uint8 RGB ``[H, W, 3]`` -> ``[16, 3]`` (x, y in image pixels, peak value), MPII order."""
        h, w = img.shape[:2]
        n = self.size
        s = n / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        canvas = np.zeros((n, n, 3), dtype=np.float32)
        ox, oy = (n - nw) // 2, (n - nh) // 2
        canvas[oy:oy + nh, ox:ox + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        x = canvas / 255.0
        if self.lite:
            x = canvas / 127.5 - 1.0
        else:
            x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
        outs = self.sess.run(None, {self.input_name: x[None].astype(np.float32)})
        hm = self._output(outs)[0]  # [n, n, 16]
        flat = hm.reshape(-1, 16)
        idx = flat.argmax(0)
        py, px = np.divmod(idx, n)
        conf = flat[idx, np.arange(16)]
        xs = ((px + 0.5) - ox) / s
        ys = ((py + 0.5) - oy) / s
        res = np.stack([xs, ys, conf], axis=-1).astype(np.float32)
        return res[self.perm]
