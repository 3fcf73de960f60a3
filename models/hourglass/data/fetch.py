"""Download the training data's raw sources into ``models/data/cache`` (git-ignored).

Everything comes from ordinary package registries, through their own clients:

* Debian ``opencv-doc`` (``apt-get download``; BSD-licensed OpenCV sample data):
  ``messi5.jpg``, ``basketball1.png``, ``basketball2.png``, ``vtest.avi`` (795 frames of
  pedestrians, static camera) and other sample photos used as backgrounds.
* PyPI ``scikit-image`` wheel (``pip download``): ``astronaut.png`` (NASA, public domain),
  ``camera.png`` (CC0) and texture/photo images used as backgrounds.
* PyPI ``pytorch-stacked-hourglass`` wheel (``pip download``): the MPII Human Pose annotations
  converted to JSON (``mpii_annotations.json.gz``, 25,204 people; train/validation split flag).

CLI::

    python -m hourglass.data.fetch            # from models/
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

MODELS_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(MODELS_DIR, "data", "cache")

OPENCV_FILES = [
    "messi5.jpg", "basketball1.png", "basketball2.png", "vtest.avi",
    # backgrounds (no people)
    "building.jpg", "fruits.jpg", "home.jpg", "baboon.jpg", "aero1.jpg", "leuvenA.jpg",
    "orange.jpg", "graf1.png", "stuff.jpg", "starry_night.jpg", "board.jpg", "box_in_scene.png",
    "butterfly.jpg", "apple.jpg", "smarties.png", "rubberwhale1.png", "aloeL.jpg", "blox.jpg",
]
SKIMAGE_FILES = [
    "astronaut.png", "camera.png",
    # backgrounds
    "brick.png", "grass.png", "gravel.png", "coffee.png", "chelsea.png", "rocket.jpg",
    "motorcycle_left.png", "color.png", "logo.png", "hubble_deep_field.jpg",
]
MPII_MEMBER = "stacked_hourglass/res/mpii_annotations.json.gz"


def cache_path(*parts: str) -> str:
    return os.path.join(CACHE, *parts)


def _run(cmd, cwd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def fetch_opencv(dest: str) -> None:
    if all(os.path.exists(os.path.join(dest, f)) for f in OPENCV_FILES):
        return
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _run(["apt-get", "download", "opencv-doc"], tmp)
        deb = glob.glob(os.path.join(tmp, "opencv-doc_*.deb"))[0]
        _run(["dpkg-deb", "-x", deb, "x"], tmp)
        src = glob.glob(os.path.join(tmp, "x", "usr", "share", "doc", "opencv-doc", "examples", "data"))[0]
        for f in OPENCV_FILES:
            shutil.copy(os.path.join(src, f), os.path.join(dest, f))
        with open(os.path.join(dest, "SOURCE.txt"), "w") as fh:
            fh.write(f"Debian package {os.path.basename(deb)} (OpenCV sample data, BSD licence)\n")


def _pip_download(pkg: str, tmp: str) -> str:
    _run([sys.executable, "-m", "pip", "download", pkg, "--no-deps", "--only-binary=:all:", "-d", tmp], tmp)
    return glob.glob(os.path.join(tmp, "*.whl"))[0]


def fetch_skimage(dest: str) -> None:
    if all(os.path.exists(os.path.join(dest, f)) for f in SKIMAGE_FILES):
        return
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        whl = _pip_download("scikit-image", tmp)
        with zipfile.ZipFile(whl) as z:
            for f in SKIMAGE_FILES:
                with z.open("skimage/data/" + f) as src, open(os.path.join(dest, f), "wb") as dst:
                    shutil.copyfileobj(src, dst)
        with open(os.path.join(dest, "SOURCE.txt"), "w") as fh:
            fh.write(f"PyPI wheel {os.path.basename(whl)} (astronaut: NASA public domain; camera: CC0)\n")


def fetch_mpii(dest: str) -> None:
    out = os.path.join(dest, "mpii_annotations.json.gz")
    if os.path.exists(out):
        return
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        whl = _pip_download("pytorch-stacked-hourglass", tmp)
        with zipfile.ZipFile(whl) as z, z.open(MPII_MEMBER) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        with open(os.path.join(dest, "SOURCE.txt"), "w") as fh:
            fh.write(f"PyPI wheel {os.path.basename(whl)}, member {MPII_MEMBER}\n")


def mpii_annotations_path() -> str:
    return cache_path("mpii", "mpii_annotations.json.gz")


def fetch_all() -> None:
    fetch_opencv(cache_path("opencv"))
    fetch_skimage(cache_path("skimage"))
    fetch_mpii(cache_path("mpii"))


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    fetch_all()
    print("cache:", CACHE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
