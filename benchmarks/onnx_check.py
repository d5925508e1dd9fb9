"""The ONNX export against the float64 network it was exported from: on every test image of the
checkpoint's dataset, how many predictions differ and the largest difference of the scores;
prints a table::

    python benchmarks/onnx_check.py CHECKPOINT.npz [...] --data-dir DATA

Needs ``onnx`` and ``onnxruntime``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from timing import machine_header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    import onnxruntime as ort

    from binary_nn import load_network, predict_classes, run_dataset
    from binary_nn.deploy.onnx_graph import onnx_model, save_onnx
    from binary_nn.run.checkpoint import pixel_divisor

    print(machine_header())
    print("| checkpoint | network | test images | predictions that differ | largest score "
          "difference | model bytes | runtime images/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for checkpoint in args.checkpoints:
        network, config = load_network(checkpoint)
        data = run_dataset(replace(config, data_dir=args.data_dir or config.data_dir))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            size = save_onnx(onnx_model(network, pixel_divisor(checkpoint, config)), path)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        started = time.perf_counter()
        scores, classes = session.run(None, {"pixels": data.x_test})
        seconds = time.perf_counter() - started
        ours = predict_classes(network, data, "test")
        chunks = [network.forward(data.scale(data.x_test[i : i + 1000], np.float64), train=False)
                  for i in range(0, len(data.x_test), 1000)]  # fmt: skip
        difference = float(np.abs(scores - np.concatenate(chunks)).max())
        print(f"| {checkpoint} | {network.describe()} | {len(classes):,} | "
              f"{int((classes != ours).sum())} | {difference:.1e} | {size:,} | "
              f"{len(classes) / seconds:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
