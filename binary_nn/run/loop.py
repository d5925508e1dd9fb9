"""One run's loop: train epoch by epoch, call the probes that are due, log, keep a checkpoint
to resume from, select the best epoch, finish.

A run writes its directory's ``checkpoint.npz`` at every epoch end (every ``--checkpoint-every``
iterations too, and when Ctrl-C or SIGTERM stops it between two steps): the network, the
feedback, the optimizer's state, the shuffle and its generator, the best epoch so far, the
probes' memory and how much of ``metrics.jsonl`` it covers. A run resumed from it
(``run`` with ``resume``) drops what was logged after it and goes on as the uninterrupted
run would: the same weights and the same metrics, bit for bit.
"""

from __future__ import annotations

import errno
import importlib
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cli import StopRequest
from ..data import Dataset
from ..errors import DiskFullError, DivergenceError
from ..files import check_writable, claim_output
from ..learning.step import train_step
from ..nn.layers import BatchNorm
from .build import TrainingRun, build, default_run_dir
from .checkpoint import BEST_CHECKPOINT, restore_run_state, save_checkpoint, save_run_state
from .config import TrainConfig
from .console import Console
from .progress import SELECT_ON_TEST, SELECT_ON_VALIDATION, Progress, Selection
from .run_dir import FINISHED, RunDirectory, finished_summary
from .tracker import TerminateRun, Tracker, as_tracker
from .wandb_tracker import wandb_tracker


def probe(run: TrainingRun, *, start: bool = False, iteration: int | None = None) -> dict[str, Any]:
    """What the probes due now measure (see ``due``)."""
    metrics: dict[str, Any] = {}
    due = [p for p in run.probes if p.due(start=start, iteration=iteration)]
    if due:
        context = run.probe_context
        for p in due:
            metrics.update(p(context))
    return metrics


def _batch_norms(training: TrainingRun) -> list[BatchNorm]:
    return [layer for layer in training.model.layers() if isinstance(layer, BatchNorm)]


class _Stopped(Exception):
    """A stop request was honoured at a step boundary (the checkpoint is written)."""


