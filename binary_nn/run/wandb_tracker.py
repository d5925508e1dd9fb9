"""The Weights & Biases tracker, and whether W&B can log without asking anything."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .tracker import Tracker

#: seconds W&B may take to start a run before the run goes on without it
INIT_TIMEOUT_S = 10


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

    def start(self, config: dict[str, Any], info: dict[str, Any]) -> None:
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

    def log_batch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        if self.run is not None:
            self.run.log({**metrics, "epoch": epoch}, step=iteration)

    def log_epoch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
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

    def finish(self, summary: dict[str, Any]) -> None:
        if self.run is not None:
            for key, value in summary.items():
                if isinstance(value, (int, float, str)):
                    self.run.summary[key] = value
            self.run.finish(exit_code=0 if summary.get("status") == "completed" else 1)


def wandb_tracker(project: str, name: str | None, directory: Path) -> WandbTracker | None:
    """A ``WandbTracker``, or None with a one-sentence warning when wandb is missing."""
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
    except (OSError, ValueError, netrc.NetrcParseError):  # unreadable, not text, malformed
        return False
