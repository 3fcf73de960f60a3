"""Train a Stacked Hourglass from scratch (CPU is fine), with intermediate supervision.

CLI (from the repository root or models/)::

    python -m hourglass.train --config models/hourglass/configs/default.toml
    python -m hourglass.train --config ... --resume            # continue from <out>/last.pt
    python -m hourglass.train --config ... --set train.steps=100 --set model.stacks=2

Loss: the mean squared error between each stack's heatmaps and Gaussian targets (sigma 1 at
64x64, scaled with the output size), weighted per joint, summed over EVERY stack.
Checkpoints: ``<out>/last.pt`` every ``train.checkpoint_every`` steps and at the end (model,
optimiser, schedule, step, config, log), ``<out>/best.pt`` by held-out real PCKh when
evaluation runs. Seeded: weights from ``train.seed``, each batch from ``(seed, step)``, so a
resumed run continues with the same batches; with ``torch.use_deterministic_algorithms`` on CPU.

Hardware: ``train.device`` is ``cpu``, ``cuda`` or ``auto``. ``train.workers`` > 0 builds the
batches ahead in that many spawned processes (a GPU step is far quicker than drawing and warping
its samples on one core); the batches are the same ``(seed, step)`` ones, in order.
``train.steps = 0`` with ``train.max_minutes`` set plans the step count from the speed measured
over the second half of the warm-up (at least 50 steps), so the cosine schedule ends when the
time does; the planned count is printed
and stored in the checkpoint's config, so ``--steps N`` repeats that schedule anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import sys
import time
import tomllib
from collections import deque
from typing import Any, Dict, Optional

import numpy as np
import torch

from .checkpoint import build_model, load_model_from_checkpoint  # noqa: F401 (re-exported)
from .targets import stack_loss

MODELS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULTS: Dict[str, Dict[str, Any]] = {
    "model": {"stacks": 2, "features": 64, "joints": 16, "input_size": 256, "depth": 4, "modules": 1},
    "data": {"real_weight": 0.5, "synth_weight": 0.5, "mpii_weight": 0.0, "real_npz": "real_EfficientPoseII.npz",
             "min_teacher_confidence": 0.3, "photo_boost": 20.0, "poses": "mpii", "backgrounds": True,
             "mpii_images": "", "mpii_annotations": "", "cache_dir": "data/cache"},
    "augment": {},
    "train": {"seed": 0, "batch_size": 16, "steps": 3000, "max_minutes": 0.0, "lr": 1e-3, "warmup": 100,
              "weight_decay": 0.0, "checkpoint_every": 100, "eval_every": 500, "log_every": 10,
              "out": "runs/default", "threads": 1, "deterministic": True, "device": "cpu", "workers": 0},
}


def merged_config(path: Optional[str], overrides=()) -> Dict[str, Dict[str, Any]]:
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        with open(path, "rb") as f:
            user = tomllib.load(f)
        for sec, vals in user.items():
            cfg.setdefault(sec, {}).update(vals)
    for item in overrides:
        key, _, val = item.partition("=")
        sec, _, name = key.partition(".")
        if not name:
            raise ValueError(f"--set wants section.key=value, got {item!r}")
        try:
            parsed = tomllib.loads(f"v = {val}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = val
        cfg.setdefault(sec, {})[name] = parsed
    return cfg


def resolve(path: str) -> str:
    """Relative paths in configs are relative to models/."""
    return path if os.path.isabs(path) else os.path.join(MODELS_DIR, path)


def lr_at(step: int, cfg) -> float:
    t = cfg["train"]
    warm = int(t["warmup"])
    if step < warm:
        return t["lr"] * (step + 1) / warm
    if int(t["steps"]) <= 0:  # still planning the step count (see the module doc): hold the peak
        return t["lr"]
    total = max(int(t["steps"]), warm + 1)
    p = min(1.0, (step - warm) / (total - warm))
    return t["lr"] * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"train.device = {name!r}, but PyTorch sees no GPU: set train.device to \"cpu\" or \"auto\"")
    return torch.device(name)


_POOL_DATA = None  # each batch worker's own dataset


def _init_worker(cfg, cache_dir: str):
    global _POOL_DATA
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    from .dataset import MixedDataset

    _POOL_DATA = MixedDataset(cfg, cache_dir)


def _pool_batch(seed: int, step: int, batch_size: int):
    x, t, w = _POOL_DATA.batch(seed, step, batch_size)
    # float16 halves what crosses the pipe; the inputs are 8-bit pixels and the targets smooth
    return x.numpy().astype(np.float16), t.numpy().astype(np.float16), w.numpy()


class BatchFeed:
    """The batches of successive steps, built ahead by a process pool (or in-process).

    The workers are spawned, not forked: a fork of a process that holds OpenCV's or CUDA's
    threads can hang. Each loads its own copy of the dataset (a few seconds)."""

    def __init__(self, data, cfg, cache_dir: str, batch_size: int, workers: int):
        self.data, self.seed, self.bs = data, int(cfg["train"]["seed"]), batch_size
        self.pending: deque = deque()
        self.next_step = None
        self.pool = None
        if workers > 0:
            ctx = multiprocessing.get_context("spawn")
            self.pool = ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, cache_dir))
            self.ahead = 2 * workers

    def get(self, step: int, last: int):
        """The batch of ``step``; queues steps up to ``last`` (exclusive) ahead of it."""
        if self.pool is None:
            return self.data.batch(self.seed, step, self.bs)
        if self.next_step is None:
            self.next_step = step
        while len(self.pending) < self.ahead and self.next_step < last:
            self.pending.append(self.pool.apply_async(_pool_batch, (self.seed, self.next_step, self.bs)))
            self.next_step += 1
        x, t, w = self.pending.popleft().get()
        return torch.from_numpy(x).float(), torch.from_numpy(t).float(), torch.from_numpy(w)

    def close(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def save(path, model, opt, step, cfg, log, best):
    tmp = path + ".tmp"
    torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "config": cfg, "log": log, "best": best}, tmp)
    os.replace(tmp, path)


def train(cfg, resume: bool = False, quiet: bool = False) -> Dict[str, Any]:
    t = cfg["train"]
    torch.set_num_threads(int(t["threads"]))
    device = pick_device(str(t.get("device", "cpu")))
    if device.type == "cpu" and t.get("deterministic", True):
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(int(t["seed"]))
    out = resolve(t["out"])
    os.makedirs(out, exist_ok=True)
    cache = resolve(cfg["data"]["cache_dir"])

    from .dataset import MixedDataset

    # built here even when workers build their own: a bad data config fails at once, here, and
    # not in a worker's initializer, where the pool would restart it without end
    data = MixedDataset(cfg, cache)
    model = build_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))
    step, log, best = 0, [], -1.0
    last = os.path.join(out, "last.pt")
    if resume and os.path.exists(last):
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        step, log, best = int(ck["step"]), ck.get("log", []), float(ck.get("best", -1.0))
        print(f"resumed from {last} at step {step}", flush=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    evalsets = None
    eval_every = int(t["eval_every"])
    t0 = time.time()
    elapsed0 = log[-1]["elapsed_s"] if log else 0.0
    max_s = float(t["max_minutes"]) * 60.0
    steps = int(t["steps"])
    bs = int(t["batch_size"])
    plan_at = None
    if steps <= 0:
        if max_s <= 0:
            raise SystemExit("train.steps = 0 plans the steps from train.max_minutes, which is not set")
        plan_at = step + max(int(t["warmup"]), 50)
        steps = 1 << 40
    # the speed for the plan is measured over the second half of the steps before `plan_at`,
    # from `mark` (step, time) on, after start-up costs
    mark = None
    mark_at = (step + plan_at) // 2 if plan_at is not None else None
    feed = BatchFeed(data, cfg, cache, bs, int(t.get("workers", 0)))
    model.train()
    running = []
    eval_s = 0.0
    while step < steps:
        if max_s > 0 and elapsed0 + time.time() - t0 >= max_s:
            print(f"time budget of {t['max_minutes']} min reached at step {step}", flush=True)
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        x, target, weight = (v.to(device, non_blocking=True) for v in feed.get(step, plan_at or steps))
        outs = model(x)
        loss = stack_loss(outs, target, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with torch.no_grad():  # kept on the device: one transfer per log line, not per step
            running.append(torch.stack([loss] + [((o - target) ** 2 * weight[:, :, None, None]).mean() for o in outs]))
        if step == mark_at:
            mark = (step, time.time() - eval_s)
        if plan_at is not None and step == plan_at:
            spent = elapsed0 + time.time() - t0
            rate = (step - mark[0]) / max(1e-6, time.time() - eval_s - mark[1])
            steps = step + int(0.93 * rate * (max_s - spent))  # evaluations and saving take the rest
            cfg["train"]["steps"] = steps
            plan_at = None
            print(f"planned {steps} steps: {rate:.1f} steps/s over steps {mark[0]}-{step}, "
                  f"{max_s - spent:.0f} s left", flush=True)
        if step % int(t["log_every"]) == 0 or step == steps:
            r = torch.stack(running).mean(0).cpu().numpy()
            running = []
            entry = {"step": step, "loss": float(r[0]), "stack_losses": [float(v) for v in r[1:]],
                     "lr": lr_at(step - 1, cfg), "elapsed_s": round(elapsed0 + time.time() - t0, 1)}
            log.append(entry)
            if not quiet:
                print(json.dumps(entry), flush=True)
        if eval_every > 0 and (step % eval_every == 0 or step == steps):
            from . import evaluate as ev

            e0 = time.time()
            if evalsets is None:
                evalsets = ev.evaluation_sets(int(cfg["model"]["input_size"]), cache)
                if float(cfg["data"].get("mpii_weight", 0)) > 0:
                    evalsets = {"mpii_val": ev.mpii_val_set(int(cfg["model"]["input_size"]), cfg["data"]["mpii_images"],
                                                            cfg["data"].get("mpii_annotations")), **evalsets}
            res = {k: ev.score(ev.torch_predictor(model), x_, g_) for k, (x_, g_) in evalsets.items()}
            model.train()
            summary = {k: {"PCKh@0.5": v["PCKh@0.5"], "PCK@0.2": v["PCK@0.2"]} for k, v in res.items()}
            log.append({"step": step, "eval": summary, "elapsed_s": round(elapsed0 + time.time() - t0, 1)})
            print(json.dumps(log[-1]), flush=True)
            eval_s += time.time() - e0
            key = next(iter(res))  # mpii_val, else the real held-out set, else synthetic
            if res[key]["PCKh@0.5"] > best:
                best = res[key]["PCKh@0.5"]
                save(os.path.join(out, "best.pt"), model, opt, step, cfg, log, best)
        if step % int(t["checkpoint_every"]) == 0:
            save(last, model, opt, step, cfg, log, best)
    feed.close()
    save(last, model, opt, step, cfg, log, best)
    print(f"done: step {step}, {elapsed0 + time.time() - t0:.0f}s; checkpoint {last}", flush=True)
    return {"step": step, "log": log, "model": model, "out": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="TOML config (sections model, data, augment, train)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config value (TOML syntax for the value)")
    ap.add_argument("--out", help="output folder (train.out)")
    ap.add_argument("--steps", type=int, help="train.steps")
    ap.add_argument("--minutes", type=float, help="train.max_minutes (0: no time limit)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if present")
    ap.add_argument("--fetch", action="store_true", help="download the data sources first")
    a = ap.parse_args(argv)
    cfg = merged_config(a.config, a.set)
    if a.out:
        cfg["train"]["out"] = a.out
    if a.steps is not None:
        cfg["train"]["steps"] = a.steps
    if a.minutes is not None:
        cfg["train"]["max_minutes"] = a.minutes
    if a.fetch:
        from .data.fetch import fetch_all

        fetch_all()
    train(cfg, resume=a.resume)
    return 0


if __name__ == "__main__":
    if os.path.dirname(os.path.dirname(os.path.abspath(__file__))) not in sys.path:
        sys.path.insert(0, MODELS_DIR)
    raise SystemExit(main())
