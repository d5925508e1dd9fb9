"""Replay bad inputs and faults against every command; print a table (probe, exit code, whether
it behaved, first line of the message) and a summary line.

Every probe runs the real CLI in a fresh process, in a temporary directory, without network.
A probe *behaves* when it exits with the expected code (2: bad input, refused before any work;
4: a full disk; 0: the right result), prints no traceback, says what is wrong in one line, and
(where it matters) leaves nothing behind or keeps what was there. The classes, for every
command that writes: a file where a directory belongs and the reverse, a path below a file, a
name longer than the file system allows, a read-only file system and a full disk (these two
need root, to mount small tmpfs file systems; without it they are skipped and counted); and
bad inputs: malformed or wrongly shaped files, files that are not regular files, absurd sizes,
options without effect::

    python benchmarks/probe_bad_inputs.py

Not part of the test suite (the tests check each mechanism on its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PY = sys.executable
LONG = "x" * 300


@dataclass
class Probe:
    command: str
    title: str
    args: list[str]
    expected: int
    check: Callable[[], bool] | None = None
    needs_root: bool = False


def npz(path: Path, **changes: np.ndarray) -> str:
    arrays = dict(
        x_train=np.zeros((10, 4)),
        y_train=np.arange(10) % 2,
        x_test=np.zeros((2, 4)),
        y_test=np.array([0, 1]),
    )
    arrays.update(changes)
    np.savez(path, **arrays)
    return str(path)


def exists(path: Path) -> bool:
    """Whether ``path`` exists; a name too long for the file system does not."""
    try:
        return path.exists()
    except OSError:
        return False


def mount(path: Path, *options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(("size=256k", *options)), "tmpfs", str(path)],
        capture_output=True,
    )
    return done.returncode == 0


def fill(path: Path) -> None:
    """Fill a file system until it is full."""
    with open(path / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        except OSError:
            pass


def outputs(tmp: Path, ckpt: Path, done_run: Path) -> list[tuple[str, list[str], str]]:
    """(command, arguments before the output path, the output flag, kind) of every output."""
    train = ["binary_nn.train", "-e", "1", "--hidden", "8", "--seed", "1"]
    return [
        ("train --out", [*train, "--out"], "dir"),
        ("train --save", [*train, "--out", str(tmp / "t-save"), "--save"], "file"),
        (
            "train --save-best",
            [*train, "--val-split", "0.2", "--out", str(tmp / "t-best"), "--save-best"],
            "file",
        ),
        (
            "repeat --out",
            [
                "binary_nn.repeat",
                "digits",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--no-progress",
                "--out",
            ],
            "dir",
        ),
        (
            "sweep --out",
            ["binary_nn.sweep", str(tmp / "tiny.yaml"), "--no-progress", "--out"],
            "dir",
        ),
        (
            "sweep --out (a search)",
            ["binary_nn.sweep", str(tmp / "search.yaml"), "--no-progress", "--out"],
            "dir",
        ),
        ("report --out", ["binary_nn.report", str(done_run), "--out"], "dir"),
        ("export --out", ["binary_nn.export", str(ckpt), "--out"], "dir"),
        (
            "predict --predictions",
            ["binary_nn.predict", str(tmp / "packed" / "model.npz"), "--predictions"],
            "file",
        ),
        ("summary --json", ["binary_nn.summary", "--hidden", "8", "--json"], "file"),
        ("runs --json", ["binary_nn.runs", str(done_run.parent), "--json"], "file"),
        ("evaluate --json", ["binary_nn.evaluate", str(done_run), "--json"], "file"),
    ]


def output_probes(tmp: Path, ckpt: Path, done_run: Path, ro: Path, full: Path) -> list[Probe]:
    probes = []
    for name, args, kind in outputs(tmp, ckpt, done_run):
        slug = name.replace(" ", "_").replace("-", "")
        wrong_kind = tmp / "a_dir" if kind == "file" else tmp / "a_file"
        probes += [
            Probe(
                name,
                f"{'a directory' if kind == 'file' else 'a file'} given",
                [*args, str(wrong_kind)],
                2,
            ),
            Probe(name, "below a file", [*args, str(tmp / "a_file" / slug)], 2),
            Probe(
                name,
                "a name of 300 bytes",
                [*args, str(tmp / LONG)],
                2,
                lambda: not exists(tmp / LONG),
            ),
            Probe(name, "a read-only file system", [*args, str(ro / slug)], 2, needs_root=True),
            Probe(name, "a full disk", [*args, str(full / slug)], 4, needs_root=True),
        ]
    return probes


def input_probes(tmp: Path, ckpt: Path, done_run: Path) -> list[Probe]:
    train = ["binary_nn.train", "-e", "1", "--hidden", "8", "--seed", "1"]
    metrics_before = (done_run / "metrics.jsonl").read_text()
    shaped = tmp / "shaped"
    (shaped / "run").mkdir(parents=True)
    (shaped / "run" / "config.json").write_text("[1, 2, 3]")  # valid JSON, wrong shape
    os.mkfifo(tmp / "fifo.npz")
    (tmp / "data_file").write_text("x")
    (tmp / "huge.yaml").write_text(
        json.dumps(
            {
                "method": "grid",
                "metric": {"name": "test/accuracy"},
                "parameters": {
                    "lr": {"values": list(np.linspace(1e-5, 1e-3, 1000))},
                    "init": {"values": list(np.linspace(0.01, 1, 1000))},
                },
                "command": ["${interpreter}", "-m", "binary_nn.train", "${args_no_boolean_flags}"],
            }
        )
    )
    return [
        Probe("train", "unknown --method", [*train, "-m", "XYZ"], 2),
        Probe("train", "malformed --hidden", [*train, "--hidden", "7,x"], 2),
        Probe("train", "--epochs -1", [*train, "-e", "-1"], 2),
        Probe("train", "--lr inf", [*train, "--lr", "inf"], 2),
        Probe("train", "--batchsize larger than the data", [*train, "-b", "100000"], 2),
        Probe("train", "dense net larger than memory", [*train, "--hidden", "100000,100000"], 2),
        Probe("train", "conv net larger than memory", [*train, "--conv", "8192c9,8192c9"], 2),
        Probe("train", "an empty --conv token", [*train, "--conv", "4c3,,mp2"], 2),
        Probe("train", "a residual unit first", [*train, "--conv", "r4c3"], 2),
        Probe("train", "a unit after gap", [*train, "--conv", "4c3,gap,r4c3"], 2),
        Probe("train", "an empty --hidden without --conv", [*train, "--hidden", ""], 2),
        Probe("train", "--rsign without a residual unit", [*train, "--conv", "4c3", "--rsign"], 2),
        Probe(
            "train",
            "--shortcut pad where the channels shrink",
            [*train, "--conv", "8c3,r4c3", "--shortcut", "pad"],
            2,
        ),
        Probe(
            "train", "--feedback-positions with GD", [*train, "--feedback-positions", "shared"], 2
        ),
        Probe("train", "--streaming with DFA", [*train, "-m", "DFA", "--streaming"], 2),
        Probe("train", "--bn-recalibrate without --bn", [*train, "--bn-recalibrate", "5"], 2),
        Probe("train", "--weight-ste without --binarize", [*train, "--weight-ste", "sat"], 2),
        Probe(
            "train", "--momentum with adam", [*train, "--optimizer", "adam", "--momentum", "0.9"], 2
        ),
        Probe(
            "train", "--early-stopping without --val-split", [*train, "--early-stopping", "3"], 2
        ),
        Probe(
            "train",
            "--out holding a run",
            [*train, "--out", str(done_run)],
            2,
            lambda: (done_run / "metrics.jsonl").read_text() == metrics_before,
        ),
        Probe("train", "--load missing", [*train, "--load", str(tmp / "missing.npz")], 2),
        Probe("train", "--load not an npz", [*train, "--load", str(tmp / "a_file")], 2),
        Probe(
            "train", "--load other architecture", [*train, "--hidden", "9", "--load", str(ckpt)], 2
        ),
        Probe("train", "--dataset unknown", [*train, "-d", "imagenet"], 2),
        Probe("train", "--dataset a fifo", [*train, "-d", str(tmp / "fifo.npz")], 2),
        Probe(
            "train",
            "--data-dir is a file",
            [*train, "-d", "MNIST", "--data-dir", str(tmp / "data_file")],
            2,
        ),
        Probe(
            "train",
            "labels of 10^9",
            [
                *train,
                "-b",
                "2",
                "-d",
                npz(tmp / "big.npz", y_train=np.array([0, 1] * 4 + [10**9, 0])),
            ],
            2,
        ),
        Probe(
            "train",
            "NaN inputs",
            [*train, "-b", "2", "-d", npz(tmp / "nan.npz", x_train=np.full((10, 4), np.nan))],
            2,
        ),
        Probe(
            "train",
            "--resume of a wrongly shaped config.json",
            ["binary_nn.train", "--resume", str(shaped / "run")],
            2,
        ),
        Probe(
            "train",
            "--resume contradicting --lr",
            ["binary_nn.train", "--resume", str(done_run), "--lr", "0.5"],
            2,
        ),
        Probe(
            "train",
            "MNIST missing, no network",
            [*train, "-d", "MNIST", "--data-dir", str(tmp / "nodata")],
            2,
            lambda: not (tmp / "nodata").exists(),
        ),
        Probe("repeat", "unknown settings", ["binary_nn.repeat", "nosuch"], 2),
        Probe(
            "repeat",
            "rerun with other epochs",
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
        ),
        Probe("sweep", "missing file", ["binary_nn.sweep", str(tmp / "missing.yaml")], 2),
        Probe(
            "sweep", "a grid of a million points", ["binary_nn.sweep", str(tmp / "huge.yaml")], 2
        ),
        Probe(
            "report",
            "a wrongly shaped config.json only",
            ["binary_nn.report", str(shaped), "--out", str(tmp / "rep-shaped")],
            2,
        ),
        Probe(
            "report",
            "--compare-to missing",
            [
                "binary_nn.report",
                str(done_run),
                "--out",
                str(tmp / "rep"),
                "--compare-to",
                "nope.md",
            ],
            2,
            lambda: not (tmp / "rep").exists(),
        ),
        Probe("runs", "a wrongly shaped config.json", ["binary_nn.runs", str(shaped)], 0),
        Probe("runs", "not a directory", ["binary_nn.runs", str(tmp / "a_file")], 2),
        Probe(
            "export",
            "not a checkpoint",
            ["binary_nn.export", str(tmp / "a_file"), "--out", str(tmp / "e1")],
            2,
        ),
        Probe(
            "export",
            "C of a tanh net",
            ["binary_nn.export", str(ckpt), "--out", str(tmp / "c"), "--format", "c"],
            2,
        ),
        Probe(
            "export --learn",
            "the device learner of a tanh net",
            ["binary_nn.export", str(ckpt), "--out", str(tmp / "l"), "--format", "c", "--learn"],
            2,
        ),
        Probe(
            "export --learn",
            "--learn without --format c",
            ["binary_nn.export", str(ckpt), "--out", str(tmp / "l2"), "--learn"],
            2,
        ),
        Probe(
            "device",
            "a FIFO as the record stream",
            ["binary_nn.device", str(ckpt), "--records", str(tmp / "fifo.npz")],
            2,
        ),
        Probe(
            "data records",
            "a negative --learn",
            ["binary_nn.data", "records", "digits", "--out", str(tmp / "r"), "--learn", "-1"],
            2,
        ),
        Probe("predict", "not a model", ["binary_nn.predict", str(tmp / "a_file")], 2),
        Probe("predict", "a training checkpoint", ["binary_nn.predict", str(ckpt)], 2),
        Probe(
            "summary",
            "a conv net larger than memory",
            ["binary_nn.summary", "--conv", "8192c9,8192c9"],
            0,
        ),
        Probe("summary", "bad flag", ["binary_nn.summary", "--bn", "--hidden", "0"], 2),
        Probe("evaluate", "not a checkpoint", ["binary_nn.evaluate", str(tmp / "a_file")], 2),
        Probe(
            "evaluate",
            "no validation split",
            ["binary_nn.evaluate", str(done_run), "--split", "val"],
            2,
        ),
        Probe("data", "unknown dataset", ["binary_nn.data", "verify", "imagenet"], 2),
    ]


def _rewrite_npz(source: Path, target: Path, change: Callable[[dict], None]) -> Path:
    with np.load(source) as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    np.savez(target, **arrays)
    return target


def _huge_header(path: Path, key: str, beside: Path | None = None) -> Path:
    """An archive whose ``key`` declares 10**12 float64 values (8 TB) and holds a few bytes."""
    import io
    import zipfile

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        if beside is not None:
            with zipfile.ZipFile(beside) as source:
                for info in source.infolist():
                    if info.filename != f"{key}.npy":
                        archive.writestr(info.filename, source.read(info))
        archive.writestr(f"{key}.npy", buffer.getvalue() + bytes(64))
    return path


def hostile_probes(tmp: Path, ckpt: Path, done_run: Path) -> list[Probe]:
    """The classes of the stage-four replay: stops anywhere, files read back, bounded parsers."""
    hostile = tmp / "hostile"
    hostile.mkdir()
    fifo = hostile / "fifo.npz"
    os.mkfifo(fifo)
    yaml_fifo = hostile / "fifo.yaml"
    os.mkfifo(yaml_fifo)
    huge = _huge_header(hostile / "huge.npz", "linear.0.weight", beside=ckpt)
    huge_data = _huge_header(hostile / "huge_data.npz", "x_train")

    def enormous(arrays: dict) -> None:
        config = json.loads(str(arrays["config"]))
        arrays["config"] = np.array(json.dumps({**config, "hidden": [10**9]}))

    configured = _rewrite_npz(ckpt, hostile / "configured.npz", enormous)
    text = _rewrite_npz(
        ckpt, hostile / "text.npz",
        lambda a: a.update({"linear.0.weight": a["linear.0.weight"].astype(str)}),
    )  # fmt: skip
    packed = tmp / "packed" / "model.npz"
    wide = _rewrite_npz(
        packed, hostile / "float_weights.npz",
        lambda a: a.update({"layer.0.weights": a["layer.0.weights"].astype(np.float64)}),
    )  # fmt: skip
    null_header = _rewrite_npz(
        packed, hostile / "null.npz", lambda a: a.update({"header": np.array("null")})
    )
    bomb = hostile / "bomb.yaml"
    bomb.write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"l{i}: &l{i} [{', '.join(['*a' if i == 0 else f'*l{i - 1}'] * 9)}]\n"
                  for i in range(9))
        + "settings: [*l8]\n"
    )  # fmt: skip
    deep = hostile / "deep.yaml"
    deep.write_text("a: " + "[" * 2000 + "]" * 2000 + "\n")
    # a run stopped mid-epoch, its checkpoint's progress then tampered
    stopped = hostile / "stopped"
    subprocess.run(
        [PY, "-m", "binary_nn.train", "-e", "2", "--hidden", "8", "--seed", "1", "-b", "16",
         "--out", str(stopped)], capture_output=True, check=True,
    )  # fmt: skip
    tampered = hostile / "tampered"
    subprocess.run(["cp", "-r", str(stopped), str(tampered)], check=True)

    def negative_epoch(arrays: dict) -> None:
        progress = json.loads(str(arrays["progress"]))
        arrays["progress"] = np.array(json.dumps({**progress, "epoch": -1}))

    _rewrite_npz(tampered / "checkpoint.npz", tampered / "checkpoint.npz", negative_epoch)
    sweep = hostile / "inf.yaml"
    sweep.write_text(json.dumps({
        "method": "random", "run_cap": 2, "metric": {"name": "val/accuracy"},
        "early_terminate": {"type": "hyperband", "max_iter": 10**20, "s": 1},
        "parameters": {"lr": {"distribution": "uniform", "min": 1e-4, "max": 1e400}},
        "command": ["${interpreter}", "-m", "binary_nn.train", "${args_no_boolean_flags}"],
    }).replace("1e+400", "Infinity"))  # fmt: skip
    return [
        Probe("evaluate", "a FIFO as the checkpoint", ["binary_nn.evaluate", str(fifo)], 2),
        Probe(
            "export",
            "a FIFO as the checkpoint",
            ["binary_nn.export", str(fifo), "--out", str(hostile / "e")],
            2,
        ),
        Probe("evaluate", "a header declaring 8 TB", ["binary_nn.evaluate", str(huge)], 2),
        Probe(
            "train --load",
            "a header declaring 8 TB",
            ["binary_nn.train", "-e", "1", "--hidden", "8", "--load", str(huge)],
            2,
        ),
        Probe(
            "train -d",
            "a dataset header declaring 8 TB",
            ["binary_nn.train", "-e", "1", "-d", str(huge_data)],
            2,
        ),
        Probe("evaluate", "a config of hidden 10**9", ["binary_nn.evaluate", str(configured)], 2),
        Probe("evaluate", "weights stored as text", ["binary_nn.evaluate", str(text)], 2),
        Probe("predict", "float64 packed weights", ["binary_nn.predict", str(wide)], 2),
        Probe("predict", "a null packed header", ["binary_nn.predict", str(null_header)], 2),
        Probe("repeat", "a YAML alias bomb", ["binary_nn.repeat", str(bomb), "--dry-run"], 2),
        Probe("sweep", "YAML nested 2000 deep", ["binary_nn.sweep", str(deep), "--dry-run"], 2),
        Probe(
            "sweep", "a FIFO as the sweep file", ["binary_nn.sweep", str(yaml_fifo), "--dry-run"], 2
        ),
        Probe(
            "sweep", "/dev/zero as the sweep file", ["binary_nn.sweep", "/dev/zero", "--dry-run"], 2
        ),
        Probe("sweep", "infinite bounds", ["binary_nn.sweep", str(sweep), "--dry-run"], 2),
        Probe(
            "repeat",
            "4 billion seeds",
            ["binary_nn.repeat", "digits", "--seeds", "0..4000000000", "--dry-run"],
            2,
        ),
        Probe(
            "train",
            "--hidden 10**23",
            ["binary_nn.train", "--hidden", "99999999999999999999999", "-e", "1"],
            2,
        ),
        Probe("train", "--init 1e308", ["binary_nn.train", "--init", "1e308", "-e", "1"], 2),
        Probe(
            "train --resume",
            "a tampered progress",
            ["binary_nn.train", "--resume", str(tampered)],
            2,
        ),
        Probe(
            "train --resume",
            "a finished run: nothing changes",
            ["binary_nn.train", "--resume", str(stopped)],
            0,
        ),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "a_file").write_text("x")
        (tmp / "a_dir").mkdir()
        ckpt, done_run = tmp / "model.npz", tmp / "runs" / "done"
        subprocess.run(
            [
                PY,
                "-m",
                "binary_nn.train",
                "-e",
                "1",
                "--hidden",
                "8",
                "--seed",
                "1",
                "--out",
                str(done_run),
                "--save",
                str(ckpt),
            ],
            capture_output=True,
            check=True,
        )
        subprocess.run(
            [PY, "-m", "binary_nn.export", str(ckpt), "--out", str(tmp / "packed")],
            capture_output=True,
            check=True,
        )
        subprocess.run(
            [
                PY,
                "-m",
                "binary_nn.repeat",
                "digits",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--out",
                str(tmp / "camp"),
                "--no-progress",
            ],
            capture_output=True,
            check=True,
        )
        (tmp / "tiny.yaml").write_text(
            json.dumps(
                {
                    "method": "grid",
                    "metric": {"name": "test/accuracy"},
                    "parameters": {"epochs": {"value": 1}, "hidden": {"value": "8"}},
                    "command": [
                        "${interpreter}",
                        "-m",
                        "binary_nn.train",
                        "${args_no_boolean_flags}",
                    ],
                }
            )
        )
        (tmp / "search.yaml").write_text(
            json.dumps(
                {
                    "method": "random",
                    "run_cap": 2,
                    "metric": {"name": "test/accuracy"},
                    "parameters": {
                        "epochs": {"value": 1},
                        "hidden": {"value": "8"},
                        "lr": {"distribution": "uniform", "min": 1e-4, "max": 1e-3},
                    },
                    "command": [
                        "${interpreter}",
                        "-m",
                        "binary_nn.train",
                        "${args_no_boolean_flags}",
                    ],
                }
            )
        )
        ro, full = tmp / "ro", tmp / "full"
        root = False
        try:
            root = mount(ro, "ro") and mount(full)
            if root:
                fill(full)
            rows, behaved, skipped, cases = run_probes(tmp, ckpt, done_run, ro, full, root)
        finally:
            for path in (ro, full):
                subprocess.run(["umount", str(path)], capture_output=True)
    print("| command | probe | exit code | behaved | message |\n|---|---|---|---|---|")
    print("\n".join(rows))
    ran = len(cases) - skipped
    note = f" ({skipped} skipped: they need root to mount test file systems)" if skipped else ""
    print(f"\n{behaved} of {ran} probes behaved{note}")


def run_probes(
    tmp: Path, ckpt: Path, done_run: Path, ro: Path, full: Path, root: bool
) -> tuple[list[str], int, int, list[Probe]]:
    """Run every probe; the table's rows, how many behaved and were skipped, the probes."""
    cases = [
        *output_probes(tmp, ckpt, done_run, ro, full),
        *input_probes(tmp, ckpt, done_run),
        *hostile_probes(tmp, ckpt, done_run),
    ]
    rows, behaved, skipped = [], 0, 0
    for probe in cases:
        if probe.needs_root and not root:
            skipped += 1
            continue
        result = subprocess.run(
            [PY, "-m", *probe.args],
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=300,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp), "BINARY_NN_DATA": str(tmp / "d")},
        )
        err = result.stderr.strip()
        lines = [line for line in err.splitlines() if "warning" not in line.lower()]
        ok = (
            result.returncode == probe.expected
            and len(lines) <= 1
            and "Traceback" not in err
            and (probe.check is None or probe.check())
        )
        behaved += ok
        out = result.stdout.strip().splitlines()
        message = (lines[-1] if lines else out[-1] if out else "")[:140]
        rows.append(
            f"| {probe.command} | {probe.title} | {result.returncode} "
            f"| {'yes' if ok else 'NO'} | {message.replace('|', '/')} |"
        )
    return rows, behaved, skipped, cases


if __name__ == "__main__":
    main()
