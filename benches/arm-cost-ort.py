"""ONNX Runtime's side of benches/arm-cost: `session.run` FRAMES times on one thread.

usage: python3 arm-cost-ort.py MODEL.onnx FRAMES

Run under qemu-user with the instruction-counting plugin; the count of a 1-frame run is
subtracted from an N-frame run's, so loading and session creation cancel.
"""

import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    path, frames = sys.argv[1], int(sys.argv[2])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
    # A fixed, non-constant input: the same work every frame.
    x = (np.arange(np.prod(shape), dtype=np.float32) % 251 / 125.0 - 1.0).reshape(shape)
    for _ in range(frames):
        session.run(None, {spec.name: x})


if __name__ == "__main__":
    main()
