"""``python -m binary_nn.export CHECKPOINT.npz --out DIR [--format npz|c|onnx]``: a trained
network, bit-packed for inference, or as a standard ONNX graph.

``npz`` writes ``DIR/model.npz`` (plain arrays, the architecture and a format version), which
``python -m binary_nn.predict`` and ``binary_nn.inference`` run; ``c`` writes ``DIR/model.h``
and ``DIR/model.c`` for a microcontroller (see ``binary_nn.deploy.c_code``), and
``DIR/example.c``, a host program that reads raw pixels from stdin; ``onnx`` writes
``DIR/model.onnx`` (standard operators, float64, raw ``uint8`` pixels in; see
``binary_nn.deploy.onnx_graph``). Prints which layers run packed and the sizes.

``--format c --learn`` also writes the device learner (``binary_nn.deploy.c_learn``):
``bnn_learn.h``, ``bnn_learn.c`` and ``bnn_learn_model.{h,c}`` (``bnn_learn_predict`` and
``bnn_learn``: the checkpoint's rule, one example per step, integers only), the host program
``learn_example.c`` and, in ``mcu/``, a Cortex-M4F harness; ``python -m binary_nn.device``
runs the same learning in Python. Start a device from scratch with ``train --epochs 0
--save``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import ArgumentParser, describe, run_cli
from .deploy.c_code import EXAMPLE, c_model
from .deploy.c_learn import device_memory, learn_sources
from .deploy.c_residual import has_residual_stages, residual_c_model
from .deploy.online import add_settings_arguments, settings_from_arguments
from .deploy.onnx_graph import OPSET, onnx_model, save_onnx
from .deploy.packed import pack_network
from .device import LEARNER_FILE, learner_from_checkpoint, learner_record
from .errors import ConfigError
from .files import claim_output, write_json_atomic, write_text_atomic
from .run.checkpoint import network_from_checkpoint, pixel_divisor

PROG = "binary_nn.export"


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument("checkpoint", help="a checkpoint .npz written by train --save")
    parser.add_argument("--out", required=True, help="directory for the exported model")
    parser.add_argument("--format", default="npz", choices=("npz", "c", "onnx"))
    parser.add_argument(
        "--learn", action="store_true",
        help="with --format c: also the learning step for a microcontroller (the device learner)",
    )  # fmt: skip
    add_settings_arguments(parser)

    def job() -> int:
        args = parser.parse_args(argv)
        if args.learn and args.format != "c":
            raise ConfigError("--learn writes C: give it with --format c")
        settings = settings_from_arguments(args)
        out = claim_output(args.out, "--out", "dir")
        learner = learner_from_checkpoint(args.checkpoint, settings) if args.learn else None
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
        float32_bytes = 4 * sum(layer.weight.size for layer in network.weight_layers())
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
            code = residual_c_model(model) if has_residual_stages(model) else c_model(model)
            write_text_atomic(out / "model.h", code.header)
            write_text_atomic(out / "model.c", code.source)
            write_text_atomic(out / "example.c", EXAMPLE)
            kind = (
                "integers only"
                if code.integer_only
                else "a float64 stream between residual units"
                if has_residual_stages(model)
                else "float output sums"
            )
            print(
                f"wrote {out / 'model.h'}, {out / 'model.c'} ({kind}) and an example host "
                f"program {out / 'example.c'}: flash (constant "
                f"data) {code.flash_bytes:,} bytes, RAM (activation buffers) {code.ram_bytes:,} "
                "bytes"
            )
        if learner is not None:
            for name, text in learn_sources(learner).items():
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(out / name, text)
            write_json_atomic(out / LEARNER_FILE, learner_record(args.checkpoint, settings))
            parts = device_memory(learner)
            method = learner.method + (" (streaming)" if learner.streaming else "")
            print(
                f"wrote the device learner ({method}) to {out}: bnn_learn.[ch], "
                "bnn_learn_model.[ch], learn_example.c, mcu/, learner.json; RAM "
                f"{sum(parts.values()):,} bytes before the stack:"
            )
            for part, size in parts.items():
                print(f"  {part:<44} {size:>9,}")
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
