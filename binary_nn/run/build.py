"""One run's objects, built from a resolved configuration: ``TrainingRun`` and
``build``, and where its directory goes (``default_run_dir``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Dataset, load_dataset
from ..errors import ConfigError
from ..learning.cost import cost_summary
from ..learning.loss import LOSSES, Loss
from ..learning.optim import Optimizer, Schedule, make_optimizer
from ..learning.rules import RULES, LearningRule
from ..nn.kernels import KernelBackend, backend_kernels
from ..nn.network import Network
from ..version import __version__
from . import memory
from .alignment import Alignment
from .architecture import build_network
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .device_data import DeviceData
from .metrics import BatchStatistics
from .probes import BatchNormRecalibration, Probe, ProbeContext, default_probes


def _slug(text: str) -> str:
    """A run name as a directory name: safe characters, and short enough for any file
    system (a name is at most 255 bytes; the timestamp and a suffix take some)."""
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")
    return slug.encode()[:200].decode(errors="ignore")


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
class TrainingRun:
    """The objects one run is made of, built from a resolved config by ``build``."""

    config: TrainConfig
    dataset: Dataset
    model: Network
    rule: LearningRule
    optimizer: Optimizer
    shuffle_rng: np.random.Generator
    info: dict[str, Any] = field(default_factory=dict)
    loss: Loss = field(default_factory=lambda: LOSSES.get("mse"))
    statistics: BatchStatistics = field(default_factory=BatchStatistics)
    probes: list[Probe] = field(default_factory=default_probes)
    schedule: Schedule = field(default_factory=Schedule)
    #: the examples where the model computes (set from the dataset and the model)
    data: DeviceData = field(init=False)

    def __post_init__(self) -> None:
        self.data = DeviceData(self.dataset, self.model.kernels, self.model.dtype)

    @property
    def probe_context(self) -> ProbeContext:
        """What the probes may read of this run."""
        return ProbeContext(self.model, self.rule, self.loss, self.dataset, self.data)


#: the package each backend needs, as pip installs it
BACKEND_PACKAGES = {"torch": "torch (pip install 'binary-nn[torch]')", "cupy": "cupy (pip "
                    "install cupy-cuda12x, for CUDA 12)"}  # fmt: skip


def kernels_for(config: TrainConfig) -> KernelBackend:
    """The kernels of ``--backend`` on ``--device``; one sentence when they cannot be had."""
    backend = config.array_backend
    try:
        return backend_kernels(backend, config.device)
    except ImportError:
        raise ConfigError(
            f"--backend {backend} needs {BACKEND_PACKAGES[backend]}, which is not installed"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{exc}; run on --device cpu") from None


def make_optimizer_for(config: TrainConfig, model: Network) -> Optimizer:
    """The optimizer ``config`` names, over ``model``'s parameters (nothing is allocated
    before its first step)."""
    settings = config.optimizer_settings()
    return make_optimizer(config.optimizer, model.named_parameters(), settings, model.kernels)


def check_memory(config: TrainConfig, input_shape: tuple[int, ...], n_classes: int) -> None:
    """Refuse, before anything is allocated, a run this machine cannot hold."""
    shape_only = build_network(config, input_shape, n_classes, shape_only=True)
    state = make_optimizer_for(config, shape_only).state_size()
    memory.check_fits(memory.estimate(shape_only, config.batchsize, config.streaming, state))


def run_info(
    config: TrainConfig, dataset: Dataset, model: Network, optimizer: Optimizer
) -> dict[str, Any]:
    """Facts about the run stored beside its configuration (``config.json``)."""
    stored, packed = model.memory_bytes()
    return {
        "version": __version__,
        "backend": config.array_backend,
        "device": config.device,
        "algorithm": config.method,
        "weights": "binarised" if config.binarize else "continuous",
        "input_shape": list(dataset.input_shape),
        "architecture": model.describe(),
        "n_parameters": model.n_parameters(),
        "n_classes": dataset.n_classes,
        "n_features": dataset.n_features,
        "n_train": len(dataset.y_train),
        "n_test": len(dataset.y_test),
        "pixel_divisor": dataset.pixel_divisor,
        "model_bytes": stored,
        "model_bytes_packed": packed,
        "cost": cost_summary(model, optimizer.state_size()),
    }


def streams(config: TrainConfig) -> list[np.random.SeedSequence]:
    """The run's independent random streams: weights, feedback, shuffling, validation split."""
    return np.random.SeedSequence(config.seed).spawn(4)


def run_dataset(config: TrainConfig, dataset: Dataset | None = None) -> Dataset:
    """The data a run trains on: ``config.dataset`` (or ``dataset``) with its validation split
    held out (``--val-split``), drawn from the run's own stream."""
    dataset = dataset if dataset is not None else load_dataset(config.dataset, config.data_dir)
    if config.val_split > 0:
        seed = int(streams(config)[3].generate_state(1)[0])
        dataset = dataset.with_validation(config.val_split, seed)
    return dataset


def build(
    config: TrainConfig, dataset: Dataset | None = None, kernels: KernelBackend | None = None
) -> TrainingRun:
    """Model, rule and optimizer for ``config`` (resolved), drawn from its seed, computing with
    ``kernels`` (those of ``--backend`` and ``--device`` when not given: see
    ``kernels_for``).

    The seed is split into independent streams for the weights, the feedback matrices, the
    shuffling and the validation split, so the same seed gives every rule the same initial
    weights (and a validation split leaves the other streams as they were).
    """
    weights_seq, feedback_seq, shuffle_seq, _ = streams(config)
    dataset = run_dataset(config, dataset)
    n_train = len(dataset.y_train)
    if config.batchsize > n_train:
        raise ConfigError(
            f"-b/--batchsize {config.batchsize} is larger than the training set "
            f"({n_train} examples); choose at most {n_train}"
        )
    kernels = kernels if kernels is not None else kernels_for(config)
    if kernels.device is None:  # host memory; a GPU's is its library's to manage
        check_memory(config, dataset.input_shape, dataset.n_classes)
    rng = np.random.default_rng(weights_seq)
    model = build_network(config, dataset.input_shape, dataset.n_classes, rng, kernels=kernels)
    # a rule from a user's package may predate --feedback-positions: given only when set
    positions = {"feedback_positions": config.feedback_positions}
    rule = RULES.get(config.method)(
        model, np.random.default_rng(feedback_seq), streaming=config.streaming,
        feedback=config.feedback, **(positions if config.feedback_positions != "each" else {}),
    )  # fmt: skip
    if config.load:
        load_checkpoint(config.load, model, rule)
    optimizer = make_optimizer_for(config, model)
    probes = default_probes()
    if config.bn_recalibrate > 0:  # first: the evaluation and HSIC then use what it sets
        probes.insert(0, BatchNormRecalibration(config.bn_recalibrate, config.batchsize))
    if config.alignment_every != 0:
        probes.append(Alignment(config.alignment_examples, every=config.alignment_every or 0))
    return TrainingRun(
        config,
        dataset,
        model,
        rule,
        optimizer,
        np.random.default_rng(shuffle_seq),
        run_info(config, dataset, model, optimizer),
        loss=LOSSES.get(config.loss),
        probes=probes,
        schedule=config.schedule(),
    )
