"""``python -m binary_nn.sweep FILE.yaml``: run a Weights & Biases sweep file: a grid, a
random or Bayesian search, with or without early termination.

The file is a W&B sweep configuration (``wandb sweep FILE`` accepts it unchanged)::

    method: grid
    metric: {name: train/accuracy, goal: maximize}
    parameters:
      method: {values: [GD, DFA, DRTP]}
      binarize: {values: [true, false]}
      lr: {value: 1.0e-4}
    command: [${env}, ${interpreter}, -m, binary_nn.train, ${args_no_boolean_flags}]

Every grid point becomes the command line a W&B agent would build (``--name=value``; a
boolean ``true`` as ``--name``, ``false`` left out), plus the fixed arguments of ``command``.

Executors: ``local`` (default; ``--processes N`` on this machine), ``ray`` (Ray tasks on a local
instance or the cluster at ``--address``), ``wandb`` (creates the sweep on W&B and starts an
agent here; the printed ``wandb agent ...`` line lets other machines join). ``local`` and
``ray`` write one run directory per point, named from its parameters, skip points already
finished (so a sweep resumes), record a failed point's error and go on, and end with the best
point on the file's metric.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..cli import ArgumentParser, describe, run_cli
from ..errors import ConfigError
from ..files import claim_output, read_json_object, write_json_atomic
from ..run.config import config_from_args
from .jobs import Job, JobResult, on_disk, run_jobs
from .points import point_args, point_name
from .sweep_file import Sweep, load_sweep

PROG = "binary_nn.sweep"


#: the most points a grid may have (each is validated before any runs)
MAX_POINTS = 100_000


def build_jobs(
    sweep: Sweep, out: Path, extra_args: Sequence[str] = (), drop_wandb: bool = False
) -> list[Job]:
    """One validated job per grid point, its run directory under ``out``."""
    fixed = [a for a in sweep.fixed_args if not (drop_wandb and a == "--wandb")]
    size = math.prod(len(v) for v in sweep.parameters.values())
    if size > MAX_POINTS:
        raise ConfigError(
            f"{sweep.path}: the grid has {size:,} points, more than {MAX_POINTS:,}; "
            "give fewer values"
        )
    if size > 1000:  # validating takes a while: say so
        print(f"checking the {size:,} points of {sweep.path} before any runs", file=sys.stderr)
    jobs = []
    for point in sweep.points():
        argv = [*fixed, *point_args(point), *extra_args]
        name = point_name(point, sweep.varying)
        try:  # a bad value is refused here, before any run starts
            config = config_from_args(argv).resolved()
        except ConfigError as exc:
            raise ConfigError(f"{sweep.path}: point {name}: {exc}") from None
        jobs.append(Job(name, replace(config, out=str(out / name))))
    return jobs


def best_point(results: Any, metric: str, goal: str) -> Any:
    scored = [
        r
        for r in results
        if isinstance(r.summary.get(metric), (int, float)) and not math.isnan(r.summary[metric])
    ]
    if not scored:
        return None
    pick = max if goal == "maximize" else min
    return pick(scored, key=lambda r: r.summary[metric])


STATE_FILE = "sweep.json"


def write_state(out: Path, sweep: Sweep, results: Sequence[JobResult]) -> list[JobResult]:
    """``sweep.json``: every point of the sweep as its directory holds it now (see
    ``on_disk``), written under a lock so that two sweeps on
    one directory never interleave; returns those results."""
    with open(out / ".sweep.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = on_disk(results)
        points = [
            {
                "name": r.name,
                "status": r.status,
                "error": r.error,
                sweep.metric: r.summary.get(sweep.metric),
            }
            for r in current
        ]
        best = best_point(current, sweep.metric, sweep.goal)
        state = {
            "file": str(sweep.path),
            "metric": sweep.metric,
            "goal": sweep.goal,
            "points": points,
            "best": None if best is None else best.name,
        }
        write_json_atomic(out / STATE_FILE, state)
    return current


def search_identity(sweep: Sweep, seed: int) -> str:
    """What makes a search the same search: its file's content (its name and description
    aside) and the seed of its decisions; a directory holds one search."""
    content = {k: v for k, v in sweep.raw.items() if k not in ("name", "description")}
    text = json.dumps({"sweep": content, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_one_search(out: Path, identity: str, sweep: Sweep) -> None:
    """Refuse, in one sentence, a search directory that holds another search, or whose study
    database is not one (a file binary_nn did not write, a directory)."""
    from .study import STUDY_FILE

    database = out / STUDY_FILE
    if database.exists():
        if not database.is_file():
            raise ConfigError(f"{database} is not a file; give the search another --out")
        with open(database, "rb") as head:
            if head.read(16) not in (b"SQLite format 3\0", b""):
                raise ConfigError(
                    f"{database} is not a study database (not SQLite); remove it or give the "
                    "search another --out"
                )
    stored = read_json_object(out / STATE_FILE)
    if stored is None:
        return
    if stored.get("identity") is None:  # written before searches had an identity
        same = (stored.get("file"), stored.get("method")) == (str(sweep.path), sweep.method)
    else:
        same = stored["identity"] == identity
    if not same:
        raise ConfigError(
            f"{out} holds another search ({stored.get('file')}, seed {stored.get('seed')}); "
            f"give {sweep.path.name} another --out, or run that search again to resume it"
        )


def searched(sweep: Sweep, out: Path, args: Any, extra: list[str]) -> int:
    """A random, Bayesian or early-terminated search (see ``study``); ``sweep.json``
    lists every run of the study, and the best completed one is printed."""
    from .study import run_search, study_state, trial_cap

    if args.processes < 1:
        raise ConfigError(f"--processes must be >= 1, got {args.processes}")
    identity = search_identity(sweep, args.seed)
    check_one_search(out, identity, sweep)
    cap = trial_cap(sweep)
    # every point's configuration is checked by its run; check the fixed part now
    config_from_args([*sweep.fixed_args, *point_args(sweep.fixed_point), *extra]).resolved()
    print(f"{sweep.method} search of {cap} runs"
          + (" with early termination" if sweep.early_terminate else ""), flush=True)  # fmt: skip
    outcomes = run_search(
        sweep, out, processes=args.processes, executor=args.executor, address=args.address,
        seed=args.seed, extra_args=extra, drop_wandb=args.no_wandb,
        runs_per_gpu=args.runs_per_gpu,
    )  # fmt: skip
    with open(out / ".sweep.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = study_state(sweep, out, args.seed)
        done = [r for r in rows if r["status"] == "completed" and r[sweep.metric] is not None]
        pick = max if sweep.goal == "maximize" else min
        best = pick(done, key=lambda r: r[sweep.metric]) if done else None
        state = {
            "file": str(sweep.path), "identity": identity, "method": sweep.method,
            "metric": sweep.metric, "goal": sweep.goal, "seed": args.seed, "points": rows,
            "epochs": sum(r["epochs"] or 0 for r in rows),
            "best": None if best is None else best["name"],
        }  # fmt: skip
        write_json_atomic(out / STATE_FILE, state)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(", ".join(f"{n} {s}" for s, n in counts.items()) + f"; {state['epochs']} epochs run"
          + f" ({len(outcomes)} runs by this search)")  # fmt: skip
    if best is not None:
        print(f"best on {sweep.metric} ({sweep.goal}): {best['name']} = "
              f"{best[sweep.metric]:.4f} ({best['run_dir']})")  # fmt: skip
    else:
        finished = any(o.status == "completed" for o in outcomes)  # the study says failed
        warn_metric_never_logged(sweep, finished or any(r["status"] == "completed" for r in rows))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def warn_metric_never_logged(sweep: Sweep, finished: bool) -> None:
    """Say why a sweep has no best point: no run finished, or none logged the metric."""
    if finished:
        print(
            f"no best point: no run logged {sweep.metric!r}; runs log train/, val/ (with "
            "--val-split) and test/ accuracy, precision and f1, and train/loss: check the "
            f"metric's name in {sweep.path.name}",
            file=sys.stderr,
        )


def run_wandb(sweep: Sweep, project: str | None, entity: str | None, count: int | None) -> int:
    try:
        import wandb
    except ImportError:
        raise ConfigError("--executor wandb needs wandb: pip install 'binary-nn[wandb]'") from None
    dataset = sweep.parameters.get("dataset", ["digits"])[0]
    project = project or f"{dataset} custom"
    try:
        sweep_id = wandb.sweep(sweep=sweep.raw, project=project, entity=entity)
    except Exception as exc:
        raise ConfigError(
            f"W&B refused the sweep ({str(exc).strip().splitlines()[0]}); run `wandb login` first"
        ) from None
    target = "/".join(p for p in (entity, project, sweep_id) if p)
    print(f"sweep created; other machines join with:\n  wandb agent {target}")
    command = [sys.executable, "-m", "wandb", "agent", target]
    if count:
        command += ["--count", str(count)]
    return subprocess.call(command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument("file", help="a W&B sweep YAML file (method: grid for local and ray)")
    parser.add_argument("--executor", choices=("local", "ray", "wandb"), default="local")
    parser.add_argument(
        "--processes", "-j", type=int, default=1, help="local executor: points run in parallel"
    )
    parser.add_argument(
        "--runs-per-gpu", type=int, default=0, metavar="N",
        help="run every point on a GPU, N at a time on each (local: replaces --processes; "
        "ray: each point asks for 1/N of a GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--address",
        help="ray executor: address of an existing cluster (default: start a local Ray instance)",
    )
    parser.add_argument("--out", help="sweep directory (default: runs/sweep-<file name>)")
    parser.add_argument("--data-dir", help="dataset directory passed to every point")
    parser.add_argument(
        "--no-wandb", action="store_true", help="drop --wandb from the command's fixed arguments"
    )
    parser.add_argument("--project", help="wandb executor: W&B project")
    parser.add_argument("--entity", help="wandb executor: W&B entity")
    parser.add_argument("--count", type=int, help="wandb executor: runs this agent does")
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of a random, Bayesian or early-terminated search's decisions",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="list the points and stop")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (for logs and CI)"
    )

    def job() -> int:
        args = parser.parse_args(argv)
        sweep = load_sweep(args.file, args.executor)
        if args.executor == "wandb" and not args.dry_run:
            return run_wandb(sweep, args.project, args.entity, args.count)
        out = claim_output(args.out or f"runs/sweep-{sweep.path.stem}", "--out", "dir")
        extra = ["--data-dir", args.data_dir] if args.data_dir else []
        if sweep.searched:
            if args.dry_run:
                from .study import trial_cap

                print(f"a {sweep.method} search of {trial_cap(sweep)} runs over "
                      f"{', '.join(sweep.varying)}: its points are drawn as it goes")  # fmt: skip
                return 0
            return searched(sweep, out, args, extra)
        jobs = build_jobs(sweep, out, extra, drop_wandb=args.no_wandb)
        if args.dry_run:
            for j in jobs:
                print(f"{j.name}: {' '.join(j.config.argv)}")
            print(f"{len(jobs)} points")
            return 0
        results = run_jobs(
            jobs,
            args.processes,
            progress=not args.no_progress,
            desc=sweep.name,
            executor=args.executor,
            address=args.address,
            runs_per_gpu=args.runs_per_gpu,
        )
        counts = {
            s: sum(r.status == s for r in results)
            for s in ("completed", "skipped", "diverged", "failed")
        }
        print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" of {len(results)} points")
        # what the directory holds now, whoever ran it: another sweep's points too
        current = write_state(out, sweep, results)
        best = best_point(current, sweep.metric, sweep.goal)
        if best is not None:
            print(
                f"best on {sweep.metric} ({sweep.goal}): {best.name} = "
                f"{best.summary[sweep.metric]:.4f} ({best.run_dir})"
            )
        else:
            warn_metric_never_logged(sweep, any(r.status == "completed" for r in current))
        return 1 if counts["failed"] else 0

    return run_cli(PROG, job)
