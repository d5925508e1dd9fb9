"""One run's loop: train epoch by epoch, call the probes that are due, log, finish."""

from __future__ import annotations

import errno
import importlib
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Dataset
from ..errors import DiskFullError, DivergenceError
from ..files import check_writable
from ..learning.step import train_step
from .build import TrainingRun, build, default_run_dir
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .run_dir import RunDirectory
from .tracker import Tracker
from .wandb_tracker import wandb_tracker


def probe(run: TrainingRun, *, start: bool = False, iteration: int | None = None) -> dict[str, Any]:
    """What the probes due now measure (see :meth:`~binary_nn.run.probes.Probe.due`)."""
    metrics: dict[str, Any] = {}
    due = [p for p in run.probes if p.due(start=start, iteration=iteration)]
    if due:
        context = run.probe_context
        for p in due:
            metrics.update(p(context))
    return metrics


def train_epoch(
    training: TrainingRun, epoch: int, iteration: int, trackers: list[Tracker]
) -> tuple[int, float]:
    """One pass over the shuffled training set in full batches; returns (iteration, mean loss)."""
    cfg, ds = training.config, training.dataset
    n_batches = len(ds.y_train) // cfg.batchsize
    order = training.shuffle_rng.permutation(len(ds.y_train))
    for tracker in trackers:
        tracker.epoch_start(epoch, n_batches)
    loss_sum = 0.0
    for b in range(n_batches):
        index = order[b * cfg.batchsize : (b + 1) * cfg.batchsize]
        iteration += 1
        log_now = iteration % cfg.log_every == 0
        loss, stats = train_step(
            training.model,
            training.rule,
            training.optimizer,
            training.loss,
            # handed over, not kept: a streaming step frees it after the first block
            ds.scale(ds.x_train[index], training.model.dtype),
            ds.y_train[index],
            training.statistics if log_now else None,
        )
        if not np.isfinite(loss):
            raise DivergenceError(
                f"the loss became {loss} at epoch {epoch}, iteration {iteration} "
                f"(batch {b + 1} of the epoch); lower --lr or --init, or add --bn"
            )
        loss_sum += loss
        metrics = {"batch/loss": loss, **stats} if stats is not None else {}
        metrics.update(probe(training, iteration=iteration))
        if metrics:
            for tracker in trackers:
                tracker.log_batch(metrics, epoch, iteration)
    return iteration, loss_sum / max(n_batches, 1)


def run(
    config: TrainConfig,
    dataset: Dataset | None = None,
    trackers: list[Tracker] | None = None,
    skip_finished: bool = False,
) -> dict[str, Any]:
    """Train as ``config`` says and return the summary (also written to the run directory).

    Parameters
    ----------
    config : TrainConfig
        Validated here; a run directory is created (``config.out`` or ``runs/<time>-<name>``).
    dataset : Dataset, optional
        Use this instead of loading ``config.dataset``.
    trackers : list of Tracker, optional
        Extra destinations; the run directory, and W&B with ``config.wandb``, are added here.
    skip_finished : bool
        Raise :class:`~binary_nn.run.run_dir.RunFinished` instead of training when the run
        directory already holds a finished run (campaigns resume this way).
    """
    config = config.resolved()
    out = Path(config.out) if config.out else default_run_dir(config)
    # claimed before any work: a directory that holds a run, or that another run is writing,
    # is refused (or skipped) before the data are even loaded
    directory = RunDirectory(out, config.overwrite, skip_finished)
    try:
        if config.save:
            check_writable(config.save, "--save")
        training = build(config, dataset)
    except BaseException:
        directory.abandon()
        raise
    directory.open()
    trackers = [directory, *(trackers or [])]
    if config.wandb:
        wandb = wandb_tracker(f"{config.dataset} custom", config.name, out)
        if wandb is not None:
            trackers.append(wandb)
    info = {**training.info, "run_dir": str(out)}
    status = "running"  # stays so when interrupted: no summary.json, the run is incomplete
    summary: dict[str, Any] = {"seed": config.seed, "epochs_completed": 0}
    started = time.perf_counter()
    try:
        for tracker in trackers:
            tracker.start(config.to_dict(), info)
        for tracker in trackers:
            tracker.log_epoch(probe(training, start=True), 0, 0)
        iteration, best_test = 0, -np.inf
        for epoch in range(1, config.epochs + 1):
            t0 = time.perf_counter()
            rate = training.schedule.rate(epoch)
            training.optimizer.lr = rate
            iteration, mean_loss = train_epoch(training, epoch, iteration, trackers)
            t_train = time.perf_counter() - t0
            metrics = {"train/loss": mean_loss, "train/lr": rate, **probe(training)}
            metrics["time/epoch"] = time.perf_counter() - t0
            metrics["time/train"] = t_train
            for tracker in trackers:
                tracker.log_epoch(metrics, epoch, iteration)
            best_test = max(best_test, metrics.get("test/accuracy", -np.inf))
            summary = {
                **{k: v for k, v in metrics.items() if not k.startswith("hsic/")},
                "best/test/accuracy": best_test,
                "epoch": epoch,
                "iteration": iteration,
                "epochs_completed": epoch,
                "seed": config.seed,
            }
        status = "completed"
        if config.save:
            stored = {**config.to_dict(), "pixel_divisor": training.dataset.pixel_divisor}
            save_checkpoint(config.save, training.model, training.rule, stored, training.optimizer)
    except DivergenceError as exc:
        status = "diverged"
        summary["error"] = str(exc)
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFullError(
            f"the disk holding {out} is full ({exc.strerror}) after "
            f"{summary['epochs_completed']} epochs; free some space and run again: what was "
            "logged before stays in the run directory"
        ) from None
    finally:
        summary["status"] = status
        summary["time/total"] = time.perf_counter() - started
        for tracker in trackers:
            if status != "running":
                tracker.finish(summary)
            else:  # interrupted: no summary.json, the run is incomplete
                tracker.abort(summary)
    return summary


#: names this module had in release 0.1 and where they went, kept for one release
_MOVED = {
    "Experiment": ("binary_nn.run.build", "TrainingRun"),
    "build_network": ("binary_nn.run.architecture", "build_network"),
    "network_from_checkpoint": ("binary_nn.run.checkpoint", "network_from_checkpoint"),
    "check_fits_in_memory": ("binary_nn.run.build", "check_memory"),
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module, new = _MOVED[name]
        warnings.warn(
            f"binary_nn.run.loop.{name} is deprecated; use {module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
