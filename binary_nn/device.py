"""``python -m binary_nn.device CHECKPOINT.npz --records FILE``: the device learner in Python,
the reference the exported C library is checked against.

Runs a record stream exactly as the exported ``learn_example.c`` does (records of kind,
label and the image's raw uint8 pixels: kind 1 learns, 0 predicts and prints the class, 2
prints the state's hash, 3 the whole state) and prints the same lines; its numbers equal the
C code's bit for bit. ``python -m binary_nn.data records`` writes such a stream. The
checkpoint and the device-learning options must be those given to ``export --learn``::

    python -m binary_nn.device untrained.npz --records stream.bin > reference.txt
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import ArgumentParser, describe, run_cli
from .deploy.online import (
    OnlineLearner,
    OnlineSettings,
    add_settings_arguments,
    online_learner,
    settings_from_arguments,
)
from .errors import ConfigError
from .files import claim_output, write_text_atomic
from .learning.rules import RULES
from .run.checkpoint import load_checkpoint, network_from_checkpoint, pixel_divisor

PROG = "binary_nn.device"
#: the largest record stream read (a stream of 1e6 MNIST records is 786 MB)
MAX_RECORDS_BYTES = 2**31


def learner_from_checkpoint(path: str | Path, settings: OnlineSettings) -> OnlineLearner:
    """The device learner a checkpoint starts: its network, rule (``--method``, and
    ``--streaming`` for DRTP), latent weights and feedback matrices."""
    network, config = network_from_checkpoint(path)
    rule = RULES.get(config.method)(network, feedback=config.feedback)
    load_checkpoint(path, network, rule, flag="checkpoint")
    return online_learner(
        network, rule, RULES.canonical(config.method), settings, streaming=config.streaming,
        pixel_divisor=pixel_divisor(path, config),
    )  # fmt: skip


def read_records(path: str) -> bytes:
    """The bytes of a record stream, refused in one sentence when it cannot be one."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"--records: {path} is not a regular file (missing, a directory, a pipe or a "
            "device?); write a record stream with binary_nn.data records"
        )
    if file.stat().st_size > MAX_RECORDS_BYTES:
        raise ConfigError(f"--records: {path} is larger than 2 GiB; split the stream")
    return file.read_bytes()


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument("checkpoint", help="the checkpoint .npz given to export --learn")
    parser.add_argument("--records", required=True, help="a record stream (data records)")
    parser.add_argument("--out", help="write the printed lines to this file instead")
    add_settings_arguments(parser)

    def job() -> int:
        args = parser.parse_args(argv)
        if args.out:
            claim_output(args.out, "--out")
        records = read_records(args.records)  # checked before the network is built
        learner = learner_from_checkpoint(args.checkpoint, settings_from_arguments(args))
        lines = learner.run_records(records)
        text = "".join(line + "\n" for line in lines)
        if args.out:
            write_text_atomic(Path(args.out), text)
        else:
            sys.stdout.write(text)
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
