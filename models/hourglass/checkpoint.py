"""A trained hourglass from its checkpoint: the network its config describes, with its weights.

Shared by training (which writes checkpoints), evaluation and release (which read them), so that
reading one does not need the training loop.
"""

from __future__ import annotations

import torch

from .net import StackedHourglass


def build_model(cfg) -> StackedHourglass:
    m = cfg["model"]
    return StackedHourglass(int(m["stacks"]), int(m["features"]), int(m["joints"]), int(m["input_size"]),
                            int(m["depth"]), int(m["modules"]))


def load_model_from_checkpoint(path: str):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ck["config"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck["config"]
