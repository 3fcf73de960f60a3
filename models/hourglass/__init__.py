"""Stacked Hourglass pose network (Newell et al. 2016): definition, complexity, ONNX export.

Modules:

* :mod:`hourglass.net`: the network (``Residual``, ``Hourglass``, ``StackedHourglass``);
* :mod:`hourglass.complexity`: parameter and MAC counts (``python -m hourglass.complexity``);
* :mod:`hourglass.export`: ONNX export + onnxruntime check (``python -m hourglass.export``);
* :mod:`hourglass.fixtures`: the Rust side's test fixtures (``python -m hourglass.fixtures``).
"""

from .net import Hourglass, Residual, StackedHourglass

__all__ = ["Hourglass", "Residual", "StackedHourglass"]
