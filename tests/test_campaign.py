"""Repeated runs: settings files, parallel processes, resume after an interruption."""

import json
from pathlib import Path

import pytest
import yaml
from processes import communicate_scaled

from binary_nn.errors import ConfigError
from binary_nn.experiments.campaign import build_jobs, bundled_settings, main, read_settings
from binary_nn.experiments.jobs import parse_seeds, run_jobs

SETTINGS = {
    "name": "tiny",
    "dataset": "digits",
    "seeds": "1..2",
    "fixed": {"hidden": "16", "epochs": 1, "lr": 3e-4},
    "settings": [
        {"method": "GD", "hidden_act": "tanh", "binarize": False},
        {"method": "DRTP", "hidden_act": "signsat", "binarize": True},
    ],
}


@pytest.fixture
def settings_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(SETTINGS))
    return path


def test_bundled_settings_hold_the_published_protocol():
    assert {"mnist", "mnist_bn", "digits"} <= set(bundled_settings())
    for name in ("mnist", "mnist_bn"):
        data = read_settings(name)
        jobs = build_jobs(data, parse_seeds(str(data["seeds"])), Path("x"), {})
        assert len(jobs) == 12 * 10  # 12 best settings x seeds 2..11
        config = jobs[0].config
        assert config.epochs == 100 and config.hidden == (700, 500, 300, 200)
        assert config.weight_clipping == 1 and config.bn == (name == "mnist_bn")
        assert {j.config.seed for j in jobs} == set(range(2, 12))


def test_seeds_syntax():
    assert parse_seeds("2..5") == [2, 3, 4, 5] and parse_seeds("1,7") == [1, 7]
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("two")


def test_campaign_runs_each_setting_and_seed_in_its_own_directory(settings_file, tmp_path, capsys):
    out = tmp_path / "campaign"
    assert main([str(settings_file), "--out", str(out), "--no-progress", "-j", "2"]) == 0
    dirs = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("summary.json"))
    assert dirs == [
        "DRTP-signsat-binary/seed-1",
        "DRTP-signsat-binary/seed-2",
        "GD-tanh-real/seed-1",
        "GD-tanh-real/seed-2",
    ]
    config = json.loads((out / "GD-tanh-real" / "seed-2" / "config.json").read_text())
    assert config["seed"] == 2 and config["hidden"] == [16] and config["dataset"] == "digits"
    table = capsys.readouterr().out
    assert "GD-tanh-real" in table and "test acc mean" in table


def test_status_reads_where_each_run_stands_and_writes_nothing(settings_file, tmp_path, capsys):
    out = tmp_path / "campaign"
    assert main([str(settings_file), "--out", str(out), "--status"]) == 0
    assert not out.exists()  # read only
    assert "| GD-tanh-real/seed-1 | not started | 0 of 1 | - | - | - |" in capsys.readouterr().out
    only_gd = ["--only", "method=GD", "--seeds", "1", "--no-progress"]
    assert main([str(settings_file), "--out", str(out), *only_gd]) == 0
    capsys.readouterr()
    assert main([str(settings_file), "--out", str(out), "--status"]) == 0
    rows = {line.split(" | ")[0][2:]: line for line in capsys.readouterr().out.splitlines()[2:]}
    summary = json.loads((out / "GD-tanh-real" / "seed-1" / "summary.json").read_text())
    assert rows["GD-tanh-real/seed-1"] == (
        f"| GD-tanh-real/seed-1 | completed | 1 of 1 | 1 | - | {summary['test/accuracy']:.4f} |"
    )
    assert "| not started | 0 of 1 |" in rows["DRTP-signsat-binary/seed-2"]