class Session:
    """One run in progress: its objects, directory, trackers and ``Progress``; the loop
    and what happens at its boundaries (checkpoints, selection, stops)."""

    def __init__(
        self,
        training: TrainingRun,
        directory: RunDirectory | None,
        trackers: list[Tracker],
        progress: Progress,
        stop: StopRequest | None = None,
    ) -> None:
        self.training = training
        self.config = training.config
        self.directory = directory
        self.trackers = trackers
        self.progress = progress
        self.stop = stop

    # --- state ------------------------------------------------------------------------------

    def stored_config(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "pixel_divisor": self.training.dataset.pixel_divisor}

    def checkpoint(self) -> None:
        """Write the run directory's checkpoint for where the run stands now."""
        if self.directory is None:
            return
        t = self.training
        self.progress.metrics_bytes = self.directory.metrics_bytes
        self.progress.metrics_digest = self.directory.metrics_digest
        self.progress.planned_epochs = self.config.epochs
        self.progress.shuffle_state = dict(t.shuffle_rng.bit_generator.state)
        self.progress.batchnorm_ready = [bn.running_initialised for bn in _batch_norms(t)]
        save_run_state(
            self.directory.checkpoint, t.model, t.rule, t.optimizer, self.stored_config(),
            self.progress, t.probes,
        )  # fmt: skip

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at ``path`` (a run built from the same config)."""
        t = self.training
        self.progress, record = restore_run_state(path, t.model, t.rule, t.optimizer, t.probes)
        batch_norms = _batch_norms(t)
        self.progress.check_against(
            len(t.dataset.y_train), self.config.batchsize, len(batch_norms), record
        )
        try:
            t.shuffle_rng.bit_generator.state = self.progress.shuffle_state
        except (TypeError, ValueError, KeyError) as exc:
            raise record.error(f"holds a shuffle state the generator refuses ({exc})") from None
        for bn, ready in zip(batch_norms, self.progress.batchnorm_ready, strict=False):
            bn.running_initialised = ready
        p = self.progress
        if p.stopped_early and not p.finished(self.config.epochs):
            # extended with a larger --epochs: early stopping's patience starts again
            p.stopped_early, p.selection.stale = False, 0

    def save_model(self, path: str, **marks: Any) -> None:
        t = self.training
        save_checkpoint(path, t.model, t.rule, {**self.stored_config(), **marks}, t.optimizer)

    # --- the loop ------------------------------------------------------------------------------

    def batches(self, epoch: int) -> float:
        """Train the rest of ``epoch``'s batches (all of them from its start); returns the
        epoch's mean loss."""
        t, cfg, p = self.training, self.config, self.progress
        ds = t.dataset
        n_batches = len(ds.y_train) // cfg.batchsize
        if p.batch == 0:  # a new epoch: its shuffle
            p.order, p.loss_sum = t.shuffle_rng.permutation(len(ds.y_train)), 0.0
        assert p.order is not None
        for tracker in self.trackers:
            tracker.epoch_start(epoch, n_batches)
        for b in range(p.batch, n_batches):
            index = p.order[b * cfg.batchsize : (b + 1) * cfg.batchsize]
            p.iteration += 1
            log_now = p.iteration % cfg.log_every == 0
            loss, stats = train_step(
                t.model,
                t.rule,
                t.optimizer,
                t.loss,
                # handed over, not kept: a streaming step frees it after the first block
                t.data.batch(index),
                t.data.batch_labels(index),
                t.statistics if log_now else None,
            )
            if not np.isfinite(loss):
                raise DivergenceError(
                    f"the loss became {loss} at epoch {epoch}, iteration {p.iteration} "
                    f"(batch {b + 1} of the epoch); lower --lr or --init, or add --bn"
                )
            p.loss_sum += loss
            p.batch = b + 1
            metrics = {"batch/loss": loss, **stats} if stats is not None else {}
            metrics.update(probe(t, iteration=p.iteration))
            if metrics:
                for tracker in self.trackers:
                    tracker.log_batch(metrics, epoch, p.iteration)
            if p.batch < n_batches:
                every = cfg.checkpoint_every
                if every and p.iteration % every == 0:
                    self.checkpoint()
                self.stop_if_asked()
        return p.loss_sum / max(n_batches, 1)

    def epoch(self, epoch: int) -> dict[str, Any]:
        """Train (the rest of) ``epoch``, measure, log, select, checkpoint."""
        t, p = self.training, self.progress
        started = time.perf_counter()
        rate = t.schedule.rate(epoch)
        t.optimizer.lr = rate
        mean_loss = self.batches(epoch)
        trained = time.perf_counter() - started
        metrics = {"train/loss": mean_loss, "train/lr": rate, **probe(t)}
        metrics["time/epoch"] = time.perf_counter() - started
        metrics["time/train"] = trained
        terminate = False
        for tracker in self.trackers:
            try:
                tracker.log_epoch(metrics, epoch, p.iteration)
            except TerminateRun:  # after this epoch's bookkeeping
                terminate = True
        p.epoch, p.batch, p.order = epoch, 0, None
        p.last_metrics = {k: v for k, v in metrics.items() if not k.startswith("hsic/")}
        if p.selection.update(epoch, metrics):
            for path in self.best_paths():
                self.save_model(str(path), best_epoch=epoch, best_metric=p.selection.metric)
        self.checkpoint()
        if terminate:
            raise TerminateRun
        return metrics

    def best_paths(self) -> list[Path]:
        """Where the best epoch's model goes: the run directory's ``best.npz`` when the run
        selects on a validation split, and ``--save-best``."""
        paths = [Path(self.config.save_best)] if self.config.save_best else []
        if self.directory is not None and self.progress.selection.metric == SELECT_ON_VALIDATION:
            paths.append(self.directory.path / BEST_CHECKPOINT)
        return paths

    def stop_if_asked(self) -> None:
        if self.stop is not None and self.stop.requested:
            self.checkpoint()
            raise _Stopped

    def summary(self, status: str) -> dict[str, Any]:
        p = self.progress
        return {
            **p.last_metrics,
            **p.selection.summary(),
            "epoch": p.epoch,
            "iteration": p.iteration,
            "epochs_completed": p.epoch,
            "seed": self.config.seed,
            "status": status,
        }


def train_epoch(
    training: TrainingRun, epoch: int, iteration: int, trackers: list[Tracker]
) -> tuple[int, float]:
    """One pass over the shuffled training set in full batches, outside any run directory
    (benchmarks, tests); returns (iteration, mean loss)."""
    session = Session(training, None, trackers, Progress(iteration=iteration))
    loss = session.batches(epoch)
    return session.progress.iteration, loss


def _selection(training: TrainingRun) -> Selection:
    has_val = len(training.dataset.labels("val")) > 0
    return Selection(SELECT_ON_VALIDATION if has_val else SELECT_ON_TEST)


