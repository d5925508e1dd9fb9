"""Optimizers, schedules and the cross-entropy loss against formulas written out in numpy."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import numeric_grad

from binary_nn import RULES, classifier, train_step
from binary_nn.data import load_dataset
from binary_nn.learning import CrossEntropyLoss, MSELoss, one_hot
from binary_nn.learning.optim import (
    SGD,
    Adam,
    Bop,
    CaseOptimizer,
    OptimizerSettings,
    Schedule,
    make_optimizer,
)
from binary_nn.nn.layers import Parameter
from binary_nn.run.build import build
from binary_nn.run.checkpoint import load_checkpoint, save_checkpoint
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import run, train_epoch
from binary_nn.train import main as train_main


def params(rng, role="weight", shape=(5, 4)):
    return Parameter(rng.uniform(-1, 1, shape), role)


def gradients(rng, p, n):
    return [rng.normal(size=p.value.shape) for _ in range(n)]


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("decay", [0.0, 0.01])
def test_sgd_momentum_follows_torch_formula(rng, kernel_backend, nesterov, decay):
    p, lr, mu, clip = params(rng), 0.05, 0.9, 0.8
    expected, buf = p.value.copy(), np.zeros_like(p.value)
    opt = SGD([p], lr, clip, kernel_backend, momentum=mu, nesterov=nesterov, weight_decay=decay)
    for g in gradients(rng, p, 3):
        p.grad = g.copy()
        opt.step()
        g = g + decay * expected
        buf = mu * buf + g
        expected = np.clip(expected - lr * (g + mu * buf if nesterov else buf), -clip, clip)
        np.testing.assert_allclose(p.value, expected, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(p.grad + 0, p.grad)  # the gradient is left as it was


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_follows_torch_formula(rng, kernel_backend, decoupled):
    p, lr, (b1, b2), eps, wd = params(rng, "binary"), 1e-2, (0.8, 0.95), 1e-6, 0.1
    expected, m, v = p.value.copy(), np.zeros_like(p.value), np.zeros_like(p.value)
    opt = Adam([p], lr, 1.0, kernel_backend, (b1, b2), eps, wd, decoupled)
    for t, g in enumerate(gradients(rng, p, 4), start=1):
        p.grad = g.copy()
        opt.step()
        if decoupled:
            expected = expected * (1 - lr * wd)
        else:
            g = g + wd * expected
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr / (1 - b1**t)
        expected = expected - step * m / (np.sqrt(v) / math.sqrt(1 - b2**t) + eps)
        expected = np.clip(expected, -1, 1)
        np.testing.assert_allclose(p.value, expected, rtol=1e-13, atol=1e-15)
    assert opt.steps[p] == 4


def test_adam_leaves_batch_norm_parameters_out_of_weight_decay_and_clipping(rng):
    p = Parameter(np.full(3, 5.0), "scale")
    opt = Adam([p], 0.1, weight_clipping=1.0, weight_decay=0.5, decoupled=True)
    p.grad = np.zeros(3)
    opt.step()
    np.testing.assert_array_equal(p.value, 5.0)  # a zero gradient moves nothing


def test_bop_flips_where_the_momentum_agrees_and_exceeds_the_threshold(rng, kernel_backend):
    p = params(rng, "binary", (40,))
    gamma, tau = 0.3, 0.2
    m, w = np.zeros(40), np.where(p.value > 0, 1.0, -1.0)
    opt = Bop([p], tau, gamma, kernel_backend)
    total = 0
    for g in gradients(rng, p, 3):
        p.grad = g
        opt.flips = 0
        opt.step()
        m = (1 - gamma) * m + gamma * g
        flip = (np.abs(m) > tau) & (np.sign(m) == np.where(w > 0, 1, -1))
        w = np.where(flip, -w, w)
        total += int(flip.sum())
        np.testing.assert_allclose(p.value, w, rtol=1e-14)
        assert opt.flips == flip.sum()
    np.testing.assert_array_equal(np.abs(p.value), 1.0)
    assert total > 0


def test_bop_refuses_real_parameters(rng):
    with pytest.raises(ValueError, match="binary weights only"):
        Bop([params(rng, "weight")])


def test_the_bop_optimizer_routes_binary_weights_to_bop_and_the_rest_to_adam(rng):
    network = classifier(6, [5], 3, binarize=True, batch_norm=True, rng=rng, dtype=np.float64)
    opt = make_optimizer("bop", network.named_parameters(), OptimizerSettings(lr=1e-2))
    assert isinstance(opt, CaseOptimizer)
    bop, adam = opt.optimizers["bop"], opt.optimizers["adam"]
    assert [p.role for p in bop.parameters] == ["binary"]
    assert sorted(p.role for p in adam.parameters) == ["scale", "shift", "weight"]
    opt.lr = 0.5
    assert adam.lr == 0.5 and bop.threshold == 1e-8
    for p in network.parameters():
        p.grad = rng.normal(size=p.value.shape)
    opt.step()
    state = opt.state_dict()
    assert {k.split(".")[0] for k in state} == {"bop", "adam"}
    other = make_optimizer("bop", network.named_parameters(), OptimizerSettings(lr=1e-2))
    other.load_state_dict(state)
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value, state[key])


def test_schedules_give_the_rate_of_each_epoch():
    assert [Schedule("constant", 0.1, 5).rate(e) for e in (1, 5)] == [0.1, 0.1]
    step = Schedule("step", 1.0, 9, step=3, factor=0.5)
    assert [step.rate(e) for e in range(1, 8)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert Schedule("exponential", 2.0, 4, factor=0.5).rate(3) == 0.5
    cosine = Schedule("cosine", 1.0, 5, lr_min=0.1)
    assert cosine.rate(1) == 1.0  # the schedule starts at lr
    assert cosine.rate(4) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 3 / 5)) / 2)
    assert all(cosine.rate(e) > cosine.rate(e + 1) for e in range(1, 5))
    warm = Schedule("cosine", 1.0, 5, warmup=2)
    assert warm.rate(1) == pytest.approx(0.5 * cosine_value(0, 5))  # 1/2 of the schedule's
    assert warm.rate(2) == pytest.approx(1.0 * cosine_value(1, 5))  # all of it
    assert warm.rate(3) == pytest.approx(cosine_value(2, 5))


def cosine_value(e, epochs):
    return (1 + math.cos(math.pi * e / epochs)) / 2


def test_cross_entropy_error_is_the_gradient_of_the_summed_loss(rng):
    y, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    target = one_hot(labels, 4, np.float64)
    loss = CrossEntropyLoss()
    value, error = loss.value_and_error(y.copy(), target)
    p = np.exp(y) / np.exp(y).sum(axis=1, keepdims=True)
    assert value == pytest.approx(-np.log(p[np.arange(6), labels]).mean())
    summed = numeric_grad(lambda: 6 * loss.value(y, target), y)
    np.testing.assert_allclose(error, summed, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(error, p - (target + 1) / 2, atol=1e-15)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "bop"])
@pytest.mark.parametrize("rule", ["GD", "DFA", "DRTP", "DRTP-streaming"])
def test_every_rule_and_layer_kind_trains_with_every_optimizer(rng, optimizer, rule):
    network = classifier((8, 8, 1), [12], 4, conv="4c3,mp2", binarize=True, batch_norm=True,
                         hidden_activation="signsat", rng=rng, dtype=np.float64)  # fmt: skip
    before = {k: p.value.copy() for k, p in network.named_parameters().items()}
    settings = OptimizerSettings(lr=1e-2, momentum=0.5, bop_threshold=1e-6, bop_gamma=0.1)
    name, streaming = rule.split("-")[0], rule.endswith("streaming")
    learning_rule = RULES.get(name)(network, rng, streaming=streaming)
    opt = make_optimizer(optimizer, network.named_parameters(), settings)
    x, labels = rng.uniform(-1, 1, (16, 8, 8, 1)), rng.integers(0, 4, 16)
    for _ in range(3):
        loss, _ = train_step(network, learning_rule, opt, MSELoss(), x.copy(), labels)
        assert np.isfinite(loss)
    for key, p in network.named_parameters().items():
        assert not np.array_equal(p.value, before[key]), key  # every layer kind moved


def test_a_checkpoint_saved_mid_run_continues_with_the_same_optimizer_state(tmp_path):
    dataset = load_dataset("digits")
    config = TrainConfig(
        hidden=(16,), bn=True, binarize=True, hidden_act="signsat", optimizer="bop",
        bop_threshold=1e-6, bop_gamma=1e-2, lr=1e-2, seed=4, epochs=2, dtype="float64",
    ).resolved()  # fmt: skip
    first = build(config, dataset)
    train_epoch(first, 1, 0, [])
    path = tmp_path / "mid.npz"
    save_checkpoint(path, first.model, first.rule, config.to_dict(), first.optimizer)
    second = build(replace(config, seed=99), dataset)  # other weights, feedback and state
    load_checkpoint(path, second.model, second.rule, second.optimizer)
    # the same batches next (resuming the shuffle stream is the run lifecycle's part)
    first.shuffle_rng, second.shuffle_rng = np.random.default_rng(1), np.random.default_rng(1)
    train_epoch(first, 2, 0, [])
    train_epoch(second, 2, 0, [])
    for (name, a), b in zip(first.model.named_state().items(), second.model.named_state().values(),
                            strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b, err_msg=name)
    saved, restored = first.optimizer.state_dict(), second.optimizer.state_dict()
    assert saved.keys() == restored.keys()
    for key in saved:
        np.testing.assert_array_equal(saved[key], restored[key], err_msg=key)


def test_adam_with_cross_entropy_learns_digits_and_logs_its_rate(tmp_path):
    config = TrainConfig(
        optimizer="adam", lr=3e-3, lr_schedule="cosine", warmup_epochs=1, epochs=4,
        loss="cross-entropy", last_act="id", hidden=(64,), seed=1, out=str(tmp_path / "r"),
    )  # fmt: skip
    summary = run(config)
    assert summary["test/accuracy"] > 0.85  # chance is 0.1
    schedule = config.resolved().schedule()
    rates = [
        json.loads(line)["train/lr"]
        for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
        if '"train/lr"' in line
    ]
    assert rates == [schedule.rate(e) for e in range(1, 5)]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--optimizer", "adam", "--momentum", "0.9"], ["--momentum", "--optimizer sgd"]),
        (["--nesterov"], ["--nesterov", "--momentum above 0"]),
        (["--optimizer", "bop"], ["--optimizer", "--binarize"]),
        (["--bop-gamma", "0.1"], ["--bop-gamma", "--optimizer bop"]),
        (["--loss", "cross-entropy"], ["--loss", "--last-act id"]),
        (["--lr-min", "1e-5"], ["--lr-min", "--lr-schedule cosine"]),
        (["--warmup-epochs", "5", "-e", "5"], ["--warmup-epochs", "-e/--epochs"]),
        (["--no-binarize-first"], ["--binarize-first", "--binarize"]),
        (["--beta1", "1"], ["--beta1", "in [0, 1)"]),
        (["--optimizer", "lion"], ["--optimizer", "sgd, adam, adamw, bop"]),
    ],
)
def test_an_option_without_what_it_needs_is_refused_naming_both(args, named, tmp_path, capsys):
    assert train_main([*args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for name in named:
        assert name in err
    assert not (tmp_path / "r").exists()


def test_a_real_first_layer_keeps_the_pixels_layer_real(rng):
    network = classifier((8, 8, 1), [6, 5], 3, conv="4c3", binarize=True, binarize_first=False,
                         rng=rng)  # fmt: skip
    roles = [b.weight_layer.weight.role for b in network.blocks]
    assert roles == ["weight", "binary", "binary", "weight"]
    assert (
        TrainConfig(binarize=True, binarize_first=False)
        .command_line()
        .endswith("--binarize --no-binarize-first")
    )
