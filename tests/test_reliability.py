"""Nothing lost, nothing hangs: run directories are claimed, never silently overwritten, and
a closed stdout does not stop training."""

import errno
import fcntl
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from processes import communicate_scaled

from binary_nn.experiments.jobs import Job, run_jobs
from binary_nn.run.config import TrainConfig
from binary_nn.train import main

FAST = ["-e", "1", "--hidden", "8", "--seed", "1"]


def one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_out_holding_a_run_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*FAST, "--out", str(out)]) == 0
    before = (out / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main([*FAST, "--seed", "2", "--out", str(out)]) == 2
    err = one_sentence(capsys)
    assert "already holds a run" in err and "--overwrite" in err
    assert (out / "metrics.jsonl").read_text() == before  # nothing touched
    assert main([*FAST, "--seed", "2", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 2


def test_out_that_is_a_file_or_cannot_be_made_is_one_sentence(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main([*FAST, "--out", str(a_file)]) == 2
    assert "is a file" in one_sentence(capsys)
    assert main([*FAST, "--out", str(a_file / "below")]) == 2
    assert "is a file, not a directory" in one_sentence(capsys)


def test_a_run_that_fails_before_training_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "new"
    assert main([*FAST, "-d", str(tmp_path / "missing.npz"), "--out", str(out)]) == 2
    one_sentence(capsys)
    assert not out.exists()


def test_a_directory_another_run_writes_is_refused_or_skipped(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    with open(out / ".lock", "a") as lock:  # another process holds the run directory
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main([*FAST, "--out", str(out)]) == 2
        assert "being written by another run" in one_sentence(capsys)
        config = TrainConfig(epochs=1, hidden=(8,), seed=1, out=str(out))
        (result,) = run_jobs([Job("busy", config)], progress=False)
        assert result.status == "skipped" and "another run" in result.error
    assert not (out / "metrics.jsonl").exists()
    (result,) = run_jobs([Job("free", config)], progress=False)  # the lock is gone
    assert result.status == "completed"


def test_a_campaign_rerun_with_other_flags_is_refused_naming_the_keys(tmp_path, capsys):
    from binary_nn.repeat import main as repeat_main

    args = ["digits", "--seeds", "1", "--out", str(tmp_path / "c"), "--epochs", "1"]
    assert repeat_main(args) == 0
    capsys.readouterr()
    assert repeat_main([*args[:-1], "2"]) == 2
    err = one_sentence(capsys)
    assert "another configuration" in err and "epochs: 1 there, 2 here" in err


def test_a_closed_stdout_does_not_stop_training(tmp_path):
    out = tmp_path / "run"
    command = (
        f"{sys.executable} -m binary_nn.train -e 2 --hidden 8 -v --out {out} | head -1; "
        "exit ${PIPESTATUS[0]}"
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert json.loads(Path(out / "summary.json").read_text())["status"] == "completed"


def dataset(tmp_path, name, **arrays):
    base = dict(
        x_train=np.zeros((10, 4)), y_train=np.arange(10) % 2,
        x_test=np.zeros((2, 4)), y_test=np.array([0, 1]),
    )  # fmt: skip
    base.update(arrays)
    path = tmp_path / f"{name}.npz"
    np.savez(path, **base)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y_train": np.array([0, 1] * 4 + [10**9, 0])}, "labels must be 0 .. C-1"),
        ({"x_train": np.full((10, 4), np.nan)}, "NaN or infinite values (first in row 0)"),
        ({"x_test": np.array([[0, 0, np.inf, 0]] * 2)}, "x_test holds NaN or infinite"),
        ({"x_train": np.zeros((10, 0)), "x_test": np.zeros((2, 0))}, "examples with no values"),
        ({"y_test": np.array([0, 5])}, "y_test holds label(s) 5 that y_train never has"),
    ],
)
def test_bad_data_is_one_sentence_before_any_work(tmp_path, capsys, arrays, message):
    path = dataset(tmp_path, "bad", **arrays)
    out = tmp_path / "run"
    assert main([*FAST, "-b", "2", "-d", str(path), "--out", str(out)]) == 2
    assert message in one_sentence(capsys)
    assert not out.exists()


def test_an_empty_test_split_trains_and_says_so(tmp_path, capsys):
    path = dataset(tmp_path, "empty", x_test=np.zeros((0,)), y_test=np.zeros(0, int))
    assert main([*FAST, "-b", "2", "-d", str(path), "--out", str(tmp_path / "r")]) == 0
    assert "done: no test set after 1 epoch " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--init", "inf"], "--init must be a finite number in (0, 1e+06]"),
        (["--lr", "inf"], "--lr must be a finite number > 0"),
        (["--hidden", "100000,100000"], "choose a smaller --hidden"),
    ],
)
def test_impossible_sizes_are_refused_before_allocating(tmp_path, capsys, flags, message):
    assert main(["-e", "1", *flags, "--out", str(tmp_path / "r")]) == 2
    assert message in one_sentence(capsys)


def test_a_nan_checkpoint_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "model.npz"
    assert main([*FAST, "--out", str(tmp_path / "a"), "--save", str(ckpt)]) == 0
    with np.load(ckpt) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["linear.0.weight"][0, 0] = np.nan
    np.savez(ckpt, **arrays)
    assert main([*FAST, "--load", str(ckpt), "--out", str(tmp_path / "b")]) == 2
    assert "NaN or infinite values in linear.0.weight" in one_sentence(capsys)


def test_save_to_an_unwritable_place_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = tmp_path / "run"
    assert main([*FAST, "--out", str(out), "--save", str(blocker / "model.npz")]) == 2
    assert "--save: cannot write" in one_sentence(capsys)
    assert not out.exists()  # refused before the run started
    assert main([*FAST, "--out", str(out), "--save", str(tmp_path)]) == 2
    assert "is a directory" in one_sentence(capsys)


def test_output_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert main([*FAST, "--out", str(tmp_path / "r"), "--save", str(tmp_path / "m.npz")]) == 0
    finally:
        os.umask(old)
    for name in ("r/config.json", "r/summary.json", "m.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_report_checks_its_outputs_before_writing_any(tmp_path, capsys):
    from binary_nn.report import main as report_main

    assert main([*FAST, "--out", str(tmp_path / "runs" / "a")]) == 0
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert report_main([str(tmp_path / "runs"), "--out", str(a_file)]) == 2
    assert "is a file" in one_sentence(capsys)
    out = tmp_path / "report"
    args = [str(tmp_path / "runs"), "--out", str(out), "--compare-to", "missing.md"]
    assert report_main(args) == 2
    assert "neither a file nor a bundled table" in one_sentence(capsys)
    assert not out.exists()


def test_bundled_published_tables_and_cifar_settings():
    from binary_nn.experiments.campaign import bundled_settings, read_settings
    from binary_nn.experiments.reporting import parse_published, published_table

    rows = parse_published(published_table("cifar10"))
    assert rows[("CIFAR10", True, "GD", "tanh", True)]["test/accuracy"] == "0.5107"
    assert len(parse_published(published_table("MNIST"))) == 24
    assert {"cifar10", "cifar10_bn"} <= set(bundled_settings())
    assert len(read_settings("cifar10_bn")["settings"]) == 12


def test_dry_run_prints_command_lines_that_run(tmp_path, capsys):
    from binary_nn.repeat import main as repeat_main

    assert repeat_main(["digits", "--seeds", "1", "--dry-run"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("python -m binary_nn.train --hidden 128,64 --lr 0.0003")
    words = shlex.split(first)[3:]
    out = tmp_path / "r"
    assert main([*words, "--epochs", "1", "--out", str(out), "--overwrite"]) == 0


@pytest.mark.parametrize(
    "module", ["train", "repeat", "sweep", "report", "summary", "export", "predict", "data"]
)
def test_help_shows_each_default_once_and_no_markup(module):
    result = subprocess.run(
        [sys.executable, "-m", f"binary_nn.{module}", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "``" not in text
    if module in ("repeat", "sweep"):
        assert "no progress bar" in text  # every flag says what it does


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_sentence_and_keeps_what_was_written(tmp_path, capsys, monkeypatch):
    from binary_nn.run.run_dir import RunDirectory

    out = tmp_path / "run"
    original = RunDirectory.log_epoch
    calls = []

    def log_epoch(self, metrics, epoch, iteration):
        calls.append(epoch)
        if epoch == 2:  # the disk fills up during the second epoch's write
            disk_full()
        original(self, metrics, epoch, iteration)

    monkeypatch.setattr(RunDirectory, "log_epoch", log_epoch)
    assert main(["-e", "3", "--hidden", "8", "--seed", "1", "--out", str(out)]) == 4
    err = one_sentence(capsys)
    assert "is full (No space left on device) after 1 epochs" in err
    assert [
        json.loads(x)["epoch"]
        for x in (out / "metrics.jsonl").read_text().splitlines()
        if "train/loss" in x
    ] == [1]


def test_a_full_disk_stops_a_campaign_cleanly(tmp_path, capsys, monkeypatch):
    from binary_nn.repeat import main as repeat_main
    from binary_nn.run.run_dir import RunDirectory

    monkeypatch.setattr(RunDirectory, "log_epoch", disk_full)
    out = tmp_path / "c"
    assert repeat_main(["digits", "--seeds", "1,2", "--epochs", "1", "--out", str(out)]) == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the campaign stopped" in err and "Traceback" not in err
    errors = list(out.rglob("error.json"))
    assert len(errors) == 1 and "is full" in json.loads(errors[0].read_text())["error"]


def test_chance_level_with_saturated_outputs_gets_a_hint(tmp_path, capsys):
    assert main(["-e", "3", "--lr", "1e-3", "--seed", "1", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.count("hint: training is stuck at chance level") == 1
    assert "at --lr 0.001;" in out and "try --lr 0.0001" in out
    assert main(["-e", "3", "--seed", "1", "--lr", "1e-4", "--out", str(tmp_path / "s")]) == 0
    assert "hint:" not in capsys.readouterr().out


@pytest.mark.parametrize("lr", [1e-4, 3e-6])
def test_the_stuck_hint_suggests_a_rate_below_the_one_in_force(lr):
    import io

    from binary_nn.run.console import Console

    stream = io.StringIO()
    console = Console(stream=stream)
    info = {"model_bytes": 1, "model_bytes_packed": 1, "architecture": "x", "n_parameters": 1,
            "n_classes": 10}  # fmt: skip
    console.start({"lr": lr, "epochs": 3, "method": "GD", "optimizer": "sgd"}, info)
    stuck = {"train/loss": 0.4, "train/accuracy": 0.1, "train/f1": 0.02, "time/epoch": 1.0}
    for epoch in (1, 2):
        console.log_epoch(stuck, epoch, epoch * 10)
    hint = next(line for line in stream.getvalue().splitlines() if line.startswith("hint:"))
    suggested = float(hint.rsplit("--lr ", 1)[1])
    assert suggested < lr and f"at --lr {lr:g};" in hint


def test_runs_lists_past_runs_with_their_status(tmp_path, capsys):
    from binary_nn.runs import main as runs_main

    root = tmp_path / "runs"
    assert main([*FAST, "--out", str(root / "done")]) == 0
    (root / "killed").mkdir()
    (root / "killed" / "config.json").write_text(
        json.dumps({"method": "DFA", "dataset": "digits", "epochs": 5})
    )
    capsys.readouterr()
    assert runs_main([str(root), "--json", str(tmp_path / "runs.json")]) == 0
    out = capsys.readouterr().out
    assert "| completed | digits | GD | real | tanh | 1/1 |" in out
    assert "| incomplete | digits | DFA |" in out and "2 runs under" in out
    rows = json.loads((tmp_path / "runs.json").read_text())
    assert [r["status"] for r in rows] == ["completed", "incomplete"] or [
        r["status"] for r in rows
    ] == ["incomplete", "completed"]
    assert runs_main([str(tmp_path / "nothing")]) == 2


def test_help_and_flag_errors_import_no_heavy_module():
    # --help and flag errors must be quick: scikit-learn, pandas, matplotlib, wandb, ray and
    # the downloaders are imported where they are used, not at start-up (numba, when
    # installed, brings scipy itself)
    code = (
        "import sys; from binary_nn.train import build_parser; build_parser(); "
        "heavy = [m for m in ('sklearn', 'pandas', 'matplotlib', 'wandb', 'ray', "
        "'pooch', 'requests') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_the_run_directory_is_printed_at_start_end_and_interruption(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert main([*FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith(f"run directory: {out}") and f"completed: run directory {out}" in printed
    )

    from binary_nn.run.run_dir import RunDirectory

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDirectory, "log_batch", interrupt)
    assert main([*FAST, "--out", str(tmp_path / "s")]) == 130
    captured = capsys.readouterr()
    assert f"stopped after 0 epochs: run directory {tmp_path / 's'} keeps" in captured.out
    assert f"--resume {tmp_path / 's'}" in captured.out
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["epochs_completed"] == 0


def test_binarize_last_has_both_spellings(tmp_path):
    for flag in ("--binarize_last", "--binarize-last"):
        out = tmp_path / flag
        assert main([*FAST, flag, "--out", str(out)]) == 0
        assert json.loads((out / "config.json").read_text())["binarize_last"] is True


def test_sigterm_stops_a_run_with_one_sentence_and_keeps_what_it_logged(tmp_path):
    # a batch scheduler's time limit sends SIGTERM: the run must stop like Ctrl-C, not vanish
    out = tmp_path / "r"
    command = [sys.executable, "-m", "binary_nn.train", *FAST, "-e", "100000", "--out", str(out)]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    for _ in range(600):  # until it has logged a few batches (60 s at most)
        if metrics.exists() and metrics.read_text().count("\n") > 5:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = communicate_scaled(process, started)
    assert process.returncode == 143, stderr
    assert stderr.strip().count("\n") == 0 and "terminated (SIGTERM)" in stderr
    assert f"run directory {out} keeps everything logged so far" in stdout
    assert json.loads((out / "summary.json").read_text())["status"] == "stopped"
    assert all(json.loads(line) for line in metrics.read_text().splitlines())
    assert (out / "checkpoint.npz").is_file()  # written at the stop: the run resumes from it


def test_a_convnet_whose_information_plane_cannot_fit_is_refused_before_it_starts(tmp_path, capsys):
    # 100,000 channels of 8x8: the HSIC probe's 2,000 examples alone would take ~200 GB
    out = tmp_path / "big"
    assert main(["--conv", "100000c5", "--hidden", "32", "-e", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "information plane's probe" in err and err.count("\n") == 1
    assert not out.exists()


def test_the_memory_check_respects_the_address_space_limit(tmp_path, capsys, monkeypatch):
    from binary_nn import limits

    monkeypatch.setattr(limits, "address_space_bytes", lambda: 50_000_000)
    assert main(["--hidden", "3000,3000", "-e", "1", "--out", str(tmp_path / "r")]) == 2
    assert "this process may use 50.0 MB" in capsys.readouterr().err
    monkeypatch.setattr(limits, "address_space_bytes", lambda: None)
    assert limits.available_bytes() == limits.physical_bytes()
