"""Times an ONNX model on ONNX Runtime (CPU), as the baseline `hgpose bench --ort` prints ratios
against. Same model file, same input shape, same thread count; inference only (session.run), so
it compares with hgpose's inference stage.

    python -m hourglass.ort_bench --model M.onnx --threads 2 --runs 20 --warmup 3

Prints one JSON object: cold start (session creation), median, min, p90, max in ms.
"""

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    start = time.perf_counter()
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    cold_ms = (time.perf_counter() - start) * 1e3

    inputs = {}
    rng = np.random.default_rng(0)
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        dtype = np.float16 if "float16" in spec.type else np.float32
        inputs[spec.name] = rng.random(shape, dtype=np.float32).astype(dtype)
    for _ in range(args.warmup):
        session.run(None, inputs)
    times = []
    for _ in range(max(args.runs, 1)):
        t = time.perf_counter()
        session.run(None, inputs)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()

    def q(p: float) -> float:
        return times[min(len(times) - 1, round(p * (len(times) - 1)))]

    print(
        json.dumps(
            {
                "runtime": f"onnxruntime {ort.__version__}",
                "threads": args.threads,
                "cold_start_ms": cold_ms,
                "median_ms": q(0.5),
                "min_ms": q(0.0),
                "p90_ms": q(0.9),
                "max_ms": q(1.0),
                "runs": len(times),
            }
        )
    )


if __name__ == "__main__":
    main()
