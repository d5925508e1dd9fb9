"""The console tracker: a progress bar per epoch (on a terminal), one line per epoch with the
time left, hints when stuck; and the same lines in the run directory's ``log.txt``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm

from ..cli import silence_stdout
from ..learning.optim import default_rate
from .tracker import Tracker

LOG_FILE = "log.txt"


def _short(value: Any) -> str:
    return "null" if value is None else f"{value:.4g}"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Console(Tracker):
    """A progress bar per epoch and one line per epoch; ``verbose`` adds more.

    ``verbose`` 0: progress bar and epoch lines; 1: also the configuration and the HSIC
    values; 2: also every iteration's statistics.
    """

    def __init__(self, verbose: int = 0, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream: TextIO | None = stream if stream is not None else sys.stdout
        self._bar: tqdm | None = None
        self._run_dir = ""
        self._n_classes = 0
        self._hinted = False
        self._last_loss: float | None = None
        self._log: TextIO | None = None
        self._epochs = 0
        self._epoch_seconds: list[float] = []
        self._lr = 0.0

    def _print(self, text: str) -> None:
        if self._log is not None:
            try:
                self._log.write(text + "\n")
                self._log.flush()
            except OSError:  # a full disk: the console goes on
                self._log = None
        if self.stream is None:  # the reader went away (| head): training goes on silently
            return
        try:
            (self._bar.write if self._bar is not None else print)(text, file=self.stream)
            self.stream.flush()
        except BrokenPipeError:
            self.stream = None
            silence_stdout()

    def start(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        self._run_dir = str(info.get("run_dir", ""))
        self._n_classes = int(info.get("n_classes", 0))
        self._hinted = False
        self._last_loss = None
        self._epochs = int(config.get("epochs", 0))
        self._lr = float(config.get("lr") or 0.0)
        self._epoch_seconds = []
        if self._run_dir:
            try:  # appended to: a resumed run's log goes on
                self._log = open(Path(self._run_dir) / LOG_FILE, "a")
            except OSError:
                self._log = None
        self._print(f"run directory: {self._run_dir}")
        if info.get("resumed_at"):
            self._print(f"resumed after iteration {info['resumed_at']}")
        if self.verbose >= 1:
            self._print("configuration:")
            for key, value in {**config, **info}.items():
                self._print(f"  {key}: {value}")
        stored, packed = info["model_bytes"], info["model_bytes_packed"]
        self._print(
            f"model {info['architecture']}: {info['n_parameters']:,} parameters, "
            f"{stored / 1e6:.3f} MB in memory, {packed / 1e6:.3f} MB with binary weights packed"
        )
        if "lr" in config:
            default = default_rate(config.get("optimizer", "sgd"), config.get("bop_other", "adam"))
            given = config["lr"] != default or any(
                a.split("=")[0] == "--lr" for a in config.get("argv", [])
            )
            self._print(
                f"learning: {config.get('method')} with {config.get('optimizer')}, learning rate "
                f"{config['lr']:g}{'' if given else ' (its default)'}"
            )

    def epoch_start(self, epoch: int, n_iterations: int) -> None:
        self._bar = tqdm(
            total=n_iterations, desc=f"epoch {epoch}", leave=False, file=sys.stderr, disable=None
        )

    def log_batch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        if self._bar is not None and "batch/loss" in metrics:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{metrics['batch/loss']:.4f}", refresh=False)
        if self.verbose >= 2:
            stats = " ".join(f"{k.removeprefix('batch/')}={_short(v)}" for k, v in metrics.items())
            self._print(f"it {iteration}: {stats}")

    def log_epoch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if "train/accuracy" in metrics:
            parts = [f"epoch {epoch}: loss {metrics['train/loss']:.5f}"]
            for split in ("train", "val", "test"):  # a split with no examples has no scores
                if f"{split}/accuracy" in metrics:
                    parts.append(
                        f"{split} acc {metrics[f'{split}/accuracy']:.4f} "
                        f"f1 {metrics[f'{split}/f1']:.4f}"
                    )
            self._epoch_seconds.append(metrics["time/epoch"])
            eta = ""
            if self._epochs > epoch:
                mean = sum(self._epoch_seconds) / len(self._epoch_seconds)
                eta = f", {duration(mean * (self._epochs - epoch))} left"
            self._print("  ".join(parts) + f"  ({metrics['time/epoch']:.2f} s{eta})")
            self._hint_if_stuck(metrics)
        if self.verbose >= 1:
            for prefix in ("hsic/", "align/", "flip/"):
                values = {k: v for k, v in metrics.items() if k.startswith(prefix)}
                if values:
                    self._print("  " + " ".join(f"{k}={_short(v)}" for k, v in values.items()))

    def finish(self, summary: dict[str, Any]) -> None:
        self._close_bar()
        best = ""
        if summary.get("best/metric") == "val/accuracy":
            best = (
                f" (best on validation: epoch {summary['best/epoch']}, val acc "
                f"{summary['best/val/accuracy']:.4f}, test acc "
                f"{summary.get('best/test/accuracy', float('nan')):.4f})"
            )
        self._print(f"{summary.get('status', 'finished')}: run directory {self._run_dir}{best}")
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            try:
                self._log.close()
            except OSError:
                pass
            self._log = None

    def abort(self, summary: dict[str, Any]) -> None:
        self._close_bar()
        if self._run_dir:
            self._print(
                f"{summary.get('status', 'stopped')} after {summary.get('epochs_completed', 0)} "
                f"epochs: run directory {self._run_dir} keeps everything logged so far; "
                f"continue with python -m binary_nn.train --resume {self._run_dir}"
            )
        self._close_log()

    def _hint_if_stuck(self, metrics: dict[str, Any]) -> None:
        """One line when training is stuck at chance level with saturated outputs: accuracy
        near chance, a loss no better than every output at -1 (4 / classes) and flat since
        the previous epoch (the published --lr 0.001 does that to small nets)."""
        n, loss = self._n_classes, metrics["train/loss"]
        previous, self._last_loss = self._last_loss, loss
        if self._hinted or n < 2 or previous is None:
            return
        chance = metrics["train/accuracy"] < 2.5 / n
        flat = abs(previous - loss) < 0.01 * previous
        if chance and flat and loss >= 0.9 * 4 / n:
            self._hinted = True
            self._print(
                f"hint: training is stuck at chance level with saturated outputs (loss "
                f"{loss:.4f}) at --lr {self._lr:g}; the gradients are sums over the batch, so "
                f"the published runs use --lr 1e-6 .. 1e-4: try --lr {self._lr / 10:g}"
            )

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
