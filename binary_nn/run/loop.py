"""One run: build network, rule and optimizer from a config, train, probe, report."""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..data import DATASETS, Dataset, load_dataset
from ..errors import ConfigError, DiskFullError, DivergenceError
from ..files import check_writable
from ..learning.cost import cost_summary
from ..learning.loss import LOSSES, MSELoss
from ..learning.optim import SGD
from ..learning.rules import RULES, LearningRule
from ..learning.step import train_step
from ..nn.network import Network, classifier
from .alignment import Alignment
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .metrics import BatchStatistics
from .probes import BatchNormRecalibration, Probe, default_probes
from .run_dir import RunDirectory
from .tracker import Tracker
from .wandb_tracker import wandb_tracker


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")


def default_run_dir(config: TrainConfig, root: str | Path = "runs") -> Path:
    """``runs/<timestamp>-<name>``, made unique with a numeric suffix."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{_slug(config.name or config.auto_name)}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


@dataclass
class Experiment:
    """The objects one run is made of, built from a resolved config by :func:`build`."""

    config: TrainConfig
    dataset: Dataset
    model: Network
    rule: LearningRule
    optimizer: SGD
    shuffle_rng: np.random.Generator
    info: dict = field(default_factory=dict)
    loss: MSELoss = field(default_factory=lambda: LOSSES.get("mse"))
    statistics: BatchStatistics = field(default_factory=BatchStatistics)
    probes: list[Probe] = field(default_factory=default_probes)


def build_network(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    n_classes: int,
    rng: np.random.Generator | None = None,
) -> Network:
    """The network the model flags of ``config`` describe, for examples of ``input_shape``."""
    return classifier(
        input_shape,
        config.hidden,
        n_classes,
        conv=config.conv,
        hidden_activation=config.hidden_act,
        last_activation=config.last_act,
        batch_norm=config.bn,
        scale=config.sn,
        binarize=config.binarize,
        binarize_last=config.binarize_last,
        weight_ste=config.weight_ste,
        init=config.init,
        dtype=np.dtype(config.dtype),
        rng=rng,
    )


def check_fits_in_memory(config: TrainConfig, n_inputs: int, n_classes: int) -> None:
    """Refuse, before allocating anything, a model this machine cannot hold: weights,
    gradients, the optimizer's scratch and the binarized copies (4 arrays of each; the dense
    layers, whose weights dominate)."""
    if config.conv:
        return  # a convolution's weights are small; its dense layers take a smaller input
    sizes = [n_inputs, *config.hidden, n_classes]
    n_weights = sum(a * b for a, b in itertools.pairwise(sizes))
    needed = 4 * n_weights * np.dtype(config.dtype).itemsize
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no estimate
        return
    if needed > available:
        raise ConfigError(
            f"the model needs about {needed / 1e9:.1f} GB ({n_weights:,} weights, with their "
            f"gradients and the optimizer's scratch) but this machine has "
            f"{available / 1e9:.1f} GB; choose a smaller --hidden"
        )


def network_from_checkpoint(
    path: str | Path, dtype: str = "float64"
) -> tuple[Network, TrainConfig]:
    """The network a checkpoint (``--save``) holds, rebuilt from its own configuration, in
    ``dtype``; it takes the images of its registered dataset, or vectors of the first layer's
    input size."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            saved = json.loads(str(archive["config"]))
            first, last = archive["linear.0.weight"].shape, archive.files
            n_blocks = sum(key.startswith("linear.") for key in last)
            n_classes = archive[f"linear.{n_blocks - 1}.weight"].shape[1]
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(
            f"{path} is not a checkpoint written by --save (a corrupt or truncated file? {exc})"
        ) from None
    config = replace(TrainConfig.from_dict(saved), dtype=dtype, load=None).resolved()
    shape: tuple[int, ...] = (first[0],)
    if config.dataset in DATASETS:  # a registered dataset: its images' shape
        registered = DATASETS.get(config.dataset).input_shape
        shape = registered if math.prod(registered) == first[0] else shape
    network = build_network(config, shape, int(n_classes))
    load_checkpoint(path, network, RULES.get(config.method)(network))
    return network, config


