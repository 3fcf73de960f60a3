"""The person-crop sets (hourglass.data.crops): the network's view of a box (real.box_view, which
the teacher labelling uses too), and the even pick."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the crops need opencv-python-headless (models/requirements-train.txt)")

from hourglass.data.crops import evenly
from hourglass.data.real import box_view as view


def test_view_is_the_box_with_the_runtime_margin():
    img = np.zeros((200, 300, 3), np.uint8)
    img[50:110, 100:130] = 255  # a 30 x 60 "person" at (100, 50)
    out = view(img, (100, 50, 30, 60))
    assert out.shape == (90, 90, 3)  # 1.5 x the longer side
    ys, xs = np.nonzero(out[..., 0] > 127)
    # the box sits in the middle: 15 px of margin above and below, 30 at the sides
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (15, 74, 30, 59)


def test_view_beyond_the_frame_is_black():
    img = np.full((100, 100, 3), 200, np.uint8)
    out = view(img, (0, 0, 40, 40))
    assert out.shape == (60, 60, 3)
    assert out[:10, :10].max() == 0 and out[30, 30].min() == 200


def test_evenly_spreads_and_keeps_short_lists():
    assert evenly(list(range(5)), 10) == list(range(5))
    picked = evenly(list(range(100)), 5)
    assert picked[0] == 0 and picked[-1] == 99 and len(set(picked)) == 5
