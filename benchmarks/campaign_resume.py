"""A campaign killed part-way and run again: how much of its work is done twice.

Starts ``python -m binary_nn.repeat`` on a campaign file, sends it SIGTERM once the runs have
logged ``--kill-at`` of the campaign's iterations, then runs the same command again and reads
every run's ``metrics.jsonl``::

    python benchmarks/campaign_resume.py --data-dir ~/data              # MNIST, 4 runs x 10 epochs
    python benchmarks/campaign_resume.py --dataset digits --epochs 40   # no download

Prints one markdown table: per run, the epochs and iterations logged when the campaign was
stopped, the iteration its checkpoint continues from, what was logged after it was run again,
and how many epochs and iterations were logged twice (0 is the target: a stopped run writes
its checkpoint at the stop and continues from it, so no iteration is trained twice). Not
part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

SETTINGS = [
    {"method": "GD", "hidden_act": "tanh", "binarize": False},
    {"method": "DFA", "hidden_act": "tanh", "binarize": False},
    {"method": "DRTP", "hidden_act": "signsat", "binarize": True, "bn": True},
    {"method": "DFA", "hidden_act": "signsat", "binarize": True, "bn": True},
]


def logged(run: Path) -> tuple[list[int], list[int]]:
    """The epochs and the iterations a run's metrics.jsonl holds, in file order."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return [], []
    epochs, iterations = [], []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if "train/loss" in record:
            epochs.append(record["epoch"])
        elif "batch/loss" in record:
            iterations.append(record["iteration"])
    return epochs, iterations


def iterations_per_epoch(run: Path) -> int | None:
    """The iteration count at a run's first epoch line, once it is logged."""
    path = run / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        if '"train/loss"' in line:
            return int(json.loads(line)["iteration"]) // int(json.loads(line)["epoch"])
    return None


def checkpoint_iteration(run: Path) -> int | None:
    """The iteration a run's checkpoint continues from (None: no checkpoint)."""
    import numpy as np

    path = run / "checkpoint.npz"
    if not path.exists():
        return None
    with np.load(path) as saved:
        return int(json.loads(str(saved["progress"]))["iteration"])


def twice(values: list[int]) -> int:
    return sum(n - 1 for n in Counter(values).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="MNIST")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", default="256,128")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction of the iterations")
    parser.add_argument("--out", default=None, help="campaign directory (default: a temporary)")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="campaign-resume-"))
    campaign = {
        "name": "campaign resume check",
        "dataset": args.dataset,
        "seeds": "1",
        "fixed": {"hidden": args.hidden, "epochs": args.epochs, "lr": 3e-4, "init": 0.1},
        "settings": SETTINGS,
    }
    path = out.with_name(out.name + ".yaml")
    path.write_text(yaml.safe_dump(campaign))
    command = [sys.executable, "-m", "binary_nn.repeat", str(path), "--out", str(out),
               "--processes", str(args.processes), "--no-progress"]  # fmt: skip
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    runs = sorted({f"{s['method']}-{s['hidden_act']}-{'binary' if s['binarize'] else 'real'}"
                   for s in SETTINGS})  # fmt: skip
    run_dirs = [out / name / "seed-1" for name in runs]

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    total = None
    while first.poll() is None:
        time.sleep(0.05)
        done = sum(len(logged(run)[1]) for run in run_dirs)
        if total is None:
            per_epoch = [n for n in map(iterations_per_epoch, run_dirs) if n]
            if per_epoch:
                total = per_epoch[0] * args.epochs * len(run_dirs)
        if total is not None and done >= args.kill_at * total:
            first.send_signal(signal.SIGTERM)
            break
    first.wait()
    at_stop = {run: logged(run) for run in run_dirs}
    resumes_from = {run: checkpoint_iteration(run) for run in run_dirs}
    started = time.perf_counter()
    second = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rerun_s = time.perf_counter() - started
    at_end = {run: logged(run) for run in run_dirs}

    done_at_stop = sum(len(i) for _, i in at_stop.values())
    print(f"{args.dataset}, {len(run_dirs)} runs x {args.epochs} epochs, hidden {args.hidden}, "
          f"{args.processes} processes: SIGTERM after {done_at_stop} of {total} iterations "
          f"({done_at_stop / (total or 1):.0%}); exit codes {first.returncode} then "
          f"{second.returncode}; the second command took {rerun_s:.1f} s\n")  # fmt: skip
    print("| run | epochs at the stop | iterations at the stop | checkpoint's iteration "
          "| epochs at the end | iterations at the end | epochs logged twice "
          "| iterations logged twice | status |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for run in run_dirs:
        (e0, i0), (e1, i1) = at_stop[run], at_end[run]
        summary = run / "summary.json"
        status = json.loads(summary.read_text())["status"] if summary.exists() else "-"
        resumed = "-" if resumes_from[run] is None else resumes_from[run]
        print(f"| {run.parent.name} | {len(e0)} | {len(i0)} | {resumed} "
              f"| {len(e1)} | {len(i1)} "
              f"| {twice(e1)} | {twice(i1)} | {status} |")  # fmt: skip


if __name__ == "__main__":
    main()
