"""A run stopped at any moment — before its first checkpoint, in the middle of one, between
epochs, during its resume — and resumed (again and again) ends as the uninterrupted run:
the same metrics (times aside) and the same final weights, float64, bit for bit."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from processes import communicate_scaled
from test_lifecycle import records

from binary_nn.train import main as train_main

ARGS = [
    "-m", "DFA", "--hidden", "64,32", "--bn", "--binarize", "--hidden-act", "signsat",
    "--lr", "1e-3", "--val-split", "0.1", "--alignment-every", "40", "--checkpoint-every", "7",
    "-b", "8", "--seed", "11", "-e", "3", "--dtype", "float64",
]  # fmt: skip
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)


def interrupted_while_importing(err: bytes) -> bool:
    """Whether a traceback is Python's own for a Ctrl-C that landed while the interpreter was
    still importing the command's modules (compiling them, numba decorating its kernels),
    before the command's ``main`` started: no command can catch that one, it has not begun."""
    text = err.decode(errors="replace").strip()
    started = " in main" in text or " in run_cli" in text or " in job" in text
    return text.endswith("KeyboardInterrupt") and not started


def weights(run_dir):
    with np.load(run_dir / "checkpoint.npz") as archive:
        return {k: archive[k] for k in archive.files if k not in ("config", "progress")}


def summary_scores(run_dir):
    """summary.json without the times and where the run is."""
    summary = json.loads((run_dir / "summary.json").read_text())
    return {k: v for k, v in summary.items() if not k.startswith("time/") and k != "run_dir"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    assert train_main([*ARGS, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    "schedule",
    [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)],
)
def test_a_run_killed_at_random_moments_resumes_to_the_uninterrupted_run(
    reference, tmp_path, schedule
):
    rng = np.random.default_rng(schedule)
    out = tmp_path / "run"
    start = [sys.executable, "-m", "binary_nn.train", *ARGS, "--out", str(out)]
    resume = [sys.executable, "-m", "binary_nn.train", "--resume", str(out)]
    stops = []
    for _ in range(4):
        # what the one-sentence messages say to do: resume, or run the command again when
        # the run was stopped before it began
        command = resume if (out / "config.json").exists() else start
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 2.5))
        kill = SIGNALS[rng.integers(len(SIGNALS))]
        process.send_signal(kill)
        _, err = communicate_scaled(process, started)
        stops.append((kill.name, process.returncode))
        assert b"Traceback" not in err or interrupted_while_importing(err), err.decode()
        leftovers = [p.name for p in out.glob(".*partial*")]
        assert len(leftovers) <= 1  # at most the one the last kill cut short
    command = ["--resume", str(out)] if (out / "config.json").exists() else start[3:]
    assert train_main(command) == 0, stops
    assert records(out) == records(reference), stops
    assert summary_scores(out) == summary_scores(reference)
    stored, expected = weights(out), weights(reference)
    assert sorted(stored) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(stored[key], value, err_msg=key)
    assert not list(out.glob(".*partial*")), "a resume leaves no temporary file behind"


SMALL = ["--hidden", "16", "--lr", "1e-3", "-e", "2", "--seed", "5", "--checkpoint-every", "10"]


