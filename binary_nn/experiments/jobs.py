"""Run many training runs — repeated seeds, grid points — in parallel processes, resumably.

Each run goes into its own directory. A directory whose ``summary.json`` says the run
finished (``completed`` or ``diverged``) is skipped, and an unfinished one continues from its
checkpoint, so an interrupted campaign resumes where it stopped without redoing an epoch; a
run that fails records its error in ``error.json`` and the others go on.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import ConfigError, DiskFullError
from ..files import read_json_object, write_json_atomic
from ..options import identity_keys, result_keys
from ..run.config import TrainConfig
from ..run.console import duration
from ..run.run_dir import CONFIG_FILE, being_written, finished_summary
from .gpus import GpuPlacement, gpu_placement, on_gpu, slot_queue, start_worker

ERROR_FILE = "error.json"


@dataclass
class Job:
    """One run: its name in the campaign and its configuration (``config.out`` is its dir)."""

    name: str
    config: TrainConfig

    @property
    def run_dir(self) -> Path:
        assert self.config.out is not None, "a job's config names its run directory"
        return Path(self.config.out)


@dataclass
class JobResult:
    name: str
    run_dir: Path
    status: str  # skipped, completed, diverged or failed
    summary: dict[str, Any] = field(default_factory=dict[str, Any])
    error: str | None = None


def _run_one(config: TrainConfig, blas_threads: int) -> tuple[str, dict[str, Any], str | None]:
    """Worker: one training run, errors caught and written beside the run."""
    from threadpoolctl import threadpool_limits

    from ..cli import deferred_stop
    from ..errors import BinaryNNError, DiskFullError, DivergenceError
    from ..run.loop import run
    from ..run.run_dir import RunBusy, RunFinished

    assert config.out is not None, "a job's config names its run directory"
    run_dir = Path(config.out)
    try:
        with threadpool_limits(blas_threads), deferred_stop() as stop:
            # an unfinished run of the campaign continues from its checkpoint (or starts
            # again without one); a finished one, or one another campaign writes, is skipped
            config = replace(config, overwrite=True)
            summary = run(config, skip_finished=True, resume=True, stop=stop)
            if stop.requested:
                # asked to stop after the run's last safe point: it finished and is kept,
                # but the campaign stops (a pool worker that went on to wait for the next
                # run would never exit, and its parent would wait for it forever)
                raise stop.exception()
        (run_dir / ERROR_FILE).unlink(missing_ok=True)
        return summary["status"], summary, None
    except KeyboardInterrupt:
        if multiprocessing.parent_process() is None:
            raise  # this process runs the campaign: it stops
        # a worker stopped by its parent (Ctrl-C there): the run is checkpointed and marked
        # stopped; the worker ends quietly (not with a traceback) and takes no other run
        raise SystemExit(143) from None
    except RunFinished:
        return "skipped", finished_summary(run_dir) or {}, None
    except RunBusy as exc:
        return "skipped", {}, str(exc)
    except DivergenceError as exc:
        return "diverged", finished_summary(run_dir) or {}, str(exc)
    except DiskFullError as exc:
        _write_error(run_dir, str(exc), config)
        return "disk full", {}, str(exc)
    except BinaryNNError as exc:
        message = str(exc)
    except Exception:  # a bug: keep the traceback for the report, let the other runs go on
        message = traceback.format_exc()
    _write_error(run_dir, message, config)
    return "failed", {}, message


def _write_error(run_dir: Path, message: str, config: TrainConfig) -> None:
    """``error.json`` beside the run, where the disk still allows it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / ERROR_FILE, {"error": message, "config": config.to_dict()})
    except OSError:
        pass


Outcome = tuple[str, dict[str, Any], "str | None"]


def _serial(configs: dict[int, TrainConfig], blas_threads: int) -> Iterator[tuple[int, Outcome]]:
    for index, config in configs.items():
        yield index, _run_one(config, blas_threads)


def _run_indexed(item: tuple[int, TrainConfig, int]) -> tuple[int, Outcome]:
    index, config, blas_threads = item
    return index, _run_one(config, blas_threads)


