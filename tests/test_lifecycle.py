"""A run stopped anywhere and resumed gives what the uninterrupted run gives, bit for bit."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from processes import communicate_scaled

from binary_nn.evaluate import main as evaluate_main
from binary_nn.train import main as train_main

ARGS = [
    "-m", "DFA", "--hidden", "256,128", "--bn", "--binarize", "--hidden-act", "signsat",
    "--lr", "1e-3", "--val-split", "0.1", "--alignment-every", "4", "--checkpoint-every", "5",
    "--seed", "7", "-e", "6",
]  # fmt: skip


def records(run_dir):
    """metrics.jsonl without the times, which differ from run to run."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines
    ]


def final_state(run_dir):
    with np.load(run_dir / "checkpoint.npz") as archive:
        arrays = {k: archive[k] for k in archive.files if k not in ("config", "progress")}
        progress = json.loads(str(archive["progress"]))
    for key in ("seconds", "metrics_bytes", "metrics_digest"):
        progress.pop(key)
    last = progress["last_metrics"]
    progress["last_metrics"] = {k: v for k, v in last.items() if not k.startswith("time/")}
    return arrays, progress


@pytest.fixture(scope="module", params=["float32", "float64"])
def reference(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    assert train_main([*ARGS, "--dtype", request.param, "--out", str(out)]) == 0
    return request.param, out


def wait_for_iteration(path, iteration, process):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists():
            lines = path.read_text().splitlines()
            if lines and f'"iteration": {iteration},' in "".join(lines[-3:]):
                return
        time.sleep(0.002)
    raise AssertionError("the run ended before it could be stopped")


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_run_stopped_mid_epoch_and_resumed_equals_the_uninterrupted_run(
    reference, kill, tmp_path
):
    dtype, reference_dir = reference
    out = tmp_path / "run"
    command = [sys.executable, "-m", "binary_nn.train", *ARGS, "--dtype", dtype, "--out", str(out)]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_iteration(out / "metrics.jsonl", 23, process)  # in the third epoch
    process.send_signal(kill)
    communicate_scaled(process, started)
    assert process.returncode == (143 if kill == signal.SIGTERM else -9)
    stopped = json.loads((out / "summary.json").read_text()) if kill == signal.SIGTERM else None
    if stopped is not None:
        assert stopped["status"] == "stopped"
    assert train_main(["--resume", str(out)]) == 0
    assert records(out) == records(reference_dir)
    arrays, progress = final_state(out)
    expected_arrays, expected_progress = final_state(reference_dir)
    assert progress == expected_progress
    assert arrays.keys() == expected_arrays.keys()
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, expected_arrays[key], err_msg=key)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["best/metric"] == "val/accuracy"


