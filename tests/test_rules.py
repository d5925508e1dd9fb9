"""Learning rules and SGD against the formulas of the behaviour spec, written out here by hand."""

import numpy as np
import pytest
from conftest import numeric_grad

from binary_nn import DFA, DRTP, GD, RULES, SGD, classifier
from binary_nn.learning import one_hot

# the rules and the optimizer are checked with the numpy and the numba kernels
pytestmark = pytest.mark.usefixtures("kernel_backend")


def make_model(rng, **kwargs):
    options = dict(hidden_activation="tanh", last_activation="tanh", dtype=np.float64, init=0.5)
    options.update(kwargs)
    return classifier(5, [4, 3], 3, rng=rng, **options)


def weight_layers(model):
    return [block.weight_layer for block in model.blocks]


def batch(rng, n=6):
    x = rng.normal(size=(n, 5))
    labels = rng.integers(0, 3, size=n)
    return x, labels, one_hot(labels, 3, np.float64), one_hot(labels, 3, np.float64, low=0)


@pytest.mark.parametrize("extras", [{}, {"batch_norm": True, "scale": True}])
def test_gd_gradients_match_finite_differences_of_the_summed_loss(rng, extras):
    model = make_model(rng, **extras)
    x, _, t, t01 = batch(rng)

    def summed_loss():  # e = 2 (y - t) is the gradient of this sum, not of the mean
        return float(np.sum((model.forward(x, train=True) - t) ** 2))

    GD(model).backward(2 * (model.forward(x, train=True) - t), t01)
    for p in model.parameters():
        np.testing.assert_allclose(p.grad, numeric_grad(summed_loss, p.value), rtol=1e-5, atol=1e-8)


def test_bp_is_an_alias_of_gd():
    assert RULES.get("bp") is GD and RULES.canonical("BP") == "GD"


def manual_direct_feedback_step(model, x, t, signal, feedback, lr, act="tanh"):
    """the behaviour spec for DFA/DRTP with no batch norm, written out: returns the new weights."""
    w1, w2, w3 = (lin.weight.value.copy() for lin in weight_layers(model))
    binary = weight_layers(model)[0].quantizer.binary
    q = (lambda w: np.where(w > 0, 1.0, -1.0)) if binary else (lambda w: w)
    if act == "tanh":
        f, df = np.tanh, lambda a: 1 - np.tanh(a) ** 2
    else:  # signsat
        f, df = (lambda a: np.where(a > 0, 1.0, -1.0)), (lambda a: (np.abs(a) < 1) * 1.0)
    a1 = x @ q(w1)
    h1 = f(a1)
    a2 = h1 @ q(w2)
    h2 = f(a2)
    y = np.tanh(h2 @ w3)
    e = 2 * (y - t)
    g3 = h2.T @ (e * (1 - y**2))
    g2 = h1.T @ ((signal(e) @ feedback[1]) * df(a2))
    g1 = x.T @ ((signal(e) @ feedback[0]) * df(a1))
    return [w1 - lr * g1, w2 - lr * g2, w3 - lr * g3]


