"""The training command end to end on digits: learning, outputs, seeds, checkpoints."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from binary_nn.run.build import build
from binary_nn.run.checkpoint import save_checkpoint
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import run
from binary_nn.run.probes import Evaluation
from binary_nn.train import main

FAST = ["--hidden", "128,64", "--lr", "3e-4", "--seed", "1"]


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["GD", "DFA", "DRTP"])
@pytest.mark.parametrize(
    "variant", [[], ["--binarize", "--hidden-act", "signsat", "--bn", "--weight-clipping", "1"]]
)
def test_every_rule_learns_digits_through_the_cli(method, variant, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["-m", method, "-e", "8", *FAST, *variant, "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["test/accuracy"] > 0.7, summary  # chance is 0.1
    assert "done: test accuracy" in capsys.readouterr().out


def test_run_directory_holds_config_metrics_and_summary(tmp_path):
    out = tmp_path / "run"
    assert main(["-m", "DFA", "-e", "2", *FAST, "--bn", "--out", str(out), "-b", "200"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 1 and config["method"] == "DFA" and config["hidden"] == [128, 64]
    assert config["architecture"] == "64-128(bn,tanh)-64(bn,tanh)-10(tanh)"
    assert config["model_bytes"] == 4 * config["n_parameters"]
    records = read_metrics(out)
    batches = [r for r in records if "batch/loss" in r]
    epochs = [r for r in records if "train/accuracy" in r]
    assert len(batches) == 2 * (1437 // 200)  # full batches only
    assert [r["iteration"] for r in batches] == list(range(1, len(batches) + 1))
    for key in (
        "batch/saturation/0",
        "batch/preact_var/1",
        "batch/grad_var/2",
        "batch/grad_absmax/0",
    ):
        assert key in batches[0]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for key in (
        "train/precision",
        "train/f1",
        "test/accuracy",
        "test/precision",
        "test/f1",
        "hsic/xz/0",
        "hsic/zy/1",
    ):
        assert key in epochs[-1]
    matrix = np.array(epochs[-1]["test/confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 360
    assert "hsic/xz/0" in records[0] and records[0]["epoch"] == 0  # HSIC before training
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test/accuracy"] == epochs[-1]["test/accuracy"]
    assert summary["epochs_completed"] == 2


def test_same_seed_gives_identical_runs_and_other_seeds_differ(tmp_path):
    def weights(name, seed):
        ckpt = tmp_path / f"{name}.npz"
        args = ["-m", "DFA", "-e", "2", "--hidden", "32", "--seed", str(seed)]
        assert main([*args, "--out", str(tmp_path / name), "--save", str(ckpt)]) == 0
        with np.load(ckpt) as f:
            return {k: f[k] for k in f.files if k != "config"}, read_metrics(tmp_path / name)

    a, metrics_a = weights("a", 5)
    b, metrics_b = weights("b", 5)
    c, _ = weights("c", 6)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    strip = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in metrics_a]
    assert strip == [{k: v for k, v in r.items() if not k.startswith("time/")} for r in metrics_b]
    assert not np.array_equal(a["linear.0.weight"], c["linear.0.weight"])
    assert not np.array_equal(a["feedback.0"], c["feedback.0"])


def test_a_seed_is_drawn_and_reported_when_not_given(tmp_path):
    assert main(["-e", "1", "--hidden", "16", "--out", str(tmp_path / "r")]) == 0
    seed = json.loads((tmp_path / "r" / "config.json").read_text())["seed"]
    assert isinstance(seed, int)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["seed"] == seed


def test_save_then_load_round_trips_exactly(tmp_path):
    ckpt = tmp_path / "model.npz"
    args = ["-m", "DRTP", "-e", "2", "--hidden", "40,30", "--bn", "--binarize", "--seed", "3"]
    assert main([*args, "--out", str(tmp_path / "a"), "--save", str(ckpt)]) == 0
    with np.load(ckpt) as f:
        saved = {k: f[k] for k in f.files}
    assert saved["linear.0.weight"].shape == (64, 40)
    assert saved["linear.2.weight"].shape == (30, 10)
    assert saved["feedback.1"].shape == (10, 30)
    assert saved["batchnorm.1.running_var"].shape == (30,)
    assert json.loads(str(saved["config"]))["method"] == "DRTP"

    config = TrainConfig(
        method="DRTP", hidden=(40, 30), bn=True, binarize=True, seed=99, load=str(ckpt)
    ).resolved()
    exp = build(config)
    state = {**exp.model.named_state(), **exp.rule.named_state()}
    optimizer = {k for k in saved if k.startswith("optimizer.")}
    assert optimizer == {f"optimizer.{name}.step" for name in exp.model.named_parameters()}
    assert sorted(state) == sorted(k for k in saved if k != "config" and k not in optimizer)
    for key, array in state.items():
        np.testing.assert_array_equal(array, saved[key])
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert Evaluation()(exp.probe_context)["test/accuracy"] == summary["test/accuracy"]


def test_a_checkpoint_of_release_0_1_0_loads_unchanged():
    """Written by ``python -m binary_nn.train -m DFA -e 2 --hidden 16,8 --bn --binarize
    --hidden-act signsat --lr 1e-3 --seed 4`` of release 0.1.0 (test accuracy 0.46389)."""
    path = Path(__file__).parent / "data" / "release_0.1.0_dfa_bn.npz"
    config = TrainConfig(
        method="DFA", hidden=(16, 8), bn=True, binarize=True, hidden_act="signsat", load=str(path)
    ).resolved()
    exp = build(config)
    assert Evaluation()(exp.probe_context)["test/accuracy"] == pytest.approx(
        0.4638888888888889, abs=1e-12
    )
    with np.load(path) as f:
        np.testing.assert_array_equal(exp.rule.feedback[1], f["feedback.1"])


def test_load_rejects_a_checkpoint_that_does_not_match_the_flags(tmp_path, capsys):
    ckpt = tmp_path / "model.npz"
    assert (
        main(["-e", "1", "--hidden", "40", "--out", str(tmp_path / "a"), "--save", str(ckpt)]) == 0
    )
    assert (
        main(["-e", "1", "--hidden", "41", "--load", str(ckpt), "--out", str(tmp_path / "b")]) == 2
    )
    err = capsys.readouterr().err
    assert "'linear.0.weight'" in err and "(64, 41)" in err
    assert main(["-e", "1", "--hidden", "40", "--bn", "--load", str(ckpt)]) == 2
    assert "'batchnorm.0.gamma'" in capsys.readouterr().err
    assert main(["-e", "1", "--hidden", "40", "-m", "DFA", "--load", str(ckpt)]) == 2
    assert "'feedback.0'" in capsys.readouterr().err


def test_the_published_command_line_runs_on_digits(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")  # never reach a W&B server from the tests
    args = (
        "--dataset digits --method DFA --bn --init 0.001 --lr 0.0001 --hidden-act signsat "
        "-v -b 128 --epochs 2 --hidden 700,500,300,200 --binarize --weight-clipping 1 "
        "--wandb --run-name auto"
    ).split()
    assert main([*args, "--out", str(tmp_path / "pub")]) == 0
    captured = capsys.readouterr()
    assert "binarised" in captured.out and "signsat" in captured.out
    config = json.loads((tmp_path / "pub" / "config.json").read_text())
    assert config["run_name"] == "auto" and config["weight_clipping"] == 1.0
    assert config["argv"] == [*args, "--out", str(tmp_path / "pub")]


def test_default_run_directory_is_named_after_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = run(TrainConfig(epochs=1, hidden=(8,), run_name="auto", method="bp"))
    assert summary["status"] == "completed"
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.endswith("-GD-continuous-tanh")


def test_nan_blow_up_stops_with_a_message_and_keeps_the_log(tmp_path, capsys):
    out = tmp_path / "boom"
    args = ["--hidden-act", "id", "--last-act", "id", "--lr", "50", "--init", "1", "-e", "3"]
    assert main([*args, "--hidden", "64,64", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "error: the loss became" in err and "epoch 1, iteration" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and "iteration" in summary["error"]
    assert read_metrics(out)[0]["epoch"] == 0  # what was logged before is kept


def test_checkpoint_writer_is_atomic(tmp_path):
    exp = build(TrainConfig(hidden=(8,), seed=1).resolved())
    target = tmp_path / "ck.npz"
    save_checkpoint(target, exp.model, exp.rule, {})
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]


def test_help_documents_every_option():
    result = subprocess.run(
        [sys.executable, "-m", "binary_nn.train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--method",
        "--dataset",
        "--epochs",
        "--batchsize",
        "--lr",
        "--hidden",
        "--init",
        "--bn",
        "--sn",
        "--hidden-act",
        "--last-act",
        "--binarize",
        "--binarize_last",
        "--weight-clipping",
        "--weight-ste",
        "--verbose",
        "--seed",
        "--wandb",
        "--run-name",
        "--dtype",
        "--out",
        "--save",
        "--load",
        "--data-dir",
    ):
        assert flag in result.stdout


def test_bn_recalibration_sets_the_batch_average_and_leaves_training_unchanged(tmp_path):
    from binary_nn.data import load_dataset
    from binary_nn.nn.layers import BatchNorm
    from binary_nn.run.probes import BatchNormRecalibration

    config = TrainConfig(method="DFA", hidden=(16,), bn=True, seed=3, dtype="float64").resolved()
    exp = build(config, load_dataset("digits"))
    BatchNormRecalibration(3, exp.config.batchsize)(exp.probe_context)
    first = exp.model.blocks[0]
    norm = next(layer for layer in first.layers if isinstance(layer, BatchNorm))
    w = first.weight_layer.effective_weight()
    chunks = exp.dataset.chunks("train", np.float64, config.batchsize, limit=384)
    pre = [x.reshape(len(x), -1) @ w for x in chunks]
    np.testing.assert_allclose(norm.running_mean, np.mean([p.mean(0) for p in pre], 0))
    np.testing.assert_allclose(norm.running_var, np.mean([p.var(0) for p in pre], 0))
    assert norm.momentum == 0.9  # restored

    def trained(name, *extra):
        ckpt = tmp_path / f"{name}.npz"
        args = ["-d", "digits", "-m", "DFA", "-e", "2", "--hidden", "16", "--bn", "--seed", "3"]
        assert main([*args, *extra, "--out", str(tmp_path / name), "--save", str(ckpt)]) == 0
        with np.load(ckpt) as f:
            return {k: f[k] for k in f.files if "running" not in k and k != "config"}

    plain, recalibrated = trained("plain"), trained("recal", "--bn-recalibrate", "2")
    for key in plain:  # the weights: training takes batch statistics either way
        np.testing.assert_array_equal(plain[key], recalibrated[key], err_msg=key)
    assert main(["--bn-recalibrate", "-1", "-d", "digits"]) == 2


@pytest.mark.parametrize("method", ["GD", "DFA", "DRTP"])
def test_defaults_learn(method, tmp_path):
    # no flag but the rule: the default dataset, network, rate and epochs
    summary = run(TrainConfig(method=method, seed=1, out=str(tmp_path / "r")))
    assert summary["epochs_completed"] == 20 and summary["test/accuracy"] >= 0.85


def test_the_python_api_returns_the_run_dir_and_calls_callbacks(tmp_path, capsys):
    import binary_nn
    from binary_nn.run.tracker import Tracker

    seen, ends = [], []

    class Ends(Tracker):
        def finish(self, summary):
            ends.append(summary["status"])

    config = binary_nn.TrainConfig(hidden=(16,), epochs=3, seed=2, out=str(tmp_path / "r"))
    summary = binary_nn.train_run(
        config, callbacks=[lambda epoch, m: seen.append((epoch, "test/accuracy" in m)), Ends()],
        progress=True,
    )  # fmt: skip
    assert summary["run_dir"] == str(tmp_path / "r") and ends == ["completed"]
    assert [e for e, _ in seen] == [0, 1, 2, 3] and all(has for e, has in seen if e)
    assert "epoch 3:" in capsys.readouterr().out  # progress printed as the CLI prints it
    network, stored = binary_nn.load_network(tmp_path / "r" / "checkpoint.npz")
    scores = binary_nn.score_checkpoint(str(tmp_path / "r"), ["test"])
    classes = binary_nn.predict_classes(network, binary_nn.run_dataset(stored), "test")
    assert (
        scores["test/accuracy"]
        == summary["test/accuracy"]
        == (classes == binary_nn.run_dataset(stored).y_test).mean()
    )
    with pytest.raises(TypeError, match="a callback is a Tracker or a function"):
        binary_nn.train_run(config, callbacks=[42])