def build(config: TrainConfig, dataset: Dataset | None = None) -> Experiment:
    """Model, rule and optimizer for ``config`` (resolved), drawn from its seed.

    The seed is split into independent streams for the weights, the feedback matrices and the
    shuffling, so the same seed gives every rule the same initial weights.
    """
    dataset = dataset if dataset is not None else load_dataset(config.dataset, config.data_dir)
    n_train = len(dataset.y_train)
    if config.batchsize > n_train:
        raise ConfigError(
            f"-b/--batchsize {config.batchsize} is larger than the training set "
            f"({n_train} examples); choose at most {n_train}"
        )
    check_fits_in_memory(config, dataset.n_features, dataset.n_classes)
    weights_seq, feedback_seq, shuffle_seq = np.random.SeedSequence(config.seed).spawn(3)
    model = build_network(
        config, dataset.input_shape, dataset.n_classes, np.random.default_rng(weights_seq)
    )
    rule = RULES.get(config.method)(
        model, np.random.default_rng(feedback_seq), streaming=config.streaming
    )
    if config.load:
        load_checkpoint(config.load, model, rule)
    stored, packed = model.memory_bytes()
    info = {
        "version": __version__,
        "algorithm": config.method,
        "weights": "binarised" if config.binarize else "continuous",
        "input_shape": list(dataset.input_shape),
        "architecture": model.describe(),
        "n_parameters": model.n_parameters(),
        "n_classes": dataset.n_classes,
        "n_features": dataset.n_features,
        "n_train": n_train,
        "n_test": len(dataset.y_test),
        "model_bytes": stored,
        "model_bytes_packed": packed,
        "cost": cost_summary(model),
    }
    optimizer = SGD(model.parameters(), config.lr, config.weight_clipping)
    probes = default_probes()
    if config.bn_recalibrate > 0:  # first: the evaluation and HSIC then use what it sets
        probes.insert(0, BatchNormRecalibration(config.bn_recalibrate))
    if config.alignment_every != 0:
        probes.append(Alignment(config.alignment_examples, every=config.alignment_every or 0))
    return Experiment(
        config,
        dataset,
        model,
        rule,
        optimizer,
        np.random.default_rng(shuffle_seq),
        info,
        probes=probes,
    )


def probe(exp: Experiment, *, start: bool = False, iteration: int | None = None) -> dict:
    """What the probes due now measure: the ``at_start`` ones before training (``start``),
    those due every N iterations at ``iteration``, the epoch-end ones otherwise."""
    metrics: dict = {}
    for p in exp.probes:
        if start:
            due = p.at_start
        elif iteration is not None:
            due = p.every > 0 and iteration % p.every == 0
        else:
            due = p.every == 0
        if due:
            metrics.update(p(exp))
    return metrics


def train_epoch(
    exp: Experiment, epoch: int, iteration: int, trackers: list[Tracker]
) -> tuple[int, float]:
    """One pass over the shuffled training set in full batches; returns (iteration, mean loss)."""
    cfg, ds = exp.config, exp.dataset
    n_batches = len(ds.y_train) // cfg.batchsize
    order = exp.shuffle_rng.permutation(len(ds.y_train))
    for tracker in trackers:
        tracker.epoch_start(epoch, n_batches)
    loss_sum = 0.0
    for b in range(n_batches):
        index = order[b * cfg.batchsize : (b + 1) * cfg.batchsize]
        iteration += 1
        log_now = iteration % cfg.log_every == 0
        loss, stats = train_step(
            exp.model,
            exp.rule,
            exp.optimizer,
            exp.loss,
            # handed over, not kept: a streaming step frees it after the first block
            ds.scale(ds.x_train[index], exp.model.dtype),
            ds.y_train[index],
            exp.statistics if log_now else None,
        )
        if not np.isfinite(loss):
            raise DivergenceError(
                f"the loss became {loss} at epoch {epoch}, iteration {iteration} "
                f"(batch {b + 1} of the epoch); lower --lr or --init, or add --bn"
            )
        loss_sum += loss
        metrics = {"batch/loss": loss, **stats} if stats is not None else {}
        metrics.update(probe(exp, iteration=iteration))
        if metrics:
            for tracker in trackers:
                tracker.log_batch(metrics, epoch, iteration)
    return iteration, loss_sum / max(n_batches, 1)


def run(
    config: TrainConfig,
    dataset: Dataset | None = None,
    trackers: list[Tracker] | None = None,
    skip_finished: bool = False,
) -> dict:
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
        exp = build(config, dataset)
    except BaseException:
        directory.abandon()
        raise
    directory.open()
    trackers = [directory, *(trackers or [])]
    if config.wandb:
        wandb = wandb_tracker(f"{config.dataset} custom", config.name, out)
        if wandb is not None:
            trackers.append(wandb)
    info = {**exp.info, "run_dir": str(out)}
    status = "running"  # stays so when interrupted: no summary.json, the run is incomplete
    summary: dict = {"seed": config.seed, "epochs_completed": 0}
    started = time.perf_counter()
    try:
        for tracker in trackers:
            tracker.start(config.to_dict(), info)
        for tracker in trackers:
            tracker.log_epoch(probe(exp, start=True), 0, 0)
        iteration, best_test = 0, -np.inf
        for epoch in range(1, config.epochs + 1):
            t0 = time.perf_counter()
            iteration, mean_loss = train_epoch(exp, epoch, iteration, trackers)
            t_train = time.perf_counter() - t0
            metrics = {"train/loss": mean_loss, **probe(exp)}
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
            save_checkpoint(config.save, exp.model, exp.rule, config.to_dict())
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