@pytest.mark.parametrize("binarize,act", [(False, "tanh"), (True, "signsat")])
@pytest.mark.parametrize("rule_class", [DFA, DRTP])
def test_direct_feedback_step_matches_spec_formula(rule_class, binarize, act, rng):
    model = make_model(rng, binarize=binarize, hidden_activation=act)
    rule = rule_class(model, np.random.default_rng(7))
    assert [m.shape for m in rule.feedback] == [(3, 4), (3, 3)]
    assert all(np.abs(m).max() <= 1 for m in rule.feedback)
    x, _, t, t01 = batch(rng)
    signal = (lambda e: e) if rule_class is DFA else (lambda e: t01)
    expected = manual_direct_feedback_step(model, x, t, signal, rule.feedback, 0.01, act)

    optimizer = SGD(model.parameters(), lr=0.01)
    y = model.forward(x, train=True)
    rule.backward(2 * (y - t), t01)
    optimizer.step()
    for lin, w in zip(weight_layers(model), expected, strict=True):
        np.testing.assert_allclose(lin.weight.value, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule_class", [GD, DFA, DRTP])
def test_keeping_the_signals_changes_no_gradient_and_keeps_them_intact(rule_class, rng):
    # the training step lets the blocks compute in the signals' memory; alignment keeps them
    model = make_model(rng, batch_norm=True, hidden_activation="signsat")
    rule = rule_class(model, np.random.default_rng(3))
    x, _, t, t01 = batch(rng)
    error = 2 * (model.forward(x, train=True) - t)
    kept = rule.backward(error.copy(), t01, keep_signals=True)
    grads = [p.grad.copy() for p in model.parameters()]
    if rule_class is not GD:
        signal = error if rule_class is DFA else t01
        for k, received in enumerate(kept):
            np.testing.assert_array_equal(received, signal @ rule.feedback[k])
    model.forward(x, train=True)
    rule.backward(error.copy(), t01, keep_signals=False)
    for p, grad in zip(model.parameters(), grads, strict=True):
        np.testing.assert_array_equal(p.grad, grad)


def test_drtp_ignores_the_error_of_hidden_layers(rng):
    model = make_model(rng)
    rule = DRTP(model, np.random.default_rng(0))
    x, _, t, t01 = batch(rng)
    y = model.forward(x, train=True)
    rule.backward(2 * (y - t), t01)
    first = [lin.weight.grad.copy() for lin in weight_layers(model)]
    model.forward(x, train=True)
    rule.backward(np.zeros_like(y), t01)
    for k in range(2):  # hidden layers: the same update without any error
        np.testing.assert_array_equal(weight_layers(model)[k].weight.grad, first[k])
    assert np.all(weight_layers(model)[2].weight.grad == 0)


def test_feedback_matrices_are_fixed_and_seeded(rng):
    model = make_model(rng)
    a, b = DFA(model, np.random.default_rng(3)), DFA(model, np.random.default_rng(3))
    c = DFA(model, np.random.default_rng(4))
    x, _, t, t01 = batch(rng)
    before = [m.copy() for m in a.feedback]
    a.backward(2 * (model.forward(x, train=True) - t), t01)
    for m, m0, mb, mc in zip(a.feedback, before, b.feedback, c.feedback, strict=True):
        np.testing.assert_array_equal(m, m0)
        np.testing.assert_array_equal(m, mb)
        assert not np.array_equal(m, mc)


def test_sgd_updates_every_parameter_and_clips_only_weights(rng):
    model = make_model(rng, batch_norm=True, init=0.5)
    optimizer = SGD(model.parameters(), lr=0.1, weight_clipping=0.2)
    old = [p.value.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad[...] = rng.normal(size=p.grad.shape) * 10
    optimizer.step()
    for p, before in zip(model.parameters(), old, strict=True):
        expected = before - 0.1 * p.grad
        if p.kind == "weight":
            expected = np.clip(expected, -0.2, 0.2)
            assert np.abs(p.value).max() <= 0.2
        np.testing.assert_allclose(p.value, expected)
    assert any(np.abs(p.value).max() > 0.2 for p in model.parameters() if p.role == "scale")


@pytest.mark.parametrize("clipping", [0.0, 0.2])
def test_sgd_step_summarises_the_gradients_it_applies(rng, clipping):
    model = make_model(rng, batch_norm=True, init=0.5)
    twin = make_model(np.random.default_rng(0), batch_norm=True, init=0.5)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        q.value[...] = p.value
        p.grad[...] = q.grad[...] = rng.normal(size=p.grad.shape) * 10
    summaries = SGD(model.parameters(), 0.1, clipping).step(summarize_grads=True)
    assert SGD(twin.parameters(), 0.1, clipping).step() is None
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)  # the same update either way
        g = p.grad
        assert summaries[p].mean == pytest.approx(g.mean(), rel=1e-9, abs=1e-12)
        assert summaries[p].variance == pytest.approx(g.var(), rel=1e-9)
        assert summaries[p].abs_max == np.abs(g).max()


def test_sgd_without_clipping_leaves_large_weights(rng):
    model = make_model(rng)
    optimizer = SGD(model.parameters(), lr=1.0, weight_clipping=0)
    for p in model.parameters():
        p.grad[...] = 5.0
    optimizer.step()
    assert min(p.value.min() for p in model.parameters()) < -4


def test_sgd_rejects_non_positive_learning_rate(rng):
    with pytest.raises(ValueError, match="lr must be > 0"):
        SGD(make_model(rng).parameters(), lr=0)


def test_model_size_counts_binary_weights_as_bits(rng):
    model = classifier(16, [8], 2, binarize=True, dtype=np.float32, rng=rng)
    stored, packed = model.memory_bytes()
    assert stored == (16 * 8 + 8 * 2) * 4
    assert packed == 16 * 8 // 8 + 8 * 2 * 4  # hidden weights packed, output weights real
    assert model.n_parameters() == 16 * 8 + 8 * 2


def test_float32_model_computes_in_float32(rng):
    model = make_model(rng, dtype=np.float32, batch_norm=True)
    x, _, t, t01 = batch(rng)
    y = model.forward(x.astype(np.float32), train=True)
    assert y.dtype == np.float32
    DFA(model, rng).backward((2 * (y - t)).astype(np.float32), t01.astype(np.float32))
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def _binary_net(seed=0):
    from binary_nn import classifier

    return classifier(6, [5, 4], 3, binarize=True, binarize_last=True, batch_norm=True,
                      hidden_activation="signsat", dtype=np.float64,
                      rng=np.random.default_rng(seed))  # fmt: skip


def test_usf_on_binary_weights_is_backpropagation_bit_for_bit():
    from binary_nn import RULES, SGD, MSELoss, train_step

    x = np.random.default_rng(3).normal(size=(8, 6))
    labels = np.arange(8) % 3
    states = []
    for name in ("GD", "uSF"):
        network = _binary_net()
        rule = RULES.get(name)(network, np.random.default_rng(1))
        optimizer = SGD(network.parameters(), 0.05)
        for _ in range(3):
            train_step(network, rule, optimizer, MSELoss(), x, labels)
        states.append({k: np.array(v) for k, v in network.named_state().items()})
    assert all(np.array_equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "binary", "ternary"])
