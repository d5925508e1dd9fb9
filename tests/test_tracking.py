"""Weights & Biases, with the real wandb package in offline mode, and its failure modes."""

import json
import sys
import types
from pathlib import Path

import pytest
from wandb_log import summarise

from binary_nn.train import main

pytest.importorskip("wandb")


def offline_run(tmp_path, monkeypatch, *extra):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    out = tmp_path / "run"
    args = [
        "-m",
        "DFA",
        "-e",
        "2",
        "--hidden",
        "16",
        "--seed",
        "1",
        "--wandb",
        "--run-name",
        "auto",
        "--out",
        str(out),
        *extra,
    ]
    assert main(args) == 0
    (log,) = out.glob("wandb/offline-run-*/run-*.wandb")
    return out, summarise(log)


def test_wandb_offline_records_config_metrics_confusion_and_hsic(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    out, logged = offline_run(tmp_path, monkeypatch)
    assert logged["run"].project == "digits custom"
    assert logged["run"].display_name == "DFA continuous tanh"
    config = logged["config"]
    assert config["method"] == "DFA" and config["seed"] == 1 and config["hidden"] == [16]
    assert config["n_parameters"] == 64 * 16 + 16 * 10
    rows = logged["history"]
    batches = [r for r in rows if "batch/loss" in r]
    epochs = [r for r in rows if "test/accuracy" in r]
    assert [r["_step"] for r in batches] == list(range(1, 2 * 11 + 1))
    assert "batch/grad_absmax/0" in batches[0]
    assert [r["epoch"] for r in epochs] == [1, 2]
    # the confusion matrix is a W&B table of (true, predicted, count): 10 x 10 rows
    assert epochs[-1]["test/confusion_matrix/_type"] == "table-file"
    assert epochs[-1]["test/confusion_matrix/nrows"] == 100
    assert "hsic/xz/0" in epochs[-1] and "hsic/zy/0" in rows[0]  # epoch 0: before training
    local = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1]["test/accuracy"] == local[-1]["test/accuracy"]


def test_wandb_honours_its_own_project_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "my-project")
    _, logged = offline_run(tmp_path, monkeypatch)
    assert logged["run"].project == "my-project"


def test_missing_wandb_is_one_sentence_and_the_run_directory_is_written(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now fails
    out = tmp_path / "run"
    assert main(["-e", "1", "--hidden", "8", "--wandb", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: --wandb needs the wandb package" in err and "Traceback" not in err
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_failed_wandb_start_is_one_sentence_and_training_goes_on(tmp_path, monkeypatch, capsys):
    def refuse(**kwargs):
        assert kwargs["settings"]["init_timeout"] <= 30  # a bounded start-up
        raise RuntimeError("api_key not configured (no-tty)")

    fake = types.SimpleNamespace(init=refuse, Settings=dict)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "run"
    assert main(["-e", "1", "--hidden", "8", "--wandb", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "W&B could not start (api_key not configured (no-tty))" in err
    assert Path(out / "summary.json").is_file()


@pytest.mark.parametrize("netrc", ["missing", "garbage"])
def test_wandb_without_a_login_never_prompts(tmp_path, monkeypatch, capsys, netrc):
    def prompt(**kwargs):
        raise AssertionError("wandb.init would ask for an account in a terminal")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=prompt, Settings=dict))
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    if netrc == "garbage":  # not even text: read as no login
        (tmp_path / "no-netrc").write_bytes(b"\xff\xfe\x00garbage\x80")
    out = tmp_path / "run"
    assert main(["-e", "1", "--hidden", "8", "--wandb", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "found no W&B login" in err
    assert (out / "summary.json").is_file()