def test_a_finished_run_is_extended_by_raising_its_epochs(tmp_path):
    out = tmp_path / "run"
    base = ["--hidden", "32", "--lr", "1e-3", "--seed", "2", "--out", str(out)]
    assert train_main([*base, "-e", "2"]) == 0
    assert train_main(["--resume", str(out), "-e", "4"]) == 0
    longer = tmp_path / "longer"
    assert train_main([*base[:-1], str(longer), "-e", "4"]) == 0
    # the same run as one of 4 epochs from the start: the schedule (constant) and the
    # shuffles agree; only the configuration's epochs differ
    assert records(out) == records(longer)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--lr", "1e-2"], "--lr 0.01 contradicts the run's 0.001"),
        (["-e", "1"], "-e/--epochs 1 is fewer than the run's 2"),
        (["--out", "elsewhere"], "--out cannot move a resumed run"),
    ],
)
def test_resume_refuses_a_flag_that_contradicts_the_run(tmp_path, capsys, args, says):
    out = tmp_path / "run"
    assert train_main(["--hidden", "16", "--lr", "1e-3", "-e", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert train_main(["--resume", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_resume_refuses_a_metrics_log_that_is_not_the_runs(tmp_path, capsys):
    """Another run's metrics.jsonl of the very same length put in place of the run's: the
    checkpoint's digest tells them apart, and nothing is changed."""
    runs = {}
    for seed in (1, 2):
        runs[seed] = tmp_path / f"run{seed}"
        args = ["--hidden", "16", "-e", "1", "--seed", str(seed), "--out", str(runs[seed])]
        assert train_main(args) == 0
    own = (runs[1] / "metrics.jsonl").read_bytes()
    other = (runs[2] / "metrics.jsonl").read_bytes()
    assert own != other
    # same length, so no cut or damage to see: only the content differs
    foreign = other[: len(own)].ljust(len(own), b" ")
    foreign = foreign[: foreign.rfind(b"\n", 0, len(own) - 1) + 1]
    foreign += b" " * (len(own) - len(foreign) - 3) + b"{}\n"
    assert len(foreign) == len(own)
    (runs[1] / "metrics.jsonl").write_bytes(foreign)
    summary = (runs[1] / "summary.json").read_bytes()
    capsys.readouterr()
    assert train_main(["--resume", str(runs[1]), "-e", "2"]) == 2
    err = capsys.readouterr().err
    assert "is not this run's log" in err and err.count("\n") == 1
    assert (runs[1] / "metrics.jsonl").read_bytes() == foreign
    assert (runs[1] / "summary.json").read_bytes() == summary
    # the run's own log back: it resumes
    (runs[1] / "metrics.jsonl").write_bytes(own)
    assert train_main(["--resume", str(runs[1]), "-e", "2"]) == 0


def test_resume_of_a_directory_without_a_checkpoint_says_so(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    assert train_main(["--resume", str(tmp_path / "old")]) == 2
    assert "holds no config.json: the run was stopped before it began" in capsys.readouterr().err


def test_validation_selects_the_best_epoch_and_early_stopping_stops(tmp_path):
    out = tmp_path / "run"
    best = tmp_path / "best.npz"
    args = ["--hidden", "32", "--lr", "1e-3", "-e", "30", "--seed", "1", "--val-split", "0.2",
            "--early-stopping", "2", "--save-best", str(best), "--out", str(out)]  # fmt: skip
    assert train_main(args) == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in lines if "val/accuracy" in r and r["epoch"] > 0]
    summary = json.loads((out / "summary.json").read_text())
    val = [r["val/accuracy"] for r in epochs]
    best_epoch = summary["best/epoch"]
    assert summary["best/val/accuracy"] == max(val) == val[best_epoch - 1]
    assert summary["best/test/accuracy"] == epochs[best_epoch - 1]["test/accuracy"]
    assert summary["stopped_early"] and len(epochs) == best_epoch + 2 < 30
    with np.load(best) as archive:
        assert json.loads(str(archive["config"]))["best_epoch"] == best_epoch
    # 1437 training examples: 20% held out, stratified (every class in both parts)
    config = json.loads((out / "config.json").read_text())
    assert config["n_train"] == 1437 - 288


def test_evaluate_reads_the_architecture_from_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--conv", "4c3,mp2", "--hidden", "16", "--bn", "--lr", "1e-3", "-e", "2",
            "--seed", "3", "--out", str(out), "--save", str(tmp_path / "model.npz")]  # fmt: skip
    assert train_main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    for source in (out, tmp_path / "model.npz"):
        target = tmp_path / f"{source.name}.json"
        assert evaluate_main([str(source), "--json", str(target)]) == 0
        printed = capsys.readouterr().out
        assert f"test accuracy {summary['test/accuracy']:.4f}" in printed
        assert json.loads(target.read_text())["test/accuracy"] == summary["test/accuracy"]


def test_a_save_that_fails_after_training_is_not_reported_completed(tmp_path, capsys, monkeypatch):
    import errno

    from binary_nn.run import loop

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "model.npz"))

    monkeypatch.setattr(loop, "save_checkpoint", full)
    out = tmp_path / "run"
    args = ["--hidden", "8", "-e", "1", "--out", str(out), "--save", str(tmp_path / "model.npz")]
    assert train_main(args) == 4
    err = capsys.readouterr().err
    assert "the disk holding" in err and "model.npz is full" in err and "--resume" in err
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"


def test_campaign_results_are_read_from_the_disk(tmp_path):
    from binary_nn.experiments.jobs import JobResult, on_disk

    run_dir = tmp_path / "done"
    assert train_main(["--hidden", "8", "-e", "1", "--out", str(run_dir)]) == 0
    # another campaign ran it: this one only saw it as skipped, without its scores
    result = on_disk([JobResult("done", run_dir, "skipped", {}, None)])[0]
    assert result.status == "completed" and "test/accuracy" in result.summary


def test_evaluate_scores_the_validation_selected_epoch_with_the_runs_data_dir(
    tmp_path, capsys, monkeypatch
):
    from datafiles import mini_mnist, use_test_mnist

    data_dir = tmp_path / "data" / "mnist"
    data_dir.mkdir(parents=True)
    files = mini_mnist(np.random.default_rng(0), 200, 50)
    for name, content in files.items():
        (data_dir / name).write_bytes(content)
    use_test_mnist(monkeypatch, files, mirrors=[])  # nothing to download from
    monkeypatch.setenv("BINARY_NN_DATA", str(tmp_path / "elsewhere"))  # not where the data are
    out = tmp_path / "run"
    args = ["-d", "MNIST", "--data-dir", str(tmp_path / "data"), "--hidden", "16", "--lr",
            "1e-3", "-e", "6", "--seed", "3", "--val-split", "0.2", "--out", str(out)]  # fmt: skip
    assert train_main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    printed = capsys.readouterr().out.splitlines()[-1]
    assert f"test accuracy {summary['best/test/accuracy']:.4f} at epoch" in printed
    assert evaluate_main([str(out), "--split", "val", "--split", "test"]) == 0
    said = capsys.readouterr().out
    assert f"best.npz (epoch {summary['best/epoch']}, the best on val/accuracy)" in said
    assert f"val accuracy {summary['best/val/accuracy']:.4f}" in said
    assert f"test accuracy {summary['best/test/accuracy']:.4f}" in said
