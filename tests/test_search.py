"""Random, Bayesian and early-terminated searches of a sweep file, offline (Optuna)."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml
from processes import communicate_scaled

from binary_nn.experiments.search import load_sweep, main

pytest.importorskip("optuna")

COMMAND = ["${env}", "${interpreter}", "-m", "binary_nn.train", "${args_no_boolean_flags}"]


def write(tmp_path, method="random", run_cap=6, early=True, **parameters):
    data = {
        "method": method,
        "metric": {"name": "val/accuracy", "goal": "maximize"},
        "parameters": {
            "method": {"values": ["GD", "DFA"]},
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-3},
            "hidden": {"value": "32"},
            "epochs": {"value": 6},
            "val-split": {"value": 0.2},
            "seed": {"value": 1},
            **parameters,
        },
        "command": COMMAND,
    }
    if run_cap:
        data["run_cap"] = run_cap
    if early:
        data["early_terminate"] = {"type": "hyperband", "min_iter": 2, "eta": 2}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def state(out):
    return json.loads((out / "sweep.json").read_text())


def test_a_random_search_with_early_termination_runs_its_cap_and_resumes(tmp_path, capsys):
    path, out = write(tmp_path), tmp_path / "out"
    assert main([str(path), "--out", str(out), "--seed", "3", "--no-progress"]) == 0
    first = state(out)
    statuses = [p["status"] for p in first["points"]]
    assert len(statuses) == 6 and set(statuses) <= {"completed", "terminated"}
    assert "terminated" in statuses  # the pruner stopped some runs at a bracket
    for point in first["points"]:
        summary = json.loads((out / point["name"] / "summary.json").read_text())
        assert summary["status"] == point["status"]
        epochs = 6 if point["status"] == "completed" else summary["epochs_completed"]
        assert summary["epochs_completed"] == epochs and point["epochs"] == epochs
    assert first["epochs"] < 6 * 6 and first["best"] is not None
    capsys.readouterr()
    # run again: nothing left to do
    assert main([str(path), "--out", str(out), "--seed", "3", "--no-progress"]) == 0
    assert "(0 runs by this search)" in capsys.readouterr().out
    assert state(out)["points"] == first["points"]
    # the same seed elsewhere: the same decisions
    assert main([str(path), "--out", str(tmp_path / "again"), "--seed", "3"]) == 0
    assert [p["name"] for p in state(tmp_path / "again")["points"]] == [
        p["name"] for p in first["points"]
    ]


def test_a_bayesian_search_and_a_terminated_grid(tmp_path):
    path = write(tmp_path, method="bayes", run_cap=7, early=False)
    assert main([str(path), "--out", str(tmp_path / "bayes"), "--no-progress"]) == 0
    assert [p["status"] for p in state(tmp_path / "bayes")["points"]] == ["completed"] * 7
    grid = write(tmp_path, method="grid", run_cap=None, lr={"values": [1e-5, 1e-4, 1e-3]})
    assert main([str(grid), "--out", str(tmp_path / "grid"), "--no-progress"]) == 0
    names = sorted(p["name"] for p in state(tmp_path / "grid")["points"])
    assert len(names) == len(set(names)) == 6  # every point of the grid, once


KILLED_SEARCHES = {
    "random": ({"method": "random", "run_cap": 5, "early": False}, signal.SIGTERM),
    "random+hyperband": ({"method": "random", "run_cap": 5, "early": True}, signal.SIGKILL),
    "grid+hyperband": (
        {"method": "grid", "run_cap": None, "early": True, "lr": {"values": [1e-4, 1e-3]}},
        signal.SIGTERM,
    ),
    "bayes": ({"method": "bayes", "run_cap": 4, "early": False}, signal.SIGINT),
}


@pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow)
@pytest.mark.parametrize("name", list(KILLED_SEARCHES))
def test_a_search_killed_at_random_moments_goes_on_without_redoing_an_epoch(tmp_path, name):
    """Every method, stopped twice by a signal at a random moment while a run trains, then run
    to its end: every point finishes once, and no run logs an epoch twice."""
    options, stop = KILLED_SEARCHES[name]
    path = write(tmp_path, epochs={"value": 12}, **options)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "binary_nn.sweep", str(path), "--out", str(out),
               "--seed", "2", "--no-progress"]  # fmt: skip
    rng = random.Random(name)
    for cycle in range(2):
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        # wait for the first metrics of a run this cycle trains, then a random moment more
        while time.monotonic() < deadline and process.poll() is None:
            logs = list(out.glob("*/metrics.jsonl"))
            if len(logs) > cycle and any(log.stat().st_size for log in logs):
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(stop)
        communicate_scaled(process, started)
    assert main([str(path), "--out", str(out), "--seed", "2", "--no-progress"]) == 0
    rows = state(out)["points"]
    # a trial a kill interrupted is listed as such; a later trial of its point continued it
    assert {p["status"] for p in rows} <= {"completed", "terminated", "interrupted"}
    points = [p for p in rows if p["status"] != "interrupted"]
    assert len({p["name"] for p in points}) == len(points)  # each point finished once
    assert {p["name"] for p in rows} == {p["name"] for p in points}
    assert len(points) == (4 if name == "grid+hyperband" else options["run_cap"])
    assert state(out)["epochs"] == sum(p["epochs"] for p in points)
    for point in points:
        lines = (out / point["name"] / "metrics.jsonl").read_text().splitlines()
        epochs = [json.loads(line)["epoch"] for line in lines if "train/loss" in line]
        assert epochs == list(range(1, point["epochs"] + 1))  # none done twice, none lost


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"run_cap": None, "early": False}, "needs a 'run_cap'"),
        ({"lr": {"distribution": "normal", "min": 0, "max": 1}}, "is not one of"),
        ({"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}, "min > 0"),
        ({"method": "grid", "run_cap": None}, "a grid needs 'value' or 'values'"),
    ],
)
def test_a_bad_search_file_is_refused_in_one_sentence(tmp_path, capsys, change, says):
    options = {"run_cap": 6, "early": True, **change}
    method = options.pop("method", "random")
    path = write(tmp_path, method=method, **options)
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_hyperband_needs_whole_brackets(tmp_path):
    path = write(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["early_terminate"] = {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3}
    path.write_text(yaml.safe_dump(data))
    assert load_sweep(path).early_terminate == {"min_iter": 3, "eta": 3.0}


def test_a_directory_holds_one_search_and_its_database_is_checked(tmp_path, capsys):
    path, out = write(tmp_path, run_cap=2, early=False, epochs={"value": 1}), tmp_path / "out"
    assert main([str(path), "--out", str(out), "--seed", "1", "--no-progress"]) == 0
    capsys.readouterr()
    # the same search again resumes it (nothing to run); another seed is another search
    assert main([str(path), "--out", str(out), "--seed", "1", "--no-progress"]) == 0
    assert main([str(path), "--out", str(out), "--seed", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds another search" in err and err.count("\n") == 1
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "search.db").write_bytes(b"not a database at all")
    assert main([str(path), "--out", str(garbage), "--no-progress"]) == 2
    assert "is not a study database" in capsys.readouterr().err


def test_a_metric_no_run_logs_is_said(tmp_path, capsys):
    path = write(tmp_path, run_cap=2, early=False, epochs={"value": 1})
    data = yaml.safe_load(path.read_text())
    data["metric"]["name"] = "val/acuracy"  # a typo
    path.write_text(yaml.safe_dump(data))
    assert main([str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "no run logged 'val/acuracy'" in capsys.readouterr().err
