"""Nothing lost, nothing hangs: run directories are claimed, never silently overwritten, and
a closed stdout does not stop training."""

import fcntl
import json
import subprocess
import sys
from pathlib import Path

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
    assert "cannot write the run directory" in one_sentence(capsys)


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
