"""The ONNX Runtime baseline: the script alone, then through `hgpose bench --ort`, which must
print hgpose's inference time as a ratio to it, measured in the same run."""

import json
import os
import subprocess
import sys

import pytest

MODELS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(MODELS)
FIXTURE = os.path.join(MODELS, "fixtures", "hg_s1_f16_in128.onnx")


def test_script_times_the_model_on_onnxruntime():
    out = subprocess.run(
        [sys.executable, os.path.join(MODELS, "hourglass", "ort_bench.py"), "--model", FIXTURE,
         "--threads", "1", "--runs", "3", "--warmup", "1"],
        capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout)
    assert report["runtime"].startswith("onnxruntime")
    assert report["runs"] == 3 and report["threads"] == 1
    assert 0 < report["min_ms"] <= report["median_ms"] <= report["max_ms"]


def _hgpose_binary():
    for cand in (os.environ.get("HGPOSE_BIN"), os.path.join(REPO, "target", "release", "hgpose")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def test_hgpose_bench_reports_ratios_to_onnxruntime():
    binary = _hgpose_binary()
    if binary is None:
        pytest.skip("no hgpose binary (set HGPOSE_BIN or build target/release/hgpose)")
    env = dict(os.environ, HGPOSE_PYTHON=sys.executable, HGPOSE_LOG="warn")
    out = subprocess.run(
        [binary, "bench", "--model", FIXTURE, "--threads", "1,2", "--ort", "--runs", "3",
         "--warmup", "1", "--json"],
        capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [r["threads"] for r in report["runs"]] == [1, 2]
    assert [b["threads"] for b in report["onnxruntime"]] == [1, 2]
    for r in report["runs"]:
        assert r["gmacs"] > 0 and r["gmac_per_s"] > 0
    table = subprocess.run(
        [binary, "bench", "--model", FIXTURE, "--threads", "1", "--ort", "--runs", "2",
         "--warmup", "0"], capture_output=True, text=True, timeout=300, env=env)
    assert table.returncode == 0, table.stderr
    assert "ORT f32" in table.stdout and "vs ORT" in table.stdout, table.stdout
