"""The alignment probe: angles against known answers, the BP twin against finite differences,
and a run with the probe bit-identical to one without."""

import json

import numpy as np
import pytest
from conftest import numeric_grad

from binary_nn import DFA, GD, MSELoss, classifier
from binary_nn.data import Dataset
from binary_nn.learning import one_hot
from binary_nn.run.alignment import (
    Alignment,
    angle_degrees,
    forward_path,
    row_angles,
    rule_and_backprop,
)
from binary_nn.run.build import build
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import run
from binary_nn.run.probes import ProbeContext
from binary_nn.train import main


def test_angles_are_exact_for_parallel_vectors_and_right_elsewhere(rng):
    u = rng.normal(size=50)
    assert angle_degrees(u, u) == 0.0
    assert angle_degrees(u, 3 * u) == pytest.approx(0, abs=1e-12)  # arccos would give ~1e-6
    assert angle_degrees(u, -u) == pytest.approx(180.0)
    v = rng.normal(size=50)
    cosine = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
    assert angle_degrees(u, v) == pytest.approx(np.degrees(np.arccos(cosine)), rel=1e-12)
    assert angle_degrees(u, np.zeros(50)) is None  # no direction: null, not a random number
    rows = row_angles(np.stack([u, u]), np.stack([-u, np.zeros(50)]), np.array(0.0))
    assert rows[0] == pytest.approx(180.0) and np.isnan(rows[1])


def measure(method, **options):
    config = TrainConfig(
        method=method, dataset="digits", hidden=(24, 16), seed=3, dtype="float64", **options
    ).resolved()
    exp = build(config)
    return exp, Alignment(n_examples=64)(exp.probe_context)


@pytest.mark.parametrize("options", [{}, {"bn": True, "hidden_act": "signtanh", "binarize": True}])
def test_gd_angles_are_zero(options):
    _, metrics = measure("GD", **options)
    for k in range(2):
        assert metrics[f"align/grad/{k}"] == pytest.approx(0, abs=1e-6)
        assert metrics[f"align/signal/{k}"] == pytest.approx(0, abs=1e-6)
        assert metrics[f"align/signal_std/{k}"] == pytest.approx(0, abs=1e-6)
    assert "align/weight/0" not in metrics  # weight alignment is DFA's


def test_dfa_with_the_transposed_forward_path_is_aligned_in_a_linear_network(rng):
    network = classifier(6, [5, 4], 3, hidden_activation="id", last_activation="id", init=0.5,
                  dtype=np.float64, rng=rng)  # fmt: skip
    rule = DFA(network, rng)
    for k in range(2):
        rule.feedback[k][...] = forward_path(network, k).T
    x, labels = rng.normal(size=(20, 6)), rng.integers(0, 3, 20)
    data = Dataset("linear", x, labels, x[:0], labels[:0])
    metrics = Alignment(n_examples=20)(ProbeContext.of(network, rule, MSELoss(), data))
    for k in range(2):
        assert metrics[f"align/weight/{k}"] == pytest.approx(0, abs=1e-6)
        assert metrics[f"align/grad/{k}"] == pytest.approx(0, abs=1e-6)
        assert metrics[f"align/signal/{k}"] == pytest.approx(0, abs=1e-6)


def test_random_feedback_is_not_aligned_at_the_start():
    _, metrics = measure("DFA", init=0.5)
    assert 60 < metrics["align/weight/0"] < 120
    assert 0 < metrics["align/signal/0"] < 180


@pytest.mark.parametrize("rule_class", [DFA, GD])
def test_bp_twin_gradients_equal_finite_differences(rule_class, rng):
    network = classifier(5, [4, 3], 3, batch_norm=True, init=0.5, dtype=np.float64, rng=rng)
    x, labels = rng.normal(size=(8, 5)), rng.integers(0, 3, 8)
    twin = rule_and_backprop(network, rule_class(network, rng), MSELoss(), x, labels)
    target = one_hot(labels, 3, np.float64)

    def summed_loss():  # the error 2 (y - t) is the gradient of the summed squared error
        return float(np.sum((network.forward(x, train=True) - target) ** 2))

    for k, block in enumerate(network.hidden_blocks):
        expected = numeric_grad(summed_loss, block.weight_layer.weight.value)
        np.testing.assert_allclose(twin.bp_grads[k], expected, rtol=1e-5, atol=1e-8)


