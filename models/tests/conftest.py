import os
import sys

import pytest
import torch

MODELS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if MODELS_DIR not in sys.path:
    sys.path.insert(0, MODELS_DIR)

FIXTURES_DIR = os.path.join(MODELS_DIR, "fixtures")

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def fixtures_dir() -> str:
    return FIXTURES_DIR
