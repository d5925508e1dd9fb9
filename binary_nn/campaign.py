"""Run many training runs — repeated seeds, grid points — in parallel processes, resumably.

Each run goes into its own directory. A directory whose ``summary.json`` says the run
finished (``completed`` or ``diverged``) is skipped, so an interrupted campaign resumes where it
stopped; a run that fails records its error in ``error.json`` and the others go on.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import traceback
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .config import TrainConfig
from .tracking import SUMMARY_FILE, write_json_atomic

FINISHED = ("completed", "diverged")
ERROR_FILE = "error.json"


@dataclass
class Job:
    """One run: its name in the campaign and its configuration (``config.out`` is its dir)."""

    name: str
    config: TrainConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)


@dataclass
class JobResult:
    name: str
    run_dir: Path
    status: str  # skipped, completed, diverged or failed
    summary: dict = field(default_factory=dict)
    error: str | None = None


def finished_summary(run_dir: Path) -> dict | None:
    """The run's summary if it finished, else None (never started, killed, or failed)."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("status") in FINISHED else None


def _run_one(config: TrainConfig, blas_threads: int) -> tuple[str, dict, str | None]:
    """Worker: one training run, errors caught and written beside the run."""
    from threadpoolctl import threadpool_limits

    from .errors import BinaryNNError, DivergenceError
    from .trainer import run

    run_dir = Path(config.out)
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    try:
        with threadpool_limits(blas_threads):
            summary = run(config)
        return summary["status"], summary, None
    except DivergenceError as exc:
        return "diverged", finished_summary(run_dir) or {}, str(exc)
    except BinaryNNError as exc:
        message = str(exc)
    except Exception:  # a bug: keep the traceback for the report, let the other runs go on
        message = traceback.format_exc()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / ERROR_FILE, {"error": message, "config": config.to_dict()})
    return "failed", {}, message


def run_jobs(
    jobs: Sequence[Job], processes: int = 1, progress: bool = True, desc: str = "runs"
) -> list[JobResult]:
    """Run every job not finished yet, ``processes`` at a time; results in job order.

    BLAS gets ``cores // processes`` threads in each process, so the machine is used once.
    Ctrl-C cancels what has not started, stops the workers and leaves finished runs intact.
    """
    if processes < 1:
        from .errors import ConfigError

        raise ConfigError(f"--processes must be >= 1, got {processes}")
    results: dict[int, JobResult] = {}
    todo = []
    for index, job in enumerate(jobs):
        summary = finished_summary(job.run_dir)
        if summary is not None:
            results[index] = JobResult(job.name, job.run_dir, "skipped", summary)
        else:
            todo.append(index)
    blas_threads = max(1, (os.cpu_count() or 1) // processes)
    bar = tqdm(
        total=len(jobs), initial=len(jobs) - len(todo), desc=desc, disable=not progress, unit="run"
    )

    def record(index: int, outcome: tuple[str, dict, str | None]) -> None:
        status, summary, error = outcome
        results[index] = JobResult(jobs[index].name, jobs[index].run_dir, status, summary, error)
        bar.update(1)
        failed = sum(r.status == "failed" for r in results.values())
        bar.set_postfix(failed=failed, refresh=True)
        if error and status == "failed":
            bar.write(f"{jobs[index].name}: failed: {error.strip().splitlines()[-1]}")

    try:
        if processes == 1:
            for index in todo:
                record(index, _run_one(jobs[index].config, blas_threads))
        else:
            # spawn: forked children of a process whose BLAS threads already run can hang
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(processes, mp_context=context) as pool:
                pending: dict[Future, int] = {
                    pool.submit(_run_one, jobs[i].config, blas_threads): i for i in todo
                }
                try:
                    while pending:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            record(pending.pop(future), future.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return [results[i] for i in sorted(results)]


def parse_seeds(text: str) -> list[int]:
    """``"2..11"`` (inclusive) or ``"1,2,3"``."""
    from .errors import ConfigError

    try:
        if ".." in text:
            low, high = (int(v) for v in text.split(".."))
            seeds = list(range(low, high + 1))
        else:
            seeds = [int(v) for v in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds must look like 2..11 or 1,2,3, got {text!r}")
    return seeds
