"""Sweep files: W&B grid semantics, local and Ray executors, resume, and refusals."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from processes import communicate_scaled

from binary_nn.experiments.reporting import make_report
from binary_nn.experiments.search import build_jobs, load_sweep, main, point_args
from binary_nn.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "method": "grid",
    "metric": {"name": "train/accuracy", "goal": "maximize"},
    "parameters": {
        "method": {"values": ["GD", "DFA"]},
        "binarize": {"values": [True, False]},
        "bn": {"value": False},
        "lr": {"value": 3e-4},
        "hidden": {"value": "16"},
        "epochs": {"value": 1},
        "seed": {"value": 1},
    },
    "command": [
        "${env}",
        "${interpreter}",
        "-m",
        "binary_nn.train",
        "--sn",
        "${args_no_boolean_flags}",
    ],
}


def write(tmp_path, data, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_grid_expansion_follows_wandb_semantics(tmp_path):
    sweep = load_sweep(write(tmp_path, SMALL))
    points = sweep.points()
    assert [(p["method"], p["binarize"]) for p in points] == [
        ("GD", True),
        ("GD", False),
        ("DFA", True),
        ("DFA", False),
    ]
    assert point_args(points[0]) == [
        "--method=GD",
        "--binarize",
        "--lr=0.0003",
        "--hidden=16",
        "--epochs=1",
        "--seed=1",
    ]  # false booleans left out
    assert point_args(points[1]) == [
        "--method=GD",
        "--lr=0.0003",
        "--hidden=16",
        "--epochs=1",
        "--seed=1",
    ]
    jobs = build_jobs(sweep, tmp_path / "out")
    assert [j.name for j in jobs] == [
        "method-GD_binarize-True",
        "method-GD_binarize-False",
        "method-DFA_binarize-True",
        "method-DFA_binarize-False",
    ]
    first = jobs[0].config
    assert first.sn and first.binarize and not first.bn and first.method == "GD"
    assert first.argv[0] == "--sn" and first.out == str(tmp_path / "out" / jobs[0].name)


def test_our_points_are_the_command_lines_a_wandb_agent_builds(tmp_path, capsys):
    utils = pytest.importorskip("wandb.sdk.launch.sweeps.utils")
    sweep = load_sweep(write(tmp_path, SMALL))
    for point in sweep.points():
        agent = utils.create_sweep_command_args(
            {"args": {k: {"value": v} for k, v in point.items()}}
        )
        assert agent["args_no_boolean_flags"] == point_args(point)
    # run the CLI exactly as the agent would, its macros replaced
    point = sweep.points()[2]
    agent_args = utils.create_sweep_command_args(
        {"args": {k: {"value": v} for k, v in point.items()}}
    )
    command = []
    for chunk in SMALL["command"]:
        macro = {
            "${env}": ["/usr/bin/env"],
            "${interpreter}": ["python"],
            "${args_no_boolean_flags}": agent_args["args_no_boolean_flags"],
        }
        command += macro.get(chunk, [chunk])
    assert command[:4] == ["/usr/bin/env", "python", "-m", "binary_nn.train"]
    out = tmp_path / "agent-run"
    assert train_main([*command[4:], "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "DFA" and config["binarize"] and config["sn"]


@pytest.mark.parametrize(
    "name", ["mnist", "mnist_bn", "fashion_mnist", "fashion_mnist_bn", "cifar10", "cifar10_bn"]
)
def test_published_sweep_files(name, tmp_path):
    path = ROOT / "sweeps" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["method"] == "grid"
    assert raw["metric"] == {"name": "train/accuracy", "goal": "maximize"}
    assert raw["command"][:2] == ["${env}", "${interpreter}"]
    assert "${args_no_boolean_flags}" in raw["command"]
    assert not any("/" in str(c) for c in raw["command"])  # no hard-coded interpreter path
    sweep = load_sweep(path)
    assert len(sweep.points()) == 72
    grid = sweep.parameters
    assert grid["method"] == ["GD", "DFA", "DRTP"] and grid["init"] == [0.1, 0.001]
    assert grid["lr"] == [1e-4, 1e-5, 1e-6] and grid["hidden-act"] == ["tanh", "signsat"]
    assert grid["bn"] == [name.endswith("_bn")] and grid["weight-clipping"] == [1]
    jobs = build_jobs(sweep, tmp_path)
    assert {j.config.dataset for j in jobs} == {grid["dataset"][0]}
    assert all(j.config.hidden == (700, 500, 300, 200) and j.config.epochs == 100 for j in jobs)
    assert all(j.config.wandb for j in jobs)


def test_local_sweep_runs_in_parallel_resumes_and_feeds_the_report(tmp_path, capsys):
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    assert main([str(path), "-j", "2", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "4 completed of 4 points" in printed and "best on train/accuracy" in printed
    finished = sorted(p.parent.name for p in out.glob("*/summary.json"))
    assert len(finished) == 4
    # interrupted: one point never finished
    (out / "method-DFA_binarize-True" / "summary.json").unlink()
    assert main([str(path), "--out", str(out), "--no-progress"]) == 0
    assert "1 completed, 3 skipped of 4 points" in capsys.readouterr().out
    state = json.loads((out / "sweep.json").read_text())
    assert [p["status"] for p in state["points"]] == ["completed"] * 4  # as the disk has them
    report = make_report([str(out)], tmp_path / "report")
    assert report["runs"] == 4


@pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow)
def test_ray_executor_completes_the_same_points(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    path = write(tmp_path, SMALL)
    try:
        assert (
            main([str(path), "--executor", "ray", "--out", str(tmp_path / "ray"), "--no-progress"])
            == 0
        )
    finally:
        ray.shutdown()
    assert main([str(path), "--out", str(tmp_path / "local"), "--no-progress"]) == 0
    done = {p.parent.name for p in (tmp_path / "ray").glob("*/summary.json")}
    assert done == {p.parent.name for p in (tmp_path / "local").glob("*/summary.json")}
    assert len(done) == 4
    for name in done:  # the same seeds give the same runs on either executor
        a = json.loads((tmp_path / "ray" / name / "summary.json").read_text())
        b = json.loads((tmp_path / "local" / name / "summary.json").read_text())
        assert a["train/accuracy"] == b["train/accuracy"]


def test_a_failed_point_is_recorded_and_the_others_go_on(tmp_path, capsys):
    data = json.loads(json.dumps(SMALL))
    data["parameters"]["dataset"] = {"values": ["digits", str(tmp_path / "missing.npz")]}
    data["parameters"]["method"] = {"value": "DRTP"}
    data["parameters"]["binarize"] = {"value": False}
    out = tmp_path / "out"
    assert main([str(write(tmp_path, data)), "--out", str(out), "--no-progress"]) == 1
    (failed,) = [p for p in out.iterdir() if (p / "error.json").exists()]
    assert "does not exist" in json.loads((failed / "error.json").read_text())["error"]
    assert "1 completed, 1 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("parameters"), "'parameters' is missing"),
        (lambda d: d.update(method="bayes"), "method bayes needs a 'run_cap' here"),
        (
            lambda d: d["parameters"].update(dropout={"value": 0.9}),
            "parameter 'dropout' is not a flag of binary_nn.train",
        ),
        (
            lambda d: d["parameters"].update(lr={"min": 0.1, "max": 1}),
            "parameter 'lr': a grid needs 'value' or 'values'",
        ),
        (lambda d: d["parameters"].update(lr={"values": [-1]}), "--lr must be a finite number > 0"),
        (
            lambda d: d.update(command=["python", "train.py", "${args}"]),
            "'command' must run '-m binary_nn.train'",
        ),
        (
            lambda d: d.update(command=["${interpreter}", "-m", "binary_nn.train", "${args}"]),
            "must pass the point's flags with ${args_no_boolean_flags}",
        ),
    ],
)
def test_bad_sweep_files_are_refused_before_any_run(change, message, tmp_path, capsys):
    data = json.loads(json.dumps(SMALL))
    change(data)
    out = tmp_path / "out"
    assert main([str(write(tmp_path, data)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_dry_run_lists_points(tmp_path, capsys):
    assert main([str(ROOT / "sweeps" / "digits.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "12 points" in out
    line = next(x for x in out.splitlines() if x.startswith("method-DFA_binarize-True_"))
    assert "--binarize" in shlex.split(line.split(": ", 1)[1])


def test_ctrl_c_stops_the_workers_and_keeps_finished_points(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    data = json.loads(json.dumps(SMALL))
    data["parameters"]["epochs"] = {"values": [1, 2000]}  # quick points, then endless ones
    data["parameters"]["binarize"] = {"value": False}
    path = write(tmp_path, data)
    out = tmp_path / "out"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "binary_nn.sweep",
            str(path),
            "-j",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while len(list(out.glob("*epochs-1/summary.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    while len(list(out.glob("*epochs-2000/metrics.jsonl"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = communicate_scaled(proc, started)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    status = {
        p.parent.name: json.loads(p.read_text())["status"] for p in out.glob("*/summary.json")
    }
    assert status == {
        "method-DFA_epochs-1": "completed",
        "method-GD_epochs-1": "completed",
        "method-DFA_epochs-2000": "stopped",  # checkpointed at the stop: a rerun resumes them
        "method-GD_epochs-2000": "stopped",
    }
    assert all((out / name / "checkpoint.npz").is_file() for name in status)
    # no worker left behind (multiprocessing's resource tracker may take a moment to exit)
    for _ in range(50):
        alive = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True)
        if not alive.stdout.strip():
            break
        time.sleep(0.2)
    assert alive.stdout.strip() == ""


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ({"early_terminate": {"type": "hyperband", "min_iter": float("inf")}},
         "'min_iter' must be a whole number"),
        ({"early_terminate": {"type": "hyperband", "max_iter": 9, "s": "text"}},
         "'s' must be a whole number"),
        ({"early_terminate": {"type": "hyperband", "max_iter": 10**20, "s": 1}},
         "'max_iter' must be a whole number"),
        ({"parameters": {"lr": {"distribution": "uniform", "min": 1e-4, "max": float("inf")}}},
         "'min' and 'max' must be finite numbers"),
        ({"parameters": {"lr": {"distribution": "uniform", "min": -1, "max": 0.1}}},
         "--lr must be a finite number > 0, got -1"),
        ({"parameters": {"lr": {"values": [0.1, -3]}}}, "--lr must be a finite number > 0"),
    ],
)  # fmt: skip
def test_every_number_of_a_sweep_file_is_checked_before_a_run(tmp_path, edit, says):
    from binary_nn.errors import ConfigError

    data = {
        "method": "random", "run_cap": 2, "metric": {"name": "val/accuracy"},
        "parameters": {"epochs": {"value": 1}, "lr": {"values": [1e-3]}},
        "command": ["${env}", "${interpreter}", "-m", "binary_nn.train",
                    "${args_no_boolean_flags}"],
    }  # fmt: skip
    for key, value in edit.items():
        data[key] = {**data[key], **value} if key == "parameters" else value
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_sweep(path)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a: &a [x, x, x]\n" + "".join(f"l{i}: &l{i} [*{'a' if i == 0 else f'l{i - 1}'}, "
         f"*{'a' if i == 0 else f'l{i - 1}'}, *{'a' if i == 0 else f'l{i - 1}'}]\n"
         for i in range(9)), "more than 20 YAML aliases"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "nests more than 50 levels deep"),
        ("parameters:\n  lr: {value: 1}\n   bad: indent\n", "is not valid YAML at line 3"),
    ],
)  # fmt: skip
def test_hostile_yaml_is_refused_in_one_sentence(tmp_path, text, says):
    import os

    from binary_nn.errors import ConfigError

    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_sweep(path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_sweep(fifo)