def test_feedback_distributions(kind):
    from binary_nn.learning.rules import DFA, FA

    network = _binary_net()
    rule = DFA(network, np.random.default_rng(4), feedback=kind)
    values = np.concatenate([np.ravel(m) for m in rule.feedback])
    if kind == "uniform":  # the published draw, unchanged
        draws = np.random.default_rng(4)
        expected = [draws.uniform(-1, 1, size=(3, b.output_size)) for b in network.hidden_blocks]
        assert np.array_equal(values, np.concatenate([np.ravel(m) for m in expected]))
    elif kind == "binary":
        assert set(np.unique(values)) == {-1.0, 1.0}
    elif kind == "ternary":
        assert set(np.unique(values)) == {-1.0, 0.0, 1.0}
    else:
        assert abs(values.var() - 1 / 3) < 0.2 and len(np.unique(values)) == values.size
    fa = FA(network, np.random.default_rng(4), feedback=kind)
    assert [m.shape for m in fa.feedback] == [
        b.weight_layer.weight.value.shape for b in network.blocks[1:]
    ]


def test_the_alignment_twin_measures_against_the_true_gradient_whatever_path_a_rule_set():
    from binary_nn.learning.loss import MSELoss
    from binary_nn.learning.rules import FA, GD, USF
    from binary_nn.run.alignment import rule_and_backprop

    x = np.random.default_rng(3).normal(size=(8, 6))
    labels = np.arange(8) % 3
    network = _binary_net()
    reference = rule_and_backprop(network, GD(network), MSELoss(), x, labels)
    for rule_class in (FA, USF):
        network = _binary_net()
        rule = rule_class(network, np.random.default_rng(1))
        twin = rule_and_backprop(network, rule, MSELoss(), x, labels)
        for got, expected in zip(twin.bp_grads, reference.bp_grads, strict=True):
            np.testing.assert_array_equal(got, expected)  # the twin is backpropagation
        same = all(
            np.array_equal(a, b) for a, b in zip(twin.rule_grads, twin.bp_grads, strict=True)
        )
        assert same == (rule_class is USF)  # uSF is BP on binary weights; FA is not
        # and the rule's error path is back in place after the twin
        assert all(b.weight_layer.error_weight is not None for b in network.blocks[1:])


def test_new_rules_through_the_cli_resume_bit_for_bit(tmp_path, capsys):
    import json

    from binary_nn.train import main

    base = ["--hidden", "16,8", "--lr", "1e-3", "--seed", "4", "--dtype", "float64"]
    for method in ("FA", "frSF", "brSF", "output-only"):
        whole, parts = tmp_path / f"{method}-whole", tmp_path / f"{method}-parts"
        assert main([*base, "-m", method, "-e", "2", "--out", str(whole)]) == 0
        assert main([*base, "-m", method, "-e", "1", "--out", str(parts)]) == 0
        assert main(["--resume", str(parts), "-e", "2"]) == 0

        def records(d):
            return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
                    for line in (d / "metrics.jsonl").read_text().splitlines()]  # fmt: skip

        assert records(whole) == records(parts), method
    assert main([*base, "-m", "GD", "--feedback", "binary", "-e", "1"]) == 2
    assert "--feedback needs -m DFA, DRTP or FA" in capsys.readouterr().err


def test_rules_from_another_package_are_found_loaded_and_checked(tmp_path, monkeypatch):
    from binary_nn.errors import ConfigError
    from binary_nn.learning.rules import DFA, LearningRule
    from binary_nn.registry import Registry

    (tmp_path / "their_rules.py").write_text(
        "from binary_nn.learning.rules import DFA\n"
        "class Theirs(DFA):\n    name = 'theirs'\n"
        "NOT_A_RULE = 42\n"
    )
    (tmp_path / "broken_rules.py").write_text("raise RuntimeError('their bug')\n")
    info = tmp_path / "their_rules-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: their-rules\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[binary_nn.test_rules]\ntheirs = their_rules:Theirs\nnumber = their_rules:NOT_A_RULE\n"
        "broken = broken_rules:X\nDFA = their_rules:Theirs\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(
        "learning rule",
        "-m",
        entry_points="binary_nn.test_rules",
        check=lambda o: isinstance(o, type) and issubclass(o, LearningRule),
    )
    registry.add("DFA", DFA)
    assert registry.names() == ["DFA", "theirs", "number", "broken"]  # a built-in name stays
    assert registry.get("THEIRS").__name__ == "Theirs" and registry.get("dfa") is DFA
    with pytest.raises(ConfigError, match=r"of the package their-rules .* is not a learning rule"):
        registry.get("number")
    with pytest.raises(ConfigError, match=r"could not be loaded \(RuntimeError: their bug"):
        registry.get("broken")