def test_an_interrupted_campaign_resumes_with_only_the_missing_runs(settings_file, tmp_path):
    out = tmp_path / "campaign"
    jobs = build_jobs(read_settings(str(settings_file)), [1, 2], out, {})
    first = run_jobs(jobs, progress=False)
    assert [r.status for r in first] == ["completed"] * 4
    # a killed run leaves no summary.json; a never-started one leaves nothing
    (out / "GD-tanh-real" / "seed-2" / "summary.json").unlink()
    killed_metrics = (out / "GD-tanh-real" / "seed-2" / "metrics.jsonl").stat().st_mtime_ns
    for path in (out / "DRTP-signsat-binary" / "seed-1").iterdir():
        path.unlink()
    untouched = (out / "GD-tanh-real" / "seed-1" / "metrics.jsonl").stat().st_mtime_ns
    second = run_jobs(jobs, progress=False)
    assert [r.status for r in second] == ["skipped", "completed", "completed", "skipped"]
    assert (out / "GD-tanh-real" / "seed-1" / "metrics.jsonl").stat().st_mtime_ns == untouched
    assert (out / "GD-tanh-real" / "seed-2" / "metrics.jsonl").stat().st_mtime_ns != killed_metrics
    assert [r.status for r in run_jobs(jobs, progress=False)] == ["skipped"] * 4


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path):
    data = dict(SETTINGS, _path="inline")
    data["settings"] = [
        *SETTINGS["settings"],
        {"method": "DFA", "dataset": str(tmp_path / "no.npz")},
    ]
    jobs = build_jobs(data, [1], tmp_path / "c", {})
    results = run_jobs(jobs, progress=False)
    assert [r.status for r in results] == ["completed", "completed", "failed"]
    error = json.loads((results[2].run_dir / "error.json").read_text())
    assert "does not exist" in error["error"]


def test_bad_settings_are_refused_before_any_run(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SETTINGS, "settings": [{"method": "SGD"}]}))
    assert main([str(bad), "--out", str(tmp_path / "c")]) == 2
    assert "unknown learning rule 'SGD'" in capsys.readouterr().err
    bad.write_text(yaml.safe_dump({**SETTINGS, "settings": [{"learning_rate": 1}]}))
    assert main([str(bad), "--out", str(tmp_path / "c")]) == 2
    assert "unknown configuration key(s): learning_rate" in capsys.readouterr().err
    assert main(["nonexistent"]) == 2
    assert "neither a file nor a bundled settings name" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_campaign_stopped_mid_run_resumes_without_redoing_an_epoch(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    settings = {**SETTINGS, "seeds": "1", "fixed": {"hidden": "256,128", "epochs": 8, "lr": 3e-4}}
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(settings))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "binary_nn.repeat", str(path), "--out", str(out),
               "--no-progress"]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = out / "DRTP-signsat-binary" / "seed-1" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and '"epoch": 3' not in (
        second.read_text() if second.exists() else ""
    ):
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    communicate_scaled(process, started)
    assert process.returncode == 143
    assert main([str(path), "--out", str(out), "--no-progress"]) == 0
    for run in ("GD-tanh-real", "DRTP-signsat-binary"):
        lines = (out / run / "seed-1" / "metrics.jsonl").read_text().splitlines()
        iterations = [json.loads(line)["iteration"] for line in lines if "batch/loss" in line]
        epochs = [json.loads(line)["epoch"] for line in lines if "train/loss" in line]
        assert iterations == sorted(set(iterations))  # no iteration done twice
        assert epochs == list(range(1, 9))
        assert json.loads((out / run / "seed-1" / "summary.json").read_text())["status"] == (
            "completed"
        )


@pytest.mark.parametrize("in_worker", [False, True])
def test_a_stop_asked_after_the_last_safe_point_still_stops_the_campaign(
    tmp_path, monkeypatch, in_worker
):
    # SIGTERM during a run's final evaluation: the run completes and is kept, but the
    # campaign must not go on to the next run (a pool worker waiting for one never exits)
    import multiprocessing
    import os
    import signal

    from binary_nn.cli import Terminated
    from binary_nn.experiments import jobs
    from binary_nn.run import loop
    from binary_nn.run.config import TrainConfig

    def run_finishing_after_a_sigterm(config, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # handled at once: only sets the stop request
        return {"status": "completed"}

    monkeypatch.setattr(loop, "run", run_finishing_after_a_sigterm)
    if in_worker:
        monkeypatch.setattr(multiprocessing, "parent_process", lambda: object())
    config = TrainConfig(dataset="digits", out=str(tmp_path / "run"))
    expected = SystemExit if in_worker else Terminated
    with pytest.raises(expected) as stopped:
        jobs._run_one(config, 1)
    if in_worker:
        assert stopped.value.code == 143