def tampered(path, change):
    """Rewrite the checkpoint at ``path`` with ``change(arrays, progress)`` applied."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    progress = json.loads(str(arrays["progress"]))
    change(arrays, progress)
    arrays["progress"] = np.array(json.dumps(progress))
    np.savez(path, **arrays)


def _set(key, value):
    def change(arrays, progress):
        target = progress
        *parents, last = key.split(".")
        for parent in parents:
            target = target[parent]
        target[last] = value

    return change


def _array(key, value):
    def change(arrays, progress):
        arrays[key] = value(arrays[key])

    return change


def test_a_tampered_progress_or_optimizer_state_is_refused_in_one_sentence(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*SMALL, "--out", str(out)]) == 0
    path = out / "checkpoint.npz"
    with np.load(path) as archive:
        original = {k: archive[k] for k in archive.files}
    cases = [
        (_set("epoch", -1), "holds epoch = -1, not an integer in 0.."),
        (_set("epoch", "1"), "holds epoch = '1', not an integer"),
        (_set("loss_sum", "nan"), "holds loss_sum = 'nan', not a number"),
        (_set("selection.best", "high"), "holds best = 'high', not a number"),
        (_set("shuffle_state", {"bit_generator": "MT19937"}), "shuffle state the generator"),
        (_set("batch", 10**6), "holds batch 1000000 of an epoch of"),
        (_set("batchnorm_ready", ["yes"]), "not a list of true/false"),
        (_array("linear.0.weight", lambda a: a[:, :3]), "has shape"),
    ]
    for name in (k for k in original if k.startswith("optimizer.") and k.endswith(".step")):
        cases.append((_array(name, lambda a: np.array("x")), "not integers"))
        cases.append((_array(name, lambda a: np.array(-3)), "negative step"))
        break
    for change, says in cases:
        np.savez(path, **original)
        tampered(path, change)
        capsys.readouterr()
        assert train_main(["--resume", str(out), "-e", "3"]) == 2, says
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, (says, err)


def test_a_mid_epoch_order_that_is_not_a_permutation_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*SMALL, "--out", str(out)]) == 0
    order = np.zeros(1437, dtype=np.int64)  # every example the first one

    def mid_epoch(arrays, progress):
        arrays["progress.order"] = order
        progress["batch"] = 2

    tampered(out / "checkpoint.npz", mid_epoch)
    capsys.readouterr()
    assert train_main(["--resume", str(out), "-e", "3"]) == 2
    assert "not a permutation" in capsys.readouterr().err


def test_a_nan_in_the_optimizer_state_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*SMALL, "--optimizer", "adam", "--out", str(out)]) == 0
    path = out / "checkpoint.npz"
    key = next(k for k in np.load(path).files if k.startswith("optimizer.") and k.endswith(".m"))
    tampered(path, _array(key, lambda a: np.full_like(a, np.nan)))
    capsys.readouterr()
    assert train_main(["--resume", str(out), "-e", "3"]) == 2
    assert f"{key[len('optimizer.') :]} holds NaN" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["deleted", "cut", "nul", "grown"])
def test_a_resume_over_damaged_metrics_keeps_whole_lines_and_says_so(tmp_path, capsys, damage):
    out, whole = tmp_path / "run", tmp_path / "whole"
    assert train_main([*SMALL, "-e", "1", "--out", str(out)]) == 0
    assert train_main([*SMALL, "-e", "2", "--out", str(whole)]) == 0
    metrics = out / "metrics.jsonl"
    text = metrics.read_bytes()
    if damage == "deleted":
        metrics.unlink()
    elif damage == "cut":
        metrics.write_bytes(text[: len(text) - 7])
    elif damage == "nul":
        metrics.write_bytes(text[:100] + b"\0" * (len(text) - 100))
    else:  # grown past what the checkpoint covers: cut back silently, as after any kill
        with open(metrics, "ab") as fh:
            fh.truncate(len(text) + (1 << 30))
    capsys.readouterr()
    assert train_main(["--resume", str(out), "-e", "2"]) == 0
    err = capsys.readouterr().err
    lines = metrics.read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)  # every line whole
    if damage == "grown":
        assert err == "" and records(out) == records(whole)
    else:
        assert "warning:" in err and "the lines in between missing" in err
        assert records(out)[-1] == records(whole)[-1]  # the run went on from its checkpoint


def test_a_resume_removes_the_temporary_files_of_killed_writes(tmp_path):
    out = tmp_path / "run"
    assert train_main([*SMALL, "-e", "1", "--out", str(out)]) == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = out / f".checkpoint.npz.{dead}.partialxyz"
    stale.write_bytes(b"\0" * 1000)
    assert train_main(["--resume", str(out), "-e", "2"]) == 0
    assert not stale.exists()


def test_resuming_a_finished_or_early_stopped_run_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*SMALL, "-e", "40", "--val-split", "0.2", "--early-stopping", "1", "--out", str(out)]
    assert train_main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] and summary["epochs_completed"] < 40
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for _ in range(2):
        capsys.readouterr()
        assert train_main(["--resume", str(out)]) == 0
        said = capsys.readouterr().out
        assert "is finished" in said and "stopped early" in said and "nothing changed" in said
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # going on needs a larger --epochs: early stopping's patience then starts again
    assert train_main(["--resume", str(out), "-e", "41"]) == 0
    longer = json.loads((out / "summary.json").read_text())
    assert summary["epochs_completed"] < longer["epochs_completed"] <= 41


def test_a_run_stopped_before_its_first_checkpoint_starts_again(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*SMALL, "--out", str(out)]) == 0
    whole = records(out)
    (out / "checkpoint.npz").unlink()  # as if killed before its first one
    (out / "summary.json").write_text(json.dumps({"status": "stopped"}))
    capsys.readouterr()
    assert train_main(["--resume", str(out)]) == 0
    assert "starting it again from its beginning" in capsys.readouterr().out
    assert records(out) == whole
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train_main(["--resume", str(empty)]) == 2
    assert "stopped before it began; run its command again" in capsys.readouterr().err
