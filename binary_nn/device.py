"""``python -m binary_nn.device EXPORT_DIR --records FILE``: the device learner in Python,
the reference the exported C library is checked against.

Runs a record stream exactly as the exported ``learn_example.c`` does (records of kind,
label and the image's raw uint8 pixels: kind 1 learns, 0 predicts and prints the class, 2
prints the state's hash, 3 the whole state) and prints the same lines; its numbers equal the
C code's bit for bit. ``python -m binary_nn.data records`` writes such a stream. Given the
directory ``export --learn`` wrote, it learns from the same checkpoint with the same options
(its ``learner.json``, the checkpoint's sha256 checked); given a checkpoint, with the options
on the command line::

    python -m binary_nn.device device/ --records stream.bin > reference.txt
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .cli import ArgumentParser, describe, run_cli
from .data.remote import sha256_of
from .deploy.online import (
    OnlineLearner,
    OnlineSettings,
    add_settings_arguments,
    online_learner,
    settings_from_arguments,
    settings_from_mapping,
)
from .errors import ConfigError
from .files import claim_output, read_json_object, write_text_atomic
from .learning.rules import RULES
from .run.checkpoint import load_checkpoint, network_from_checkpoint, pixel_divisor

PROG = "binary_nn.device"
#: what export --learn writes beside the C: the checkpoint and the options it was made from
LEARNER_FILE = "learner.json"
LEARNER_FORMAT = "binary_nn.device-learner"
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


def learner_record(checkpoint: str | Path, settings: OnlineSettings) -> dict[str, Any]:
    """What ``learner.json`` holds: the checkpoint (its path and sha256) and the options."""
    path = Path(checkpoint).resolve()
    return {
        "format": LEARNER_FORMAT, "checkpoint": str(path),
        "checkpoint_sha256": sha256_of(path), "settings": asdict(settings),
    }  # fmt: skip


def learner_from_export(directory: Path, args: Any) -> OnlineLearner:
    """The learner an export directory was written for: its checkpoint, checked unchanged,
    and its options (one given on the command line must agree)."""
    where = directory / LEARNER_FILE
    record = read_json_object(where)
    if record is None or record.get("format") != LEARNER_FORMAT:
        raise ConfigError(
            f"{directory} holds no readable {LEARNER_FILE}: give the directory export --format c "
            "--learn wrote, or a checkpoint"
        )
    checkpoint = Path(str(record.get("checkpoint", "")))
    if not checkpoint.is_file():
        raise ConfigError(
            f"{where} names {checkpoint}, which is gone: export again from a checkpoint"
        )
    if sha256_of(checkpoint) != record.get("checkpoint_sha256"):
        raise ConfigError(
            f"{checkpoint} has changed since {directory} was exported from it: export again"
        )
    base = settings_from_mapping(record.get("settings"), str(where))
    return learner_from_checkpoint(checkpoint, settings_from_arguments(args, base, str(directory)))


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
    parser.add_argument(
        "source", help="the directory export --format c --learn wrote, or a checkpoint .npz"
    )
    parser.add_argument("--records", required=True, help="a record stream (data records)")
    parser.add_argument("--out", help="write the printed lines to this file instead")
    add_settings_arguments(parser)

    def job() -> int:
        args = parser.parse_args(argv)
        if args.out:
            claim_output(args.out, "--out")
        records = read_records(args.records)  # checked before the network is built
        if Path(args.source).is_dir():
            learner = learner_from_export(Path(args.source), args)
        else:
            learner = learner_from_checkpoint(args.source, settings_from_arguments(args))
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
