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
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
import tomllib
from typing import Any, Dict, Optional

import numpy as np
import torch

from .net import StackedHourglass
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
              "out": "runs/default", "threads": 1, "deterministic": True},
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


def build_model(cfg) -> StackedHourglass:
    m = cfg["model"]
    return StackedHourglass(int(m["stacks"]), int(m["features"]), int(m["joints"]), int(m["input_size"]),
                            int(m["depth"]), int(m["modules"]))


def load_model_from_checkpoint(path: str):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ck["config"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck["config"]


def lr_at(step: int, cfg) -> float:
    t = cfg["train"]
    warm = int(t["warmup"])
    if step < warm:
        return t["lr"] * (step + 1) / warm
    total = max(int(t["steps"]), warm + 1)
    p = min(1.0, (step - warm) / (total - warm))
    return t["lr"] * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def save(path, model, opt, step, cfg, log, best):
    tmp = path + ".tmp"
    torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "config": cfg, "log": log, "best": best}, tmp)
    os.replace(tmp, path)


def train(cfg, resume: bool = False, quiet: bool = False) -> Dict[str, Any]:
    t = cfg["train"]
    torch.set_num_threads(int(t["threads"]))
    if t.get("deterministic", True):
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(int(t["seed"]))
    out = resolve(t["out"])
    os.makedirs(out, exist_ok=True)
    cache = resolve(cfg["data"]["cache_dir"])

    from .dataset import MixedDataset

    data = MixedDataset(cfg, cache)
    model = build_model(cfg)
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
    model.train()
    running = []
    while step < steps:
        if max_s > 0 and elapsed0 + time.time() - t0 >= max_s:
            print(f"time budget of {t['max_minutes']} min reached at step {step}", flush=True)
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        x, target, weight = data.batch(int(t["seed"]), step, bs)
        outs = model(x)
        loss = stack_loss(outs, target, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running.append([loss.item()] + [((o.detach() - target) ** 2 * weight[:, :, None, None]).mean().item() for o in outs])
        if step % int(t["log_every"]) == 0 or step == steps:
            r = np.mean(running, axis=0)
            running = []
            entry = {"step": step, "loss": float(r[0]), "stack_losses": [float(v) for v in r[1:]],
                     "lr": lr_at(step - 1, cfg), "elapsed_s": round(elapsed0 + time.time() - t0, 1)}
            log.append(entry)
            if not quiet:
                print(json.dumps(entry), flush=True)
        if eval_every > 0 and (step % eval_every == 0 or step == steps):
            from . import evaluate as ev

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
            key = next(iter(res))  # mpii_val, else the real held-out set, else synthetic
            if res[key]["PCKh@0.5"] > best:
                best = res[key]["PCKh@0.5"]
                save(os.path.join(out, "best.pt"), model, opt, step, cfg, log, best)
        if step % int(t["checkpoint_every"]) == 0:
            save(last, model, opt, step, cfg, log, best)
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