def _disk_full(exc: OSError, directory: RunDirectory, epochs: int) -> OSError | DiskFullError:
    """A full disk (or quota) as one sentence saying how to go on; any other error as it is."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return exc
    out = directory.path
    again = (
        f"resume with python -m binary_nn.train --resume {out}"
        if directory.checkpoint.is_file()
        else "run it again"
    )
    return DiskFullError(
        f"the disk holding {exc.filename or out} is full ({exc.strerror}) after {epochs} "
        f"epochs; free some space and {again}: what was logged before stays"
    )


def run(
    config: TrainConfig,
    dataset: Dataset | None = None,
    trackers: list[Tracker] | None = None,
    skip_finished: bool = False,
    resume: bool = False,
    stop: StopRequest | None = None,
    callbacks: Sequence[Tracker | Callable[[int, dict[str, Any]], object]] = (),
    progress: bool = False,
) -> dict[str, Any]:
    """Train as ``config`` says and return the summary (also written to the run directory),
    with ``run_dir``: where the run is.

    Example::

        from binary_nn import TrainConfig, train_run  # this function

        history = []
        summary = train_run(
            TrainConfig(method="DFA", epochs=5, seed=1, val_split=0.1),
            callbacks=[lambda epoch, metrics: history.append(metrics.get("val/accuracy"))],
            progress=True,
        )
        print(summary["run_dir"], summary["best/test/accuracy"])

    Parameters
    ----------
    config : TrainConfig
        Validated here; a run directory is created (``config.out`` or ``runs/<time>-<name>``).
    dataset : Dataset, optional
        Use this instead of loading ``config.dataset``.
    trackers : list of Tracker, optional
        Extra destinations; the run directory, and W&B with ``config.wandb``, are added here.
    skip_finished : bool
        Raise ``RunFinished`` instead of training when the run
        directory already holds a finished run (campaigns resume this way).
    resume : bool
        Continue from the run directory's ``checkpoint.npz`` when it has one (made with the
        same configuration; ``epochs`` may be larger, to extend a finished run).
    callbacks : sequence of Tracker or callable
        Called as the run goes: a ``Tracker`` at each of its
        hooks, a function ``fn(epoch, metrics)`` at every epoch end (epoch 0: before
        training) with everything measured then (scores, the probes' measurements).
    progress : bool
        Print what the command line prints (a line per epoch, a bar on a terminal).
    stop : StopRequest, optional
        Checked between steps: when set, the run writes its checkpoint (and ``--save``,
        marked ``stopped``), records the status ``stopped`` and raises the request's
        exception (KeyboardInterrupt). Without it, Ctrl-C stops at once and the run resumes
        from its last checkpoint.
    """
    config = config.resolved()
    listeners = [as_tracker(c) for c in callbacks]  # checked before anything is claimed
    out = claim_output(config.out, "--out", "dir") if config.out else default_run_dir(config)
    # claimed before any work: a directory that holds a run, or that another run is writing,
    # is refused (or skipped) before the data are even loaded
    directory = RunDirectory(out, config.overwrite, skip_finished, resume)
    try:
        for path, flag in ((config.save, "--save"), (config.save_best, "--save-best")):
            if path:
                check_writable(path, flag)
        if not directory.resuming:  # first: a run stopped before it trains can start again
            directory.start(config.to_dict(), {"run_dir": str(out)})
        training = build(config, dataset)
        session = Session(training, directory, [], Progress(selection=_selection(training)), stop)
        if directory.resuming:
            session.restore(directory.checkpoint)
            done = finished_summary(out)
            if session.progress.finished(config.epochs) and done is not None:
                directory.close()  # nothing to do: nothing is written
                return {**done, "already_finished": True, "run_dir": str(out)}
            # (finished without its summary: stopped before the summary was written; the
            # loop below has nothing to train and writes it)
    except OSError as exc:
        directory.abandon()
        raise _disk_full(exc, directory, 0) from None
    except BaseException:
        directory.abandon()
        raise
    damaged = directory.open(session.progress.metrics_bytes, session.progress.metrics_digest)
    if damaged:
        print(f"warning: {damaged}", file=sys.stderr)
    console = [Console(config.verbose)] if progress else []
    session.trackers = [directory, *console, *(trackers or []), *listeners]
    if config.wandb:
        wandb = wandb_tracker(f"{config.dataset} custom", config.name, out)
        if wandb is not None:
            session.trackers.append(wandb)
    info = {**training.info, "run_dir": str(out), "resumed_at": session.progress.iteration}
    status = "running"  # until it finishes, stops, diverges or fails
    p = session.progress
    started = time.perf_counter() - p.seconds
    try:
        for tracker in session.trackers:
            tracker.start(config.to_dict(), info)
        if not directory.resuming:
            for tracker in session.trackers:
                tracker.log_epoch(probe(training, start=True), 0, 0)
        try:
            while not p.finished(config.epochs):
                p.seconds = time.perf_counter() - started
                session.epoch(p.epoch + 1)
                session.stop_if_asked()
                if config.early_stopping and p.selection.stale >= config.early_stopping:
                    p.stopped_early = True
                    session.checkpoint()  # a resume then knows there is nothing left to do
            final = "completed"
        except TerminateRun:  # a search's early termination, at an epoch end
            final = "terminated"
        if config.save:  # a run is complete once what it was asked to write is written
            session.save_model(config.save)
        status = final
    except _Stopped:
        status = "stopped"
        if config.save:
            session.save_model(config.save, stopped=True)
        assert stop is not None
        raise stop.exception() from None
    except DivergenceError as exc:
        status = "diverged"
        session.progress.last_metrics["error"] = str(exc)
        raise
    except OSError as exc:
        raise _disk_full(exc, directory, session.progress.epoch) from None
    except KeyboardInterrupt:
        status = "stopped"  # at once: the last checkpoint is where it resumes
        raise
    finally:
        status = "failed" if status == "running" else status
        summary = session.summary(status)
        summary["time/total"] = time.perf_counter() - started
        summary["run_dir"] = str(out)
        if config.early_stopping and status == "completed" and p.epoch < config.epochs:
            summary["stopped_early"] = True
        for tracker in session.trackers:
            if status in FINISHED:
                tracker.finish(summary)
            else:
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