def test_flips_count_the_changed_signs():
    exp, _ = measure("DFA", binarize=True)
    probe = Alignment(n_examples=32)
    assert not any(
        k.startswith("flip/") for k in probe(exp.probe_context)
    )  # nothing to compare with yet
    weight = exp.model.hidden_blocks[1].weight_layer.weight.value
    weight.reshape(-1)[:40] *= -1  # flip 40 of the 24 * 16 signs
    flips = probe(exp.probe_context)
    assert flips["flip/1"] == pytest.approx(40 / weight.size) and flips["flip/0"] == 0


def test_saturated_layers_give_null_angles():
    # huge weights saturate every signsat pre-activation: both gradients are exactly zero
    _, metrics = measure("DFA", hidden_act="signsat", init=1000.0)
    assert metrics["align/grad/0"] is None and metrics["align/signal/0"] is None


def test_a_rule_gradient_far_smaller_than_backprops_still_has_an_angle():
    """FA's fixed matrices keep the scale the weights had at the start; once the output
    weights have grown 1e15-fold, its gradients are 1e15 times smaller than backprop's but
    exact: each is judged against its own signal's rounding noise, not backprop's."""
    exp, before = measure("FA", init=1e-3, loss="cross-entropy", last_act="id")
    output = exp.model.output_block.weight_layer.weight.value
    output *= 1e15
    after = Alignment(n_examples=64)(exp.probe_context)
    for k in range(2):
        assert before[f"align/grad/{k}"] is not None
        assert after[f"align/grad/{k}"] is not None and 0 < after[f"align/grad/{k}"] < 180


def strip(records):
    drop = ("align/", "flip/", "time/")
    return [{k: v for k, v in r.items() if not k.startswith(drop)} for r in records]


def read(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["DFA", "DRTP", "GD"])
def test_the_measurement_leaves_the_run_bit_identical(tmp_path, method):
    common = dict(
        method=method, dataset="digits", epochs=2, hidden=(32, 16), lr=3e-4, seed=7,
        dtype="float64", bn=True, binarize=True, hidden_act="signsat",
    )  # fmt: skip
    runs = {}
    for name, every in (("off", 0), ("epochs", None), ("iterations", 3)):
        exp_config = TrainConfig(**common, alignment_every=every, out=str(tmp_path / name))
        summary = run(exp_config)
        runs[name] = (read(tmp_path / name), summary)
    off, _ = runs["off"]
    assert not any(k.startswith("align/") for r in off for k in r)
    for name in ("epochs", "iterations"):
        records, summary = runs[name]
        assert strip([r for r in records if "batch/loss" in r or "train/loss" in r]) == strip(
            [r for r in off if "batch/loss" in r or "train/loss" in r]
        )
        assert summary["test/accuracy"] == runs["off"][1]["test/accuracy"]
    every_3 = [r["iteration"] for r in runs["iterations"][0] if "align/grad/0" in r]
    assert every_3[:3] == [0, 3, 6]
    epoch_ends = [r["epoch"] for r in runs["epochs"][0] if "align/grad/0" in r]
    assert epoch_ends == [0, 1, 2]


def test_cli_flags_and_bad_values(tmp_path, capsys):
    args = ["-e", "1", "--hidden", "16", "--seed", "1", "--alignment-examples", "50"]
    assert main([*args, "--alignment-every", "4", "--out", str(tmp_path / "r")]) == 0
    assert any("align/grad/0" in r and r["iteration"] == 4 for r in read(tmp_path / "r"))
    assert main([*args, "--alignment-every", "-1", "--out", str(tmp_path / "s")]) == 2
    assert "--alignment-every must be an integer >= 0" in capsys.readouterr().err