def _processes(
    configs: dict[int, TrainConfig],
    processes: int,
    blas_threads: int,
    gpus: GpuPlacement | None = None,
) -> Iterator[tuple[int, Outcome]]:
    # spawn: forked children of a process whose BLAS threads (or CUDA) already run can hang
    context = multiprocessing.get_context("spawn")
    slots = slot_queue(context, gpus)  # each worker takes one GPU for its life
    pool = context.Pool(processes, initializer=start_worker, initargs=(slots,))
    items = [(index, config, blas_threads) for index, config in configs.items()]
    try:
        yield from pool.imap_unordered(_run_indexed, items)
        pool.close()
    except BaseException:  # Ctrl-C or an abandoned iteration: stop every worker now
        pool.terminate()
        raise
    finally:
        pool.join()


def _ray(
    configs: dict[int, TrainConfig],
    address: str | None,
    cpus_per_run: int,
    gpus_per_run: float = 0.0,
) -> Iterator[tuple[int, Outcome]]:
    """Plain Ray tasks: each run is independent and writes its own directory, so Tune's trial
    bookkeeping would only duplicate ours. With ``address``, run directories must be on a
    filesystem that the cluster's nodes share. A run given a fraction of a GPU sees that GPU
    alone (Ray sets ``CUDA_VISIBLE_DEVICES``)."""
    ray = start_ray(address)
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run)(_run_one)
    pending = {task.remote(config, cpus_per_run): i for i, config in configs.items()}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def start_ray(address: str | None) -> Any:
    """The ray module, connected to the cluster at ``address`` or to a local instance."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs ray: pip install 'binary-nn[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a local instance"
            raise ConfigError(f"could not start Ray on {where} ({exc})") from None
    return ray


def run_jobs(
    jobs: Sequence[Job],
    processes: int = 1,
    progress: bool = True,
    desc: str = "runs",
    executor: str = "local",
    address: str | None = None,
    runs_per_gpu: int = 0,
) -> list[JobResult]:
    """Run every job not finished yet; results in job order.

    ``executor="local"``: ``processes`` at a time on this machine, BLAS getting
    ``cores // processes`` threads each. ``executor="ray"``: as Ray tasks on a local instance or
    the cluster at ``address``, one CPU each. ``runs_per_gpu`` N > 0 puts every run on a GPU,
    N at a time on each (see ``gpus``; ``processes`` is then N times the GPUs here).
    Ctrl-C stops the workers and leaves finished runs intact.
    """
    if processes < 1:
        raise ConfigError(f"--processes must be >= 1, got {processes}")
    gpus = None
    if runs_per_gpu:
        if executor == "ray":
            if runs_per_gpu < 0:
                raise ConfigError(f"--runs-per-gpu must be >= 0, got {runs_per_gpu}")
        else:
            gpus = gpu_placement(runs_per_gpu)
            assert gpus is not None
            processes = gpus.processes
        jobs = [replace(job, config=on_gpu(job.config)) for job in jobs]
    for job in jobs:
        check_same_configuration(job)
    check_memory_of(jobs)
    results: dict[int, JobResult] = {}
    todo: dict[int, TrainConfig] = {}
    for index, job in enumerate(jobs):
        summary = finished_summary(job.run_dir)
        if summary is not None:
            results[index] = JobResult(job.name, job.run_dir, "skipped", summary)
        else:
            todo[index] = job.config
    blas_threads = max(1, (os.cpu_count() or 1) // processes)
    if executor == "ray":
        outcomes = _ray(todo, address, 1, 1 / runs_per_gpu if runs_per_gpu else 0.0)
    elif processes == 1 and gpus is None:
        outcomes = _serial(todo, blas_threads)
    else:
        outcomes = _processes(todo, processes, blas_threads, gpus)
    bar = tqdm(
        total=len(jobs),
        initial=len(results),
        desc=desc,
        unit="run",
        disable=None if progress else True,
    )
    # off a terminal (nohup, a batch scheduler) the bar is silent: a line per finished run
    lines = progress and bar.disable
    started, ran = time.perf_counter(), 0
    try:
        for index, (status, summary, error) in outcomes:
            if status == "disk full":  # every later run would fail too: stop cleanly
                raise DiskFullError(f"{jobs[index].name}: {error}; the campaign stopped")
            results[index] = JobResult(
                jobs[index].name, jobs[index].run_dir, status, summary, error
            )
            ran += 1
            if lines:
                left = (time.perf_counter() - started) / ran * (len(todo) - ran)
                score = summary.get("test/accuracy")
                shown = "" if score is None else f", test accuracy {score:.4f}"
                print(
                    f"[{len(results)}/{len(jobs)}] {jobs[index].name}: {status}{shown}; "
                    f"about {duration(left)} left",
                    flush=True,
                )
            bar.update(1)
            bar.set_postfix(failed=sum(r.status == "failed" for r in results.values()))
            if status == "failed" and error:
                bar.write(f"{jobs[index].name}: failed: {error.strip().splitlines()[-1]}")
    finally:
        bar.close()
    return [results[i] for i in sorted(results)]


def on_disk(results: Sequence[JobResult]) -> list[JobResult]:
    """The results as the run directories hold them now, whoever ran them (this process,
    an earlier one, another campaign on the same directory): the status and summary of a
    finished run from its ``summary.json``, a run another process writes as ``running``."""
    current = []
    for r in results:
        summary = finished_summary(r.run_dir)
        if summary is not None:
            current.append(JobResult(r.name, r.run_dir, summary["status"], summary, r.error))
        elif being_written(r.run_dir):
            current.append(JobResult(r.name, r.run_dir, "running", {}, None))
        else:
            current.append(r)
    return current


def check_memory_of(jobs: Sequence[Job]) -> None:
    """Refuse, before any run starts, a campaign one of whose networks this machine cannot
    hold (each distinct network once; datasets of a known shape, without loading them)."""
    from ..data import DATASETS
    from ..run.build import check_memory

    seen = set()
    for job in jobs:
        config = job.config
        key = tuple(str(getattr(config, k)) for k in result_keys(TrainConfig) if k != "seed")
        if key in seen or config.dataset not in DATASETS:
            continue
        seen.add(key)
        source = DATASETS.get(config.dataset)
        try:
            check_memory(config.resolved(), source.input_shape, source.n_classes)
        except ConfigError as exc:
            raise ConfigError(f"{job.name}: {exc}") from None


def check_same_configuration(job: Job) -> None:
    """Refuse a job whose directory holds a run made with another configuration (a rerun
    with other flags into the same --out would skip it and report the old results)."""
    path = job.run_dir / CONFIG_FILE
    stored = read_json_object(path)
    if stored is None:
        return
    wanted = job.config.resolved().to_dict()
    differ = [
        key for key in identity_keys(TrainConfig) if key in stored and stored[key] != wanted[key]
    ]
    if differ:
        shown = "; ".join(f"{k}: {stored[k]!r} there, {wanted[k]!r} here" for k in differ[:4])
        raise ConfigError(
            f"{job.run_dir} holds a run made with another configuration ({shown}); use "
            "another --out, or remove that directory"
        )


#: the most seeds one campaign takes (counted before the list is made)
MAX_SEEDS = 10_000
MAX_SEED = 2**32 - 1


def parse_seeds(text: str) -> list[int]:
    """``"2..11"`` (inclusive) or ``"1,2,3"``: at most ``MAX_SEEDS`` seeds, each in
    ``0..2**32-1``, counted before the list is made."""
    try:
        if ".." in text:
            low, high = (int(v) for v in text.split(".."))
        else:
            seeds = [int(v) for v in text.split(",", MAX_SEEDS)]
    except ValueError:
        low, high, seeds = 0, -1, []
    if ".." in text:
        if high - low + 1 > MAX_SEEDS:
            raise ConfigError(
                f"--seeds {text} asks for {high - low + 1:,} runs per setting; at most "
                f"{MAX_SEEDS:,}: give a shorter range"
            )
        seeds = list(range(low, high + 1))
    if not seeds or any(not 0 <= s <= MAX_SEED for s in seeds):
        raise ConfigError(
            f"--seeds must look like 2..11 or 1,2,3 (seeds in 0..{MAX_SEED}), got {text!r}"
        )
    return seeds
