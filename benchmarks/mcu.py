"""Learning on a microcontroller, measured: per rule, the RAM and flash of the exported device
learner built for a Cortex-M4F, its instructions per learning step under QEMU, and its test
accuracy after one streaming pass over the training set (the host build, checked against the
Python reference), beside what ``summary`` predicts.

    python benchmarks/mcu.py --data-dir DATA          # MNIST: the table (about 15 minutes)
    python benchmarks/mcu.py --check                  # digits: exit 1 unless the emulated
                                                      # device, the host build and the Python
                                                      # reference print the same lines

Each network starts untrained (``train --epochs 0 --save``) and is exported with ``export
--format c --learn``; the image's RAM is ``.data + .bss`` plus the peak stack the harness
measures by painting, and must fit the budget given to the linker. The emulated run learns the
first 1,000 examples of the stream and predicts 1,000 test images (and prints the state's
hash); the host build and the Python reference run the whole stream.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from binary_nn.data import load_dataset
from binary_nn.data.__main__ import record_stream
from binary_nn.deploy.c_learn import Layout
from binary_nn.deploy.mcu import (
    build_host,
    build_mcu,
    run_host,
    run_mcu,
    section_sizes,
    toolchain_missing,
)
from binary_nn.deploy.online import OnlineSettings
from binary_nn.device import learner_from_checkpoint
from binary_nn.errors import ConfigError

sys.path.insert(0, str(Path(__file__).parent))
from timing import machine_header

#: the harness's own RAM: its record buffer (2 + inputs) and its number buffers
HARNESS_EXTRA = 24 + 17


@dataclass(frozen=True)
class Case:
    """One network and rule in a RAM budget."""

    hidden: str
    method: str
    streaming: bool
    ram_kib: int

    @property
    def name(self) -> str:
        return self.method + (" (streaming)" if self.streaming else "")


def untrained_checkpoint(case: Case, dataset: str, data_dir: str | None, work: Path) -> Path:
    """``train --epochs 0 --save``: the network a device starts from."""
    path = work / f"{case.method}-{case.hidden.replace(',', '-')}-{int(case.streaming)}.npz"
    command = [
        sys.executable, "-m", "binary_nn.train", "--dataset", dataset, "--hidden", case.hidden,
        "--binarize", "--sn", "--hidden-act", "signsat", "--loss", "cross-entropy",
        "--last-act", "id", "-m", case.method, "--epochs", "0", "--seed", "1",
        "--save", str(path), "--out", str(path.with_suffix("")),
    ] + (["--streaming"] if case.streaming else []) + (
        ["--data-dir", data_dir] if data_dir else []
    )  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return path


def export(checkpoint: Path, out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "binary_nn.export", str(checkpoint), "--format", "c", "--learn",
         "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip


def python_reference(checkpoint: Path, records: bytes) -> list[str]:
    return learner_from_checkpoint(checkpoint, OnlineSettings()).run_records(records)


def accuracy(lines: list[str], labels: np.ndarray) -> float:
    predictions = np.array([int(line) for line in lines if line.isdigit()])
    return float(np.mean(predictions == labels))


def measure(case: Case, args: argparse.Namespace, work: Path, pool: ProcessPoolExecutor) -> dict:
    checkpoint = untrained_checkpoint(case, args.dataset, args.data_dir, work)
    out = work / checkpoint.stem
    export(checkpoint, out)
    dataset = load_dataset(args.dataset, args.data_dir)
    full, labels = record_stream(dataset, args.learn, None, seed=1, passes=args.passes)
    short, short_labels = record_stream(dataset, 1000, args.mcu_test, seed=1)
    reference = pool.submit(python_reference, checkpoint, full)
    host = build_host(out)
    started = time.perf_counter()
    host_lines = run_host(host, full, timeout=3600)
    host_seconds = time.perf_counter() - started
    row = {
        "case": case, "host_accuracy": accuracy(host_lines, labels),
        "host_seconds": host_seconds, "state": host_lines[-1],
    }  # fmt: skip
    if toolchain_missing() is None:
        elf = build_mcu(out, case.ram_kib * 1024)
        sizes = section_sizes(elf)
        run = run_mcu(elf, short, timeout=3600)
        short_host = run_host(host, short)
        learner = learner_from_checkpoint(checkpoint, OnlineSettings())
        predicted = sum(Layout.of_learner(learner).memory().values())
        record = 2 + learner.n_inputs
        measured = sizes.get(".data", 0) + sizes.get(".bss", 0) - record - HARNESS_EXTRA
        row.update(
            mcu_equal=run.lines == short_host, mcu_lines=len(run.lines),
            mcu_accuracy=accuracy(run.lines, short_labels), flash=sizes.get(".text", 0)
            + sizes.get(".data", 0), static=measured, stack=run.measured["stack_peak_bytes"],
            predicted=predicted, instructions=run.instructions_per_step,
            instructions_max=run.measured["learn_ticks_max"] * 40, ticks_ok=run.ticks_checked,
        )  # fmt: skip
    row["reference_equal"] = reference.result() == host_lines
    return row


HEADER = (
    "| network | rule | RAM budget | RAM predicted (summary) | RAM measured (static + stack) "
    "| diff | flash | instructions / step (max) | test accuracy (host) | host = Python "
    "| Cortex-M4 = host |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(row: dict) -> str:
    case = row["case"]
    net = f"{row['inputs']}-{case.hidden.replace(',', '-')}-10"
    if "refused" in row:
        return f"| {net} | {case.name} | {case.ram_kib} KiB | {row['refused']} |"
    if "static" in row:
        total = row["static"] + row["stack"]
        mcu = (
            f"{row['predicted']:,} | {row['static']:,} + {row['stack']:,} = {total:,} | "
            f"{(total - row['predicted']) / row['predicted']:+.2%} | {row['flash']:,} | "
            f"{row['instructions'] / 1e6:.2f}M ({row['instructions_max'] / 1e6:.2f}M)"
        )
        agree = f"{'yes' if row['mcu_equal'] else 'NO'} ({row['mcu_lines']:,} lines)"
    else:
        mcu, agree = "- | - | - | - | -", "not run (no toolchain)"
    return (
        f"| {net} | {case.name} | {case.ram_kib} KiB | {mcu} | {row['host_accuracy']:.4f} "
        f"| {'yes' if row['reference_equal'] else 'NO'} | {agree} |"
    )


CASES = (
    Case("128", "GD", False, 256),
    Case("128", "DFA", False, 256),
    Case("128", "DRTP", False, 256),
    Case("128", "DRTP", True, 256),
    Case("128", "output-only", False, 256),
    Case("38", "DRTP", True, 64),
    Case("38", "DFA", False, 64),
    Case("128,64,64", "GD", False, 256),
    Case("128,64,64", "DFA", False, 256),
    Case("128,64,64", "DRTP", True, 256),
)
CHECK_CASES = (
    Case("32,16", "GD", False, 64),
    Case("32,16", "DFA", False, 64),
    Case("32,16", "DRTP", True, 64),
    Case("32,16", "output-only", False, 64),
)


def parse_case(text: str) -> Case:
    """``HIDDEN:RULE:KIB``, the rule ``DRTP-streaming`` for streaming DRTP."""
    try:
        hidden, rule, kib = text.split(":")
        streaming = rule.endswith("-streaming")
        return Case(hidden, rule.removesuffix("-streaming"), streaming, int(kib))
    except ValueError:
        raise SystemExit(f"--case {text!r} is not HIDDEN:RULE:KIB (e.g. 38:DFA:64)") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--dataset", default=None, help="default MNIST (digits with --check)")
    parser.add_argument("--learn", type=int, default=None, help="examples learned (all)")
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--mcu-test", type=int, default=1000, help="test images the device runs")
    parser.add_argument("--check", action="store_true", help="digits, a short stream: agreement")
    parser.add_argument("--only", default=None, help="run only the cases of this rule")
    parser.add_argument(
        "--case", action="append", default=[], metavar="HIDDEN:RULE:KIB",
        help="run this case instead of the table's (e.g. 38:DRTP-streaming:64); repeatable",
    )  # fmt: skip
    args = parser.parse_args()
    if args.check:
        args.dataset = args.dataset or "digits"
        args.passes = 2 if args.learn is None else args.passes
        cases = CHECK_CASES
    else:
        args.dataset = args.dataset or "MNIST"
        cases = CASES
    if args.case:
        cases = tuple(parse_case(text) for text in args.case)
    if args.only:
        cases = tuple(case for case in cases if case.method == args.only)
    missing = toolchain_missing()
    print(machine_header())
    if missing:
        print(f"the Cortex-M4F part is skipped: {missing}")
        if args.check:
            return 1
    rows = []
    inputs = int(np.prod(load_dataset(args.dataset, args.data_dir).input_shape))
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(1) as pool:
        for case in cases:  # a row as soon as it is measured
            try:
                row = measure(case, args, Path(tmp), pool)
            except ConfigError as exc:
                row = {"case": case, "refused": str(exc)}
            row["inputs"] = inputs
            rows.append(row)
            print(table_row(row), flush=True)
    if args.check:
        bad = [
            row["case"].name for row in rows
            if not (row.get("reference_equal") and row.get("mcu_equal") and row.get("ticks_ok"))
        ]  # fmt: skip
        if bad:
            print(f"the emulated device, the host build or the reference disagree: {bad}")
            return 1
        print("the emulated Cortex-M4F, the host build and the Python reference agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
