"""Write ONNX files that are valid ONNX but not pose networks, for hgpose's error-path tests.

Usage (from the repository root)::

    PYTHONPATH=models python -m hourglass.wrong_models models/fixtures

* ``classifier.onnx``: a 3x64x64 image in, ``logits`` ``[1, 10]`` out (no heatmaps).
"""

from __future__ import annotations

import argparse
import os

import onnx
from onnx import TensorProto, helper, numpy_helper
import numpy as np


def classifier() -> onnx.ModelProto:
    """Global average pool, flatten, then a 3 -> 10 linear layer."""
    weights = numpy_helper.from_array(np.linspace(-1, 1, 30, dtype=np.float32).reshape(3, 10), "w")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "classifier.onnx")
    onnx.save(classifier(), path)
    print(path)


if __name__ == "__main__":
    main()
