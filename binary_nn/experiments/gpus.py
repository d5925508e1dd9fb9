"""Several runs on each GPU at once (``--runs-per-gpu N``): one small network leaves a large GPU
mostly idle, so a campaign or a sweep keeps N runs on every visible GPU.

Locally, each worker process is given one GPU for its life (``CUDA_VISIBLE_DEVICES``, set
before it imports torch or CuPy), N workers per GPU, and runs ``--device cuda`` there; on Ray,
each run asks for ``1/N`` of a GPU and Ray sets the same variable.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from ..run.config import TrainConfig

VISIBLE = "CUDA_VISIBLE_DEVICES"


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (its entries
    when set, else the numbers torch counts); none without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    listed = [g.strip() for g in os.environ.get(VISIBLE, "").split(",") if g.strip()]
    return listed[:count] if listed else [str(k) for k in range(count)]


@dataclass(frozen=True)
class GpuPlacement:
    """``runs_per_gpu`` runs at a time on each of ``gpus``."""

    runs_per_gpu: int
    gpus: tuple[str, ...]

    @property
    def processes(self) -> int:
        """Runs at a time in all."""
        return self.runs_per_gpu * len(self.gpus)

    def slots(self) -> list[str]:
        """One GPU per worker: each GPU ``runs_per_gpu`` times."""
        return [gpu for gpu in self.gpus for _ in range(self.runs_per_gpu)]


def gpu_placement(runs_per_gpu: int, gpus: list[str] | None = None) -> GpuPlacement | None:
    """The placement of ``--runs-per-gpu`` (None for 0: runs stay where their config says)."""
    if runs_per_gpu < 0:
        raise ConfigError(f"--runs-per-gpu must be >= 0, got {runs_per_gpu}")
    if runs_per_gpu == 0:
        return None
    gpus = visible_gpus() if gpus is None else gpus
    if not gpus:
        raise ConfigError(
            "--runs-per-gpu needs a CUDA GPU and torch, and torch sees none here; "
            "leave --runs-per-gpu out to run on the CPU"
        )
    return GpuPlacement(runs_per_gpu, tuple(gpus))


def on_gpu(config: TrainConfig) -> TrainConfig:
    """``config`` computing on the GPU its worker was given (``--device cuda``)."""
    if config.backend == "numpy":
        raise ConfigError("--runs-per-gpu runs on GPUs, but the runs ask for --backend numpy")
    return config if config.device.startswith("cuda") else replace(config, device="cuda")


def slot_queue(context: Any, placement: GpuPlacement | None) -> Any:
    """A queue of ``placement``'s GPU slots for a pool's workers (None without one)."""
    if placement is None:
        return None
    slots = context.Queue()
    for gpu in placement.slots():
        slots.put(gpu)
    return slots


def take_gpu(slots: Any = None) -> None:
    """A worker process's start: with ``slots`` (see ``slot_queue``), it takes one GPU
    for its life, before anything imports torch or CuPy."""
    if slots is not None:
        os.environ[VISIBLE] = slots.get()


def start_worker(slots: Any = None) -> None:
    """A campaign worker's start: Ctrl-C reaches the whole process group and the parent
    alone handles it (by terminating its workers); then ``take_gpu``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    take_gpu(slots)
