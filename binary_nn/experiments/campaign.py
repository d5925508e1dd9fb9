"""``python -m binary_nn.repeat SETTINGS``: run a list of settings over several seeds.

``SETTINGS`` is a YAML file, or the name of one shipped with binary_nn (``mnist``,
``mnist_bn``: the published best settings; ``digits``: a short demo)::

    name: MNIST without batch normalization
    dataset: MNIST
    seeds: 2..11
    fixed: {bn: false, hidden: 700,500,300,200, epochs: 100, weight_clipping: 1}
    settings:
      - {method: DFA, hidden_act: signsat, binarize: false, init: 0.1, lr: 1.0e-4}

Keys are ``TrainConfig`` fields. Each run goes into
``OUT/<method>-<activation>-<real|binary>/seed-<k>``; finished runs are skipped, so running the
same command again resumes an interrupted campaign.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..cli import ArgumentParser, describe, run_cli
from ..errors import ConfigError
from ..files import claim_output, read_yaml
from ..options import by_name, options_of
from ..run.config import TrainConfig
from ..run.run_dir import run_result
from .jobs import Job, on_disk, parse_seeds, run_jobs
from .status import status_table

PROG = "binary_nn.repeat"


def bundled_settings() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in resources.files("binary_nn.experiments.settings").iterdir()
        if p.name.endswith(".yaml")
    )


def read_settings(source: str) -> dict[str, Any]:
    """A settings file by path, or by the name of a bundled one."""
    path = Path(source)
    if not path.exists():
        if source not in bundled_settings():
            raise ConfigError(
                f"settings {source!r} is neither a file nor a bundled settings name "
                f"({', '.join(bundled_settings())})"
            )
        path = Path(str(resources.files("binary_nn.experiments.settings") / f"{source}.yaml"))
    data = read_yaml(path, "a settings file (YAML)")
    if not isinstance(data, dict) or not isinstance(data.get("settings"), list):
        raise ConfigError(f"{path} needs a 'settings' list of run settings")
    data["_path"] = str(path)
    return data


def setting_name(config: TrainConfig) -> str:
    weights = "binary" if config.binarize else "real"
    feedback = "" if config.feedback == "uniform" else f"-{config.feedback}-feedback"
    if config.feedback_positions != "each":
        feedback += f"-{config.feedback_positions}-positions"
    return f"{config.method}-{config.hidden_act}-{weights}{feedback}"


def build_jobs(
    data: dict[str, Any], seeds: list[int], out: Path, overrides: dict[str, Any]
) -> list[Job]:
    """One job per (setting, seed), every configuration validated before anything runs."""
    fixed = dict(data.get("fixed") or {})
    if "dataset" in data:
        fixed.setdefault("dataset", data["dataset"])
    jobs, names = [], set()
    for index, setting in enumerate(data["settings"]):
        if not isinstance(setting, dict):
            raise ConfigError(f"setting {index + 1} of {data['_path']} is not a mapping")
        base = TrainConfig.from_dict({**fixed, **setting, **overrides, "seed": 0}).resolved()
        name = setting_name(base)
        if name in names:
            name = f"{name}-{index + 1}"
        names.add(name)
        for seed in seeds:
            run_dir = out / name / f"seed-{seed}"
            config = replace(base, seed=seed, out=str(run_dir), run_name=f"{name} seed {seed}")
            jobs.append(Job(f"{name}/seed-{seed}", config))
    return jobs


def only(jobs: list[Job], filters: Sequence[str], path: str) -> list[Job]:
    """The jobs whose setting matches every ``KEY=VALUE`` of ``filters``: ``setting=NAME``
    (its directory name, e.g. ``DFA-tanh-real``) or any option, by its name or flag, with the
    value as the command line would take it (``method=bp`` matches ``GD``)."""
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"--only takes KEY=VALUE (e.g. method=DFA), got {text!r}")
        if key == "setting":
            kept = [j for j in jobs if j.name.rsplit("/", 1)[0] == value]
        else:
            option = by_name(TrainConfig, key)
            if option is None:
                raise ConfigError(f"--only {text}: {key!r} is not an option of a run")
            field = next(n for n, o in options_of(TrainConfig).items() if o is option)
            wanted = TrainConfig.from_dict({field: value}).resolved()
            kept = [j for j in jobs if getattr(j.config, field) == getattr(wanted, field)]
        if not kept:
            names = sorted({j.name.rsplit("/", 1)[0] for j in jobs})
            raise ConfigError(
                f"--only {text}: no setting of {path} matches; its settings are {', '.join(names)}"
            )
        jobs = kept
    return jobs


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument(
        "settings", help="YAML settings file or a bundled name: " + ", ".join(bundled_settings())
    )
    parser.add_argument("--seeds", help="e.g. 2..11 or 1,2,3 (default: the file's)")
    parser.add_argument("--epochs", type=int, help="override the epochs of every setting")
    parser.add_argument("--processes", "-j", type=int, default=1, help="runs in parallel")
    parser.add_argument(
        "--runs-per-gpu", type=int, default=0, metavar="N",
        help="run on the GPUs, N runs at a time on each (replaces --processes)",
    )  # fmt: skip
    parser.add_argument("--out", help="campaign directory (default: runs/repeat-<settings>)")
    parser.add_argument("--data-dir", help="dataset directory passed to every run")
    parser.add_argument(
        "--only", action="append", default=[], metavar="KEY=VALUE",
        help="run only the settings with this option value, e.g. method=DFA or "
        "setting=DFA-tanh-real (repeatable: all must match)",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    parser.add_argument(
        "--status", action="store_true",
        help="print where each run stands (state, epochs, the epoch selected so far and its "
        "accuracies) and stop; nothing is run or written",
    )  # fmt: skip
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (for logs and CI)"
    )

    def job() -> int:
        args = parser.parse_args(argv)
        data = read_settings(args.settings)
        seeds = parse_seeds(args.seeds or str(data.get("seeds", "1")))
        overrides = {
            k: v for k, v in (("epochs", args.epochs), ("data_dir", args.data_dir)) if v is not None
        }
        out_name = args.out or f"runs/repeat-{Path(data['_path']).stem}"
        if args.status:  # read only: the directory is not claimed
            jobs = only(
                build_jobs(data, seeds, Path(out_name), overrides), args.only, data["_path"]
            )
            print(status_table(jobs))
            return 0
        out = claim_output(out_name, "--out", "dir")
        jobs = only(build_jobs(data, seeds, out, overrides), args.only, data["_path"])
        if args.dry_run:
            for j in jobs:
                print(j.config.command_line())
            return 0
        results = run_jobs(
            jobs,
            args.processes,
            progress=not args.no_progress,
            desc=data.get("name", "runs"),
            runs_per_gpu=args.runs_per_gpu,
        )
        skipped = sum(r.status == "skipped" for r in results)
        if skipped:
            print(f"skipped {skipped} of {len(results)} runs: finished before, or being run")
        # the table covers every run of the campaign on disk, whoever ran it
        print_table(on_disk(results))
        return 1 if any(r.status == "failed" for r in results) else 0

    return run_cli(PROG, job)


def print_table(results: Any) -> None:
    """Mean and spread of each setting's test accuracy over its seeds, each run's result as
    ``run_result`` defines it (at the validation-selected epoch
    when the runs held a validation split out, else at the last epoch; the table says which)."""
    groups: dict[str, list[Any]] = {}
    for r in results:
        groups.setdefault(r.name.rsplit("/", 1)[0], []).append(r)
    labels = {run_result(r.summary)[1] for r in results if r.status == "completed"}
    width = max([24, *(len(name) for name in groups)])
    print(f"{'setting':<{width}} {'runs':>4} {'test acc mean':>14} {'std':>7} {'min':>7} "
          f"{'max':>7}")  # fmt: skip
    for name, rs in groups.items():
        done = [r for r in rs if r.status == "completed"]
        acc = [v for v in (run_result(r.summary)[0] for r in done) if v is not None]
        others = {s: sum(r.status == s for r in rs) for s in ("diverged", "failed", "running",
                                                              "stopped")}  # fmt: skip
        note = ", ".join(f"{n} {s}" for s, n in others.items() if n)
        note = f"  ({note})" if note else ""
        if not acc:
            print(f"{name:<{width}} {len(rs):>4} {'-':>14}{note}")
            continue
        std = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(
            f"{name:<{width}} {len(rs):>4} {statistics.mean(acc):>14.4f} {std:>7.4f} "
            f"{min(acc):>7.4f} {max(acc):>7.4f}{note}"
        )
    if labels:
        print(f"(test accuracy {' or '.join(sorted(labels))})")
