"""Person crops as the runtime feeds them to the network, for calibrating and checking int8.

Whole ``vtest.avi`` frames show pedestrians about 15 pixels tall at the network's 128x128
input: no precision's keypoints mean anything there, so agreement measured on them counts noise.
When hgpose follows a person, the network sees that person's box with a 25% margin on each
side. This writes such views, cut where :mod:`hourglass.data.real` finds people (background
subtraction on ``vtest.avi``, the fixed photo boxes), on the same train / held-out split:

* ``OUT/calib-crops``: pedestrians from the first 80% of the video and the training photos,
* ``OUT/heldout-crops``: pedestrians from the last 20% (other people) and ``messi5.jpg``.

Each crop is the square of side ``1.5 * max(w, h)`` around the box at its source resolution
(black beyond the frame), so hgpose's own resize is the only one.

CLI (from models/)::

    python -m hourglass.data.crops OUT [--calib 24] [--heldout 40] [--offset 0]
"""

from __future__ import annotations

import argparse
import os

import cv2
import numpy as np

from .fetch import cache_path, fetch_all
from .real import HELDOUT_FRACTION, PHOTO_BOXES, box_view, detect_people, load_rgb, median_background, read_video


def evenly(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if len(items) <= count:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def write_crops(out: str, calib: int = 24, heldout: int = 40, offset: int = 0) -> dict:
    fetch_all()
    frames = read_video(cache_path("opencv", "vtest.avi"))
    background = median_background(frames)
    split_at = int(round(len(frames) * (1 - HELDOUT_FRACTION)))
    found = {"calib": [], "heldout": []}
    for index in range(offset % 4, len(frames), 4):
        split = "calib" if index < split_at else "heldout"
        for n, box in enumerate(detect_people(frames[index], background)):
            found[split].append((f"vtest_{index}_{n}", frames[index], box))
    wanted = {"calib": calib, "heldout": heldout}
    written = {}
    for split in ("calib", "heldout"):
        folder = os.path.join(out, f"{split}-crops")
        os.makedirs(folder, exist_ok=True)
        chosen = evenly(found[split], wanted[split])
        for path, box, photo_split in PHOTO_BOXES:
            if (photo_split == "train") == (split == "calib"):
                name = os.path.splitext(os.path.basename(path))[0] + "_" + "_".join(map(str, box[:2]))
                chosen.append((name, load_rgb(cache_path(path)), box))
        for name, img, box in chosen:
            cv2.imwrite(os.path.join(folder, name + ".png"), cv2.cvtColor(box_view(img, box), cv2.COLOR_RGB2BGR))
        written[split] = len(chosen)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder that gets calib-crops/ and heldout-crops/")
    ap.add_argument("--calib", type=int, default=24, help="pedestrians for calibration (plus the training photos)")
    ap.add_argument("--heldout", type=int, default=40, help="held-out pedestrians (plus messi5.jpg)")
    ap.add_argument("--offset", type=int, default=0,
                    help="read every 4th frame from this one (0-3): 1-3 give other frames for a second set")
    a = ap.parse_args(argv)
    n = write_crops(a.out, a.calib, a.heldout, a.offset)
    print(f"{n['calib']} calibration and {n['heldout']} held-out person crops in {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
