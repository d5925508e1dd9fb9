"""Where a run's configuration and metrics go: its run directory, the console, Weights & Biases.

Every destination is a :class:`Tracker`; the trainer calls the same hooks on each of them.
The run directory is written as the run goes (``metrics.jsonl`` is appended and flushed line
by line, JSON documents are replaced atomically), so a killed run keeps every logged step.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm

from ..errors import BinaryNNError, ConfigError
from ..files import write_text_atomic

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)
FINISHED = ("completed", "diverged")
#: seconds W&B may take to start a run before the run goes on without it
INIT_TIMEOUT_S = 10


def _jsonable(value: Any) -> Any:
    """Floats that JSON cannot hold (NaN, inf) become strings; numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    write_text_atomic(path, json.dumps(_jsonable(data), indent=2) + "\n")


class Tracker:
    """Hooks a trainer calls; every one is optional."""

    def start(self, config: dict, info: dict) -> None:
        """The resolved configuration and facts about the model (size, parameters)."""

    def epoch_start(self, epoch: int, n_iterations: int) -> None:
        pass

    def log_batch(self, metrics: dict, epoch: int, iteration: int) -> None:
        pass

    def log_epoch(self, metrics: dict, epoch: int, iteration: int) -> None:
        """End-of-epoch metrics; epoch 0 holds what is measured before training."""

    def finish(self, summary: dict) -> None:
        pass

    def abort(self, summary: dict) -> None:
        """The run stopped before it finished (Ctrl-C, an error): no summary is written."""


class RunBusy(ConfigError):
    """Another process is writing the run directory."""


class RunFinished(BinaryNNError):
    """The run directory already holds a finished run (a campaign skips it)."""


