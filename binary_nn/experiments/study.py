"""Random, Bayesian and early-terminated searches of a W&B sweep file, run offline by Optuna.

W&B's sweep semantics, and what runs them here (Optuna's samplers and pruners):

- ``method: grid`` with ``early_terminate``: every point of the grid, in an order drawn from
  the seed (``optuna.samplers.GridSampler``); a plain grid runs as a campaign instead;
- ``method: random``: each parameter drawn independently (``RandomSampler``);
- ``method: bayes``: W&B fits a Gaussian process; here a tree-structured Parzen estimator
  (``TPESampler``) models the metric from the finished runs — the same idea (propose where
  the model expects the best), another model;
- ``run_cap``: how many runs in all (random and bayes need it here: W&B's agents run until
  stopped);
- ``early_terminate: {type: hyperband, min_iter, eta}``: W&B stops a run at the brackets
  ``min_iter * eta^k`` epochs when its metric is below the brackets' quantile of the runs seen
  there: one set of brackets, asynchronous successive halving, which is what Optuna's
  ``SuccessiveHalvingPruner`` does (a run goes past a bracket when it is in the best
  ``1/eta`` of the runs that reached it). (Optuna's ``HyperbandPruner`` would add brackets
  that start later, spending more epochs than W&B's.) A stopped run is ``terminated``: its
  directory, metrics and checkpoint stay.

Each run reports its metric at every epoch end. The study lives in ``OUT/search.db`` (SQLite):
a search killed and started again continues, redoing no finished run (an unfinished one
resumes from its checkpoint); two searches on one directory share it, and a point's run
directory is claimed by one process at a time, so no point runs twice. Decisions are drawn
from ``--seed`` and the trial number, so a sequential search makes the same ones again.
"""

from __future__ import annotations

import fcntl
import math
import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import BinaryNNError, ConfigError, DiskFullError, DivergenceError
from ..run.config import config_from_args
from ..run.run_dir import RunBusy, RunFinished, being_written, finished_summary
from ..run.tracker import TerminateRun, Tracker
from .gpus import gpu_placement, slot_queue, take_gpu
from .points import point_args, point_name

STUDY_FILE = "search.db"
STUDY_NAME = "search"


#: a trial's user attribute: failed because its search was killed, and queued again
REQUEUED = "requeued"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "method random or bayes, or early_terminate, needs optuna: "
            "pip install 'binary-nn[search]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass(frozen=True)
class SearchSpec:
    """What a search worker needs (picklable: it crosses to worker processes and Ray)."""

    sweep_path: str
    out: str
    seed: int
    extra_args: tuple[str, ...]
    drop_wandb: bool


@dataclass
class TrialOutcome:
    name: str
    run_dir: Path
    status: str  # completed, terminated, diverged, failed
    value: float | None
    params: dict[str, Any]
    epochs: int = 0


def storage_url(out: Path) -> str:
    return f"sqlite:///{(out / STUDY_FILE).resolve()}"


def sampler(sweep: Any, seed: int) -> Any:
    optuna = _optuna()
    if sweep.method == "grid":
        grid = {name: list(p.values) for name, p in sweep.space.items() if not p.fixed}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if sweep.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def pruner(sweep: Any, epochs: int) -> Any:
    optuna = _optuna()
    if sweep.early_terminate is None:
        return optuna.pruners.NopPruner()
    early = sweep.early_terminate
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=early["min_iter"], reduction_factor=int(early["eta"])
    )


def trial_cap(sweep: Any) -> int:
    """How many runs the search makes: the grid's size, or ``run_cap``."""
    if sweep.method == "grid":
        grid = math.prod(len(p.values) for p in sweep.space.values())
        return min(grid, sweep.run_cap or grid)
    if sweep.run_cap is None:
        raise ConfigError(
            f"{sweep.path}: method {sweep.method} needs a 'run_cap' here (W&B's agents run "
            "until stopped)"
        )
    return int(sweep.run_cap)


def point_of(sweep: Any, params: dict[str, Any]) -> tuple[str, list[str]]:
    """A trial's run directory name and its ``train`` arguments."""
    point = {**sweep.fixed_point, **params}
    shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in point.items()}
    return point_name(shown, sweep.varying), point_args(point)


