"""``python -m binary_nn.export CHECKPOINT.npz --out DIR [--format npz|c|onnx]``: a trained
network, bit-packed for inference, or as a standard ONNX graph.

``npz`` writes ``DIR/model.npz`` (plain arrays, the architecture and a format version), which
``python -m binary_nn.predict`` and :mod:`binary_nn.inference` run; ``c`` writes ``DIR/model.h``
and ``DIR/model.c`` for a microcontroller (see :mod:`binary_nn.deploy.c_code`), and
``DIR/example.c``, a host program that reads raw pixels from stdin; ``onnx`` writes
``DIR/model.onnx`` (standard operators, float64, raw ``uint8`` pixels in; see
:mod:`binary_nn.deploy.onnx_graph`). Prints which layers run packed and the sizes.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from .cli import ArgumentParser, describe, run_cli
from .deploy.c_code import EXAMPLE, c_model
from .deploy.onnx_graph import OPSET, onnx_model, save_onnx
from .deploy.packed import pack_network
from .files import claim_output, write_text_atomic
from .run.checkpoint import network_from_checkpoint, pixel_divisor

PROG = "binary_nn.export"


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument("checkpoint", help="a checkpoint .npz written by train --save")
    parser.add_argument("--out", required=True, help="directory for the exported model")
    parser.add_argument("--format", default="npz", choices=("npz", "c", "onnx"))

    def job() -> int:
        args = parser.parse_args(argv)
        out = claim_output(args.out, "--out", "dir")
        network, config = network_from_checkpoint(args.checkpoint)
        if args.format == "onnx":
            model = onnx_model(network, pixel_divisor(args.checkpoint, config))
            out.mkdir(parents=True, exist_ok=True)
            size = save_onnx(model, out / "model.onnx")
            print(
                f"wrote {out / 'model.onnx'}: {size:,} bytes, {len(model.graph.node)} standard "
                f"operators (opset {OPSET}), float64, input uint8 pixels "
                f"{('N', *network.input_shape)}, outputs scores and classes"
            )
            return 0
        model = pack_network(network, pixel_divisor(args.checkpoint, config))
        model.source = {"checkpoint": str(args.checkpoint), "architecture": network.describe()}
        float32_bytes = 4 * sum(
            math.prod(b.weight_layer.weight.value.shape) for b in network.blocks
        )
        out.mkdir(parents=True, exist_ok=True)
        for k, conv in enumerate(model.convs):
            print(f"convolution {k}: {conv.describe()}")
        for k, layer in enumerate(model.layers):
            print(f"layer {k}: {layer.describe()}")
        if args.format == "npz":
            path = out / "model.npz"
            model.save(path)
            size = path.stat().st_size
            print(
                f"wrote {path}: {size:,} bytes, 1/{float32_bytes / size:.1f} of the float32 "
                f"weights ({float32_bytes:,} bytes)"
            )
        else:
            code = c_model(model)
            write_text_atomic(out / "model.h", code.header)
            write_text_atomic(out / "model.c", code.source)
            write_text_atomic(out / "example.c", EXAMPLE)
            kind = "integers only" if code.integer_only else "float output sums"
            print(
                f"wrote {out / 'model.h'}, {out / 'model.c'} ({kind}) and an example host "
                f"program {out / 'example.c'}: flash (constant "
                f"data) {code.flash_bytes:,} bytes, RAM (activation buffers) {code.ram_bytes:,} "
                "bytes"
            )
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