def finished_summary(run_dir: Path) -> dict | None:
    """The run's summary if it finished, else None (never started, killed, or failed)."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("status") in FINISHED else None


class RunDirectory(Tracker):
    """``config.json``, ``metrics.jsonl`` (one object per logged step) and ``summary.json``.

    The directory is claimed before anything is written: an exclusive lock on its ``.lock``
    file for as long as the run writes (released by the system even if the process is
    killed), so that two writers never share it; a directory that already holds a run is
    refused unless ``overwrite`` (a finished one raises :class:`RunFinished` when
    ``skip_finished``, which campaigns use to resume).
    """

    def __init__(
        self, path: str | Path, overwrite: bool = False, skip_finished: bool = False
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} is a file; give a directory for the run")
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock: TextIO | None = open(self.path / LOCK_FILE, "a")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run directory {self.path} ({exc.strerror}); choose a "
                "writable --out"
            ) from None
        self._created = created
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._release()
            raise RunBusy(
                f"{self.path} is being written by another run; wait for it or choose another --out"
            ) from None
        held = [name for name in RUN_FILES if (self.path / name).exists()]
        if held and skip_finished and finished_summary(self.path) is not None:
            self._release()
            raise RunFinished(f"{self.path} holds a finished run")
        if held and not overwrite:
            self._release()
            raise ConfigError(
                f"--out {self.path} already holds a run ({', '.join(held)}); choose another "
                "directory, or pass --overwrite to replace it"
            )
        self._metrics: TextIO | None = None

    def open(self) -> None:
        """Start writing: the old summary goes, ``metrics.jsonl`` starts afresh."""
        (self.path / SUMMARY_FILE).unlink(missing_ok=True)
        self._metrics = open(self.path / METRICS_FILE, "w")

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the lock
            self._lock = None

    def abandon(self) -> None:
        """Give the directory back unused (the run failed before it started): a directory
        this run created is removed again."""
        self._release()
        if self._created:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            try:
                self.path.rmdir()
            except OSError:
                pass

    def start(self, config: dict, info: dict) -> None:
        write_json_atomic(self.path / CONFIG_FILE, {**config, **info})

    def _append(self, record: dict) -> None:
        assert self._metrics is not None, "open() the run directory first"
        self._metrics.write(json.dumps(_jsonable(record)) + "\n")
        self._metrics.flush()

    def log_batch(self, metrics: dict, epoch: int, iteration: int) -> None:
        self._append({"epoch": epoch, "iteration": iteration, **metrics})

    def log_epoch(self, metrics: dict, epoch: int, iteration: int) -> None:
        self._append({"epoch": epoch, "iteration": iteration, **metrics})
        assert self._metrics is not None
        os.fsync(self._metrics.fileno())

    def finish(self, summary: dict) -> None:
        self._close_metrics()
        write_json_atomic(self.path / SUMMARY_FILE, summary)
        self._release()

    def _close_metrics(self) -> None:
        if self._metrics is not None and not self._metrics.closed:
            try:
                self._metrics.close()
            except OSError:  # a full disk: what could be written is written
                pass

    def close(self) -> None:
        """Stop writing without a summary (an interrupted run) and give the directory up."""
        self._close_metrics()
        self._release()

    def abort(self, summary: dict) -> None:
        self.close()


def _short(value: Any) -> str:
    return "null" if value is None else f"{value:.4g}"


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

    def _print(self, text: str) -> None:
        if self.stream is None:  # the reader went away (| head): training goes on silently
            return
        try:
            (self._bar.write if self._bar is not None else print)(text, file=self.stream)
            self.stream.flush()
        except BrokenPipeError:
            self.stream = None
            silence_stdout()

    def start(self, config: dict, info: dict) -> None:
        self._run_dir = str(info.get("run_dir", ""))
        self._n_classes = int(info.get("n_classes", 0))
        self._hinted = False
        self._last_loss = None
        self._print(f"run directory: {self._run_dir}")
        if self.verbose >= 1:
            self._print("configuration:")
            for key, value in {**config, **info}.items():
                self._print(f"  {key}: {value}")
        stored, packed = info["model_bytes"], info["model_bytes_packed"]
        self._print(
            f"model {info['architecture']}: {info['n_parameters']:,} parameters, "
            f"{stored / 1e6:.3f} MB in memory, {packed / 1e6:.3f} MB with binary weights packed"
        )

    def epoch_start(self, epoch: int, n_iterations: int) -> None:
        self._bar = tqdm(
            total=n_iterations, desc=f"epoch {epoch}", leave=False, file=sys.stderr, disable=None
        )

    def log_batch(self, metrics: dict, epoch: int, iteration: int) -> None:
        if self._bar is not None and "batch/loss" in metrics:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{metrics['batch/loss']:.4f}", refresh=False)
        if self.verbose >= 2:
            stats = " ".join(f"{k.removeprefix('batch/')}={_short(v)}" for k, v in metrics.items())
            self._print(f"it {iteration}: {stats}")

    def log_epoch(self, metrics: dict, epoch: int, iteration: int) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if "train/accuracy" in metrics:
            parts = [f"epoch {epoch}: loss {metrics['train/loss']:.5f}"]
            for split in ("train", "test"):  # an empty test split has no test scores
                if f"{split}/accuracy" in metrics:
                    parts.append(
                        f"{split} acc {metrics[f'{split}/accuracy']:.4f} "
                        f"f1 {metrics[f'{split}/f1']:.4f}"
                    )
            self._print("  ".join(parts) + f"  ({metrics['time/epoch']:.2f} s)")
            self._hint_if_stuck(metrics)
        if self.verbose >= 1:
            for prefix in ("hsic/", "align/", "flip/"):
                values = {k: v for k, v in metrics.items() if k.startswith(prefix)}
                if values:
                    self._print("  " + " ".join(f"{k}={_short(v)}" for k, v in values.items()))

    def finish(self, summary: dict) -> None:
        self._close_bar()
        self._print(f"{summary.get('status', 'finished')}: run directory {self._run_dir}")

    def abort(self, summary: dict) -> None:
        self._close_bar()
        if self._run_dir:
            self._print(
                f"stopped after {summary.get('epochs_completed', 0)} epochs: run directory "
                f"{self._run_dir} keeps everything logged so far"
            )

    def _hint_if_stuck(self, metrics: dict) -> None:
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
                f"{loss:.4f}); the gradients are sums over the batch, so the published runs "
                "use --lr 1e-6 .. 1e-4: try --lr 1e-4"
            )

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone (``| head``), so that nothing
    written later, nor Python's flush at exit, raises ``BrokenPipeError``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to redirect
        pass
    finally:
        os.close(devnull)


class WandbTracker(Tracker):
    """Weights & Biases: project ``"{dataset} custom"`` unless ``WANDB_PROJECT`` says otherwise.

    W&B's own settings (``WANDB_MODE=offline``, ``WANDB_PROJECT``, ``WANDB_ENTITY``, ...) are
    honoured because ``wandb.init`` reads them itself.
    """

    def __init__(self, wandb_module: Any, project: str, name: str | None, directory: Path) -> None:
        self.wandb = wandb_module
        self.project = os.environ.get("WANDB_PROJECT", project)
        self.name = name
        self.directory = directory
        self.run = None
        self.class_names: list[str] = []

    def start(self, config: dict, info: dict) -> None:
        # W&B files go beside the run unless WANDB_DIR says where
        directory = None if os.environ.get("WANDB_DIR") else str(self.directory)
        try:
            self.run = self.wandb.init(
                project=self.project,
                name=self.name,
                config={**config, **info},
                dir=directory,
                # never wait long for an unreachable server: warn and go on (see below)
                settings=self.wandb.Settings(init_timeout=INIT_TIMEOUT_S),
            )
        except Exception as exc:  # no login, no network, a bad setting: keep training
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(
                f"warning: W&B could not start ({message}); run `wandb login` or set "
                f"WANDB_MODE=offline; this run is logged to its run directory only",
                file=sys.stderr,
            )
            self.run = None
        self.class_names = [str(c) for c in range(info["n_classes"])]

    def log_batch(self, metrics: dict, epoch: int, iteration: int) -> None:
        if self.run is not None:
            self.run.log({**metrics, "epoch": epoch}, step=iteration)

    def log_epoch(self, metrics: dict, epoch: int, iteration: int) -> None:
        if self.run is None:
            return
        data = {k: v for k, v in metrics.items() if k != "test/confusion_matrix"}
        matrix = metrics.get("test/confusion_matrix")
        if matrix is not None:
            table = self.wandb.Table(
                columns=["true", "predicted", "count"],
                data=[
                    [self.class_names[i], self.class_names[j], count]
                    for i, row in enumerate(matrix)
                    for j, count in enumerate(row)
                ],
            )
            data["test/confusion_matrix"] = table
        self.run.log({**data, "epoch": epoch}, step=iteration)

    def finish(self, summary: dict) -> None:
        if self.run is not None:
            for key, value in summary.items():
                if isinstance(value, (int, float, str)):
                    self.run.summary[key] = value
            self.run.finish(exit_code=0 if summary.get("status") == "completed" else 1)


def wandb_tracker(project: str, name: str | None, directory: Path) -> WandbTracker | None:
    """A :class:`WandbTracker`, or None with a one-sentence warning when wandb is missing."""
    try:
        import wandb
    except ImportError:
        print(
            "warning: --wandb needs the wandb package (pip install 'binary-nn[wandb]'); "
            "this run is logged to its run directory only",
            file=sys.stderr,
        )
        return None
    if not wandb_can_log():
        print(
            "warning: --wandb found no W&B login (run `wandb login`, set WANDB_API_KEY, or "
            "WANDB_MODE=offline); this run is logged to its run directory only",
            file=sys.stderr,
        )
        return None
    return WandbTracker(wandb, project, name, directory)


def wandb_can_log() -> bool:
    """Whether W&B can start without asking anything: offline or disabled mode, an API key
    in the environment, or a key stored by ``wandb login`` (in ~/.netrc)."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False
