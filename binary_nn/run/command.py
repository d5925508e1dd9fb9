"""The ``python -m binary_nn.train`` command line as a run: a configuration from the options,
or, with ``--resume RUN_DIR``, the run directory's own; with ``--load``, the model options
the command line leaves out are the checkpoint's."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import read_json
from ..options import options_of
from .checkpoint import RUN_CHECKPOINT, stored_config
from .config import TrainConfig, build_parser, given_options, resume_config
from .run_dir import CONFIG_FILE, finished_summary


def read_run_config(run_dir: str | Path) -> tuple[TrainConfig, bool]:
    """The configuration of the run in ``run_dir`` (its ``config.json``), and whether it has a
    checkpoint to continue from. A run stopped before its first checkpoint has none: it starts
    again from its beginning (nothing it computed is lost); a finished run without one (release
    0.1 kept none) is refused."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file" if run_dir.exists() else "does not exist"
        raise ConfigError(f"--resume {run_dir} {what}; give a run directory (train --out)")
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"--resume: {run_dir} holds no {CONFIG_FILE}: the run was stopped before it began; "
            "run its command again"
        )
    data = read_json(run_dir / CONFIG_FILE, "a run's config.json")
    has_checkpoint = (run_dir / RUN_CHECKPOINT).is_file()
    if not has_checkpoint and finished_summary(run_dir) is not None:
        raise ConfigError(
            f"--resume: {run_dir} holds a finished run without a {RUN_CHECKPOINT} (runs of "
            "release 0.1 kept none); start it again with --overwrite"
        )
    return TrainConfig.from_stored(data), has_checkpoint


def with_checkpoint_model(config: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    """``config`` with every model option not ``given`` taken from ``config.load``'s
    checkpoint, so that ``--load`` needs no architecture flag repeated."""
    assert config.load is not None
    stored = TrainConfig.from_stored(stored_config(config.load, "--load"))
    model = [name for name, opt in options_of(TrainConfig).items() if opt.group == "model"]
    return replace(config, **{name: getattr(stored, name) for name in model if name not in given})


def train_request(argv: Sequence[str] | None = None) -> tuple[TrainConfig, bool]:
    """The configuration a command line asks for, and whether it resumes a run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    resume = build_parser().parse_args(argv).resume
    given = given_options(argv)
    if resume:
        if "out" in given and Path(given["out"]).resolve() != Path(resume).resolve():
            raise ConfigError("--out cannot move a resumed run; leave it out with --resume")
        stored, has_checkpoint = read_run_config(resume)
        config = resume_config(stored, {**given, "out": str(resume)})
        if not has_checkpoint:
            print(
                f"{resume} was stopped before its first checkpoint: starting it again from "
                "its beginning"
            )
        return replace(config, argv=argv, overwrite=not has_checkpoint), has_checkpoint
    config = TrainConfig(**given, argv=argv)
    if config.load:
        config = with_checkpoint_model(config, given)
    return config, False