class Reporter(Tracker):
    """Reports the sweep's metric to the trial at each epoch end; stops the run when the
    pruner says so."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def log_epoch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        value = metrics.get(self.metric)
        if epoch > 0 and isinstance(value, (int, float)) and math.isfinite(value):
            self.trial.report(float(value), epoch)
            if self.trial.should_prune():
                raise TerminateRun


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    with open(out / ".search.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def open_study(sweep: Any, out: Path, seed: int, epochs: int) -> Any:
    optuna = _optuna()
    direction = "maximize" if sweep.goal == "maximize" else "minimize"
    try:
        return optuna.create_study(
            study_name=STUDY_NAME,
            storage=storage_url(out),
            load_if_exists=True,
            direction=direction,
            sampler=sampler(sweep, seed),
            pruner=pruner(sweep, epochs),
        )
    except Exception as exc:  # sqlalchemy's and Optuna's errors, as one sentence
        raise storage_error(exc, out) from None


def storage_error(exc: Exception, out: Path) -> Exception:
    """A failure of the study database as a sentence: a full disk (exit code 4) or a database
    that cannot be used; anything else unchanged."""
    text = str(exc).lower()
    if "disk is full" in text or "no space left" in text:
        return DiskFullError(
            f"the disk holding {out / STUDY_FILE} is full; free some space and run the search "
            "again: the runs it finished are kept"
        )
    if type(exc).__module__.split(".")[0] in ("sqlalchemy", "optuna", "sqlite3"):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ConfigError(
            f"the study database {out / STUDY_FILE} cannot be used ({reason}); remove it or "
            "give the search another --out"
        )
    return exc


def requeue_abandoned(study: Any, out: Path) -> int:
    """Trials left running by a search that was killed: failed, and their points queued
    again (their runs resume from their checkpoints). A trial whose run another live
    search writes is left alone."""
    optuna = _optuna()
    requeued = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        run_dir = trial.user_attrs.get("run_dir")
        if run_dir and being_written(Path(run_dir)):
            continue
        # marked, so that the cap counts its requeued copy and not this one
        study._storage.set_trial_user_attr(trial._trial_id, REQUEUED, True)
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
        requeued += 1
    return requeued


def _counted(study: Any) -> int:
    """The runs the cap counts: finished, terminated, running, and failed (a run that failed,
    diverged or never logged the metric is a run spent: counting it keeps a search whose
    every run fails from asking for points forever), but not a trial a killed search left
    and that was queued again."""
    optuna = _optuna()
    states = optuna.trial.TrialState
    done = (states.COMPLETE, states.PRUNED, states.RUNNING, states.FAIL)
    return sum(
        not t.user_attrs.get(REQUEUED) for t in study.get_trials(deepcopy=False, states=done)
    )


def search_worker(spec: SearchSpec) -> list[TrialOutcome]:
    """Ask the study for points and run them until the search has its runs."""
    from ..cli import deferred_stop
    from ..run.loop import run
    from .sweep_file import load_sweep

    optuna = _optuna()
    sweep, out = load_sweep(spec.sweep_path), Path(spec.out)
    fixed = [a for a in sweep.fixed_args if not (spec.drop_wandb and a == "--wandb")]
    epochs = _epochs(sweep, fixed, spec.extra_args)
    cap = trial_cap(sweep)
    outcomes = []
    while True:
        with _locked(out):
            study = open_study(sweep, out, spec.seed, epochs)
            if _counted(study) >= cap:
                break
            # the decision of trial n depends on the seed, n and the finished runs only (a
            # grid's order is the seed's: its points are numbered in that order)
            offset = 0 if sweep.method == "grid" else len(study.trials)
            study.sampler = sampler(sweep, spec.seed + offset)
            trial = study.ask()
            params = {p.name: p.suggest(trial) for p in sweep.space.values() if not p.fixed}
            name, args = point_of(sweep, params)
            run_dir = out / name
            trial.set_user_attr("name", name)
            trial.set_user_attr("run_dir", str(run_dir))
        config = config_from_args([*fixed, *args, *spec.extra_args]).resolved()
        config = replace(config, out=str(run_dir), overwrite=True)
        status, value, summary = "failed", None, {}
        try:
            with deferred_stop() as stop:
                reporter = Reporter(trial, sweep.metric)
                summary = run(config, trackers=[reporter], skip_finished=True, resume=True,
                              stop=stop)  # fmt: skip
            status = summary["status"]
        except RunFinished:
            summary = finished_summary(run_dir) or {}
            status = summary.get("status", "completed")
        except RunBusy:
            status = "running elsewhere"
        except DivergenceError:
            status = "diverged"
        except BinaryNNError as exc:
            print(f"{name}: failed: {exc}", file=sys.stderr)
        metric = summary.get(sweep.metric)
        value = float(metric) if isinstance(metric, (int, float)) else None
        states = optuna.trial.TrialState
        if status == "completed" and value is not None and math.isfinite(value):
            _tell(study, trial, value)
        elif status == "terminated":
            _tell(study, trial, state=states.PRUNED)
        else:
            _tell(study, trial, state=states.FAIL)
        outcome = TrialOutcome(
            name, run_dir, status, value, params, int(summary.get("epochs_completed", 0))
        )
        outcomes.append(outcome)
        shown = "" if value is None else f", {sweep.metric} {value:.4f}"
        print(f"[{_counted(study)}/{cap}] {name}: {status} after {outcome.epochs} epochs{shown}",
              flush=True)  # fmt: skip
    return outcomes


def _tell(study: Any, trial: Any, value: float | None = None, **state: Any) -> None:
    """``study.tell``; a grid sampler asks the study to stop once its grid is done, which only
    an optimize loop may do (the trial is stored all the same: Optuna does it last)."""
    try:
        study.tell(trial, value, **state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _epochs(sweep: Any, fixed: Sequence[str], extra: Sequence[str]) -> int:
    """The runs' epochs (the pruner's largest resource): a swept epochs' largest value, else
    the fixed one."""
    epochs = sweep.space.get("epochs")
    if epochs is not None and epochs.values:
        return int(max(epochs.values))
    return config_from_args([*fixed, *extra]).resolved().epochs


def run_search(
    sweep: Any,
    out: Path,
    *,
    processes: int = 1,
    executor: str = "local",
    address: str | None = None,
    seed: int = 0,
    extra_args: Sequence[str] = (),
    drop_wandb: bool = False,
    runs_per_gpu: int = 0,
) -> list[TrialOutcome]:
    """Run the search with ``processes`` workers here, or on Ray; returns the runs of this
    invocation (the study on disk has every one). ``runs_per_gpu`` N > 0: every run on a GPU,
    N at a time on each (see ``gpus``)."""
    gpus = None
    if runs_per_gpu and executor != "ray":
        gpus = gpu_placement(runs_per_gpu)
        assert gpus is not None
        processes = gpus.processes
    if runs_per_gpu:
        extra_args = [*extra_args, "--device", "cuda"]
    spec = SearchSpec(str(sweep.path), str(out), seed, tuple(extra_args), drop_wandb)
    out.mkdir(parents=True, exist_ok=True)
    fixed = [a for a in sweep.fixed_args if not (drop_wandb and a == "--wandb")]
    with _locked(out):
        study = open_study(sweep, out, seed, _epochs(sweep, fixed, extra_args))
        requeued = requeue_abandoned(study, out)
    if requeued:
        print(f"{requeued} run(s) of an interrupted search continue from their checkpoints")
    if executor == "ray":
        return _on_ray(spec, processes, address, 1 / runs_per_gpu if runs_per_gpu else 0.0)
    if processes == 1 and gpus is None:
        return search_worker(spec)
    context = multiprocessing.get_context("spawn")
    slots = slot_queue(context, gpus)  # each worker takes one GPU for its life
    with context.Pool(processes, initializer=take_gpu, initargs=(slots,)) as pool:
        return [o for outcomes in pool.map(search_worker, [spec] * processes) for o in outcomes]


def _on_ray(
    spec: SearchSpec, workers: int, address: str | None, gpus_per_run: float = 0.0
) -> list[TrialOutcome]:
    from .jobs import start_ray

    ray = start_ray(address)
    task = ray.remote(num_cpus=1, num_gpus=gpus_per_run)(search_worker)
    refs = [task.remote(spec) for _ in range(max(workers, 1))]
    return [o for outcomes in ray.get(refs) for o in outcomes]


def study_state(sweep: Any, out: Path, seed: int) -> list[dict[str, Any]]:
    """Every run of the search as its study and directories hold them."""
    optuna = _optuna()
    study = open_study(sweep, out, seed, 1)
    rows = []
    names = {
        optuna.trial.TrialState.COMPLETE: "completed",
        optuna.trial.TrialState.PRUNED: "terminated",
        optuna.trial.TrialState.FAIL: "failed",
        optuna.trial.TrialState.RUNNING: "running",
        optuna.trial.TrialState.WAITING: "queued",
    }
    for trial in study.get_trials(deepcopy=False):
        run_dir = Path(trial.user_attrs.get("run_dir", out))
        summary = finished_summary(run_dir) or {}
        status = names.get(trial.state, str(trial.state))
        epochs = summary.get("epochs_completed")
        name = trial.user_attrs.get("name")
        if name is None:  # killed between asking for the point and naming it
            if len(trial.params) < sum(not p.fixed for p in sweep.space.values()):
                continue  # it never became a point
            name = point_of(sweep, trial.params)[0]
        if trial.user_attrs.get(REQUEUED):
            # a killed search's trial, whose run a later trial of the same point continued:
            # not a failure, and its epochs are that trial's
            status, epochs = "interrupted", None
        rows.append(
            {
                "name": name,
                "trial": trial.number,
                "status": status,
                "params": trial.params,
                sweep.metric: trial.value,
                "epochs": epochs,
                "run_dir": str(run_dir),
            }
        )
    return rows
