"""Replay bad inputs and faults against the command line; print a table (probe, exit code,
first line of the message) and a summary line.

Every probe runs the real CLI in a fresh process, in a temporary directory, without network.
A probe *behaves* when it exits with the expected code, prints no traceback, says what is
wrong in one line, and (where it matters) leaves nothing behind or keeps what was there::

    python benchmarks/probe_bad_inputs.py

Not part of the test suite (the tests check each case on its own).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

PY = sys.executable


def npz(path: Path, **changes) -> str:
    arrays = dict(
        x_train=np.zeros((10, 4)), y_train=np.arange(10) % 2,
        x_test=np.zeros((2, 4)), y_test=np.array([0, 1]),
    )  # fmt: skip
    arrays.update(changes)
    np.savez(path, **arrays)
    return str(path)


def probes(tmp: Path) -> list[tuple[str, list[str], int, Callable[[], bool] | None]]:
    """(name, arguments of python -m binary_nn.<...>, expected exit code, extra check)."""
    train = ["binary_nn.train", "-e", "1", "--hidden", "8", "--seed", "1"]
    done = tmp / "done"
    (tmp / "a_file").write_text("x")
    (tmp / "not.npz").write_text("hello")
    ckpt = tmp / "model.npz"
    subprocess.run([PY, "-m", *train, "--out", str(done), "--save", str(ckpt)],
                   capture_output=True, check=True)  # fmt: skip
    metrics_before = (done / "metrics.jsonl").read_text()
    return [
        ("unknown --method", [*train, "-m", "XYZ"], 2, None),
        ("malformed --hidden", [*train, "--hidden", "7,x"], 2, None),
        ("--epochs 0", [*train, "-e", "0"], 2, None),
        ("--init inf", [*train, "--init", "inf"], 2, None),
        ("--lr inf", [*train, "--lr", "inf"], 2, None),
        ("--lr -1", [*train, "--lr", "-1"], 2, None),
        ("--batchsize larger than the data", [*train, "-b", "100000"], 2, None),
        ("model larger than memory", [*train, "--hidden", "100000,100000"], 2, None),
        ("--streaming with DFA", [*train, "-m", "DFA", "--streaming"], 2, None),
        (
            "--out holding a run",
            [*train, "--out", str(done)],
            2,
            lambda: (done / "metrics.jsonl").read_text() == metrics_before,
        ),
        ("--out is a file", [*train, "--out", str(tmp / "a_file")], 2, None),
        ("--out below a file", [*train, "--out", str(tmp / "a_file" / "x")], 2, None),
        (
            "--save below a file",
            [*train, "--out", str(tmp / "s1"), "--save", str(tmp / "a_file" / "m.npz")],
            2,
            lambda: not (tmp / "s1").exists(),
        ),
        (
            "--load missing",
            [*train, "--load", str(tmp / "missing.npz"), "--out", str(tmp / "l1")],
            2,
            None,
        ),
        (
            "--load not an npz",
            [*train, "--load", str(tmp / "not.npz"), "--out", str(tmp / "l2")],
            2,
            None,
        ),
        (
            "--load other architecture",
            [*train, "--hidden", "9", "--load", str(ckpt), "--out", str(tmp / "l3")],
            2,
            None,
        ),
        ("--dataset unknown", [*train, "-d", "imagenet"], 2, None),
        ("--dataset not an npz", [*train, "-d", str(tmp / "not.npz")], 2, None),
        (
            "labels of 10^9",
            [
                *train,
                "-b",
                "2",
                "-d",
                npz(tmp / "big.npz", y_train=np.array([0, 1] * 4 + [10**9, 0])),
            ],
            2,
            None,
        ),
        (
            "NaN inputs",
            [*train, "-b", "2", "-d", npz(tmp / "nan.npz", x_train=np.full((10, 4), np.nan))],
            2,
            None,
        ),
        (
            "test labels unseen in training",
            [*train, "-b", "2", "-d", npz(tmp / "unseen.npz", y_test=np.array([0, 7]))],
            2,
            None,
        ),
        (
            "examples with no values",
            [
                *train,
                "-b",
                "2",
                "-d",
                npz(tmp / "zero.npz", x_train=np.zeros((10, 0)), x_test=np.zeros((2, 0))),
            ],
            2,
            None,
        ),
        (
            "an empty test split",
            [
                *train,
                "-b",
                "2",
                "--out",
                str(tmp / "e1"),
                "-d",
                npz(tmp / "empty.npz", x_test=np.zeros((0,)), y_test=np.zeros(0, int)),
            ],
            0,
            None,
        ),
        (
            "MNIST missing, no network",
            [*train, "-d", "MNIST", "--data-dir", str(tmp / "nodata")],
            2,
            lambda: not (tmp / "nodata").exists(),
        ),
        ("repeat: unknown settings", ["binary_nn.repeat", "nosuch"], 2, None),
        (
            "repeat: rerun with other epochs",
            [
                "binary_nn.repeat",
                "digits",
                "--seeds",
                "1",
                "--epochs",
                "2",
                "--out",
                str(tmp / "camp"),
            ],
            2,
            None,
        ),
        ("sweep: missing file", ["binary_nn.sweep", str(tmp / "missing.yaml")], 2, None),
        (
            "report: --out is a file",
            ["binary_nn.report", str(tmp), "--out", str(tmp / "a_file")],
            2,
            None,
        ),
        (
            "report: --compare-to missing",
            ["binary_nn.report", str(tmp), "--out", str(tmp / "rep"), "--compare-to", "nope.md"],
            2,
            lambda: not (tmp / "rep").exists(),
        ),
        ("predict: not a model", ["binary_nn.predict", str(tmp / "not.npz")], 2, None),
        (
            "export: C of a tanh net",
            ["binary_nn.export", str(ckpt), "--out", str(tmp / "c"), "--format", "c"],
            2,
            None,
        ),
        ("runs: not a directory", ["binary_nn.runs", str(tmp / "a_file")], 2, None),
        ("summary: bad flag", ["binary_nn.summary", "--bn", "--hidden", "0"], 2, None),
        ("data: unknown dataset", ["binary_nn.data", "verify", "imagenet"], 2, None),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        # a campaign made with --epochs 1, so that the rerun above differs
        subprocess.run([PY, "-m", "binary_nn.repeat", "digits", "--seeds", "1", "--epochs", "1",
                        "--out", str(tmp / "camp"), "--no-progress"],
                       capture_output=True, check=True)  # fmt: skip
        rows, behaved = [], 0
        cases = probes(tmp)
        for title, args, expected, check in cases:
            result = subprocess.run(
                [PY, "-m", *args], capture_output=True, text=True, cwd=tmp, timeout=300,
                env={"PATH": "/usr/bin:/bin", "HOME": str(tmp), "BINARY_NN_DATA": str(tmp / "d")},
            )  # fmt: skip
            err = result.stderr.strip()
            lines = [line for line in err.splitlines() if "warning" not in line.lower()]
            one_line = len(lines) <= 1
            traceback = "Traceback" in err
            ok = result.returncode == expected and one_line and not traceback
            ok = ok and (check is None or check())
            behaved += ok
            message = (lines[-1] if lines else result.stdout.strip().splitlines()[-1])[:150]
            message = message.replace("|", "/")
            rows.append(f"| {title} | {result.returncode} | {'yes' if ok else 'NO'} | {message} |")
    print("| probe | exit code | behaved | message |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{behaved} of {len(cases)} probes behaved")


if __name__ == "__main__":
    main()
