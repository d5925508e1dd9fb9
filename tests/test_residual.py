"""Residual units: gradients against finite differences, a DFA/DRTP step against the formulas
written out here, every rule on a residual net, state names, checkpoints and the CLI."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from conftest import check_layer, numeric_grad
from test_conv import conv_grads_loops, conv_loops

from binary_nn import DFA, DRTP, GD, RULES, SGD, MSELoss, classifier, train_step
from binary_nn.errors import ConfigError
from binary_nn.learning.cost import held_values, layer_costs, rule_costs
from binary_nn.learning.loss import one_hot
from binary_nn.learning.step import streaming_step
from binary_nn.nn import AvgPool2d, GlobalAvgPool, Residual
from binary_nn.nn.conv import ChannelPad
from binary_nn.nn.network import parse_conv
from binary_nn.nn.react import RPReLU, Threshold

pytestmark = pytest.mark.usefixtures("kernel_backend")

#: a stem, an identity unit, a pooled unit whose channels change (a projected shortcut), gap
SPEC = "2c3,r2c3,r3c3,mp2,gap"


def residual_net(rng, **kwargs):
    options = dict(conv=SPEC, init=0.5, dtype=np.float64, rng=rng, hidden_activation="tanh")
    options.update(kwargs)
    return classifier((6, 6, 1), [], 3, **options)


def test_the_conv_language_reads_residual_units_and_gap():
    assert parse_conv("8c3,r8c3,mp2,r16c3,gap") == [
        ("conv", 8, 3), ("residual", 8, 3), ("pool", 2, 2), ("residual", 16, 3), ("gap", 0, 0),
    ]  # fmt: skip
    for bad, why in (
        ("r8c3", "needs a convolution before it"),
        ("8c3,gap,r8c3", "gap .* comes last"),
        ("gap", "gap needs a convolution"),
        ("8c3,r8c4", "odd K"),
    ):
        with pytest.raises(ConfigError, match=why):
            parse_conv(bad)


def test_a_residual_network_is_built_as_the_spec_says(rng):
    network = residual_net(rng, batch_norm=True)
    _, identity, projected, output = network.blocks
    assert isinstance(identity, Residual) and isinstance(projected, Residual)
    assert identity.shortcut.layers == []  # the same shape: the identity
    assert [layer.kind for layer in projected.shortcut.layers] == ["avgpool", "conv", "batchnorm"]
    assert [layer.kind for layer in projected.path.layers] == [
        "activation", "conv", "maxpool", "batchnorm",
    ]  # fmt: skip
    assert not projected.shortcut.layers[1].quantizer.binary  # a real-valued projection
    assert isinstance(output.layers[0], GlobalAvgPool) and network.n_classes == 3
    assert network.describe() == (
        "36-6x6x2(c3,bn,tanh)-r6x6x2(tanh,c3,bn)-r3x3x3(tanh,c3,mp2,bn;ap2,c1,bn)-3(gap,tanh)"
    )
    assert "conv.2.shortcut.weight" in network.named_state()
    assert "batchnorm.2.shortcut.running_var" in network.named_state()
    assert len(network.weight_layers()) == 5 and len(network.error_layers()) == 4
    react = residual_net(rng, rsign=True, rprelu=True)
    assert [layer.kind for layer in react.blocks[1].layers] == [
        "threshold", "activation", "conv", "rprelu",
    ]  # fmt: skip
    assert {"threshold.1.alpha", "rprelu.2.after.beta"} <= set(react.named_state())
    padded = residual_net(rng, shortcut="pad")
    assert [layer.kind for layer in padded.blocks[2].shortcut.layers] == ["avgpool", "channelpad"]
    assert len(padded.weight_layers()) == 4  # no projection to learn
    with pytest.raises(ConfigError, match="channels shrink"):
        classifier((6, 6, 1), [], 3, conv="4c3,r2c3", shortcut="pad")


def test_average_pooling_matches_finite_differences(rng):
    check_layer(AvgPool2d(2), rng.normal(size=(2, 5, 6, 3)), rng)  # odd size: the edge drops
    check_layer(GlobalAvgPool(), rng.normal(size=(2, 3, 4, 3)), rng)
    check_layer(ChannelPad(3, 5), rng.normal(size=(2, 3, 4, 3)), rng)


def test_reactnet_pieces_match_finite_differences(rng):
    threshold = Threshold(3, np.float64)
    threshold.alpha.value[:] = rng.normal(size=3)
    check_layer(threshold, rng.normal(size=(2, 4, 4, 3)), rng, [threshold.alpha])
    rprelu = RPReLU(3, np.float64)
    for p in rprelu.parameters():
        p.value[:] = rng.uniform(-0.5, 0.5, 3)
    check_layer(rprelu, rng.normal(size=(2, 4, 4, 3)), rng, rprelu.parameters())


@pytest.mark.parametrize(
    "extras",
    [
        {},
        {"batch_norm": True, "scale": True},
        {"batch_norm": True, "rsign": True, "rprelu": True, "shortcut": "pad"},
    ],
)
def test_backpropagation_through_residual_units_matches_finite_differences(rng, extras):
    network = residual_net(rng, **extras)
    x = rng.normal(size=(4, 6, 6, 1))
    t = one_hot(rng.integers(0, 3, 4), 3, np.float64)

    def summed_loss():
        return float(np.sum((network.forward(x, train=True) - t) ** 2))

    error = 2 * (network.forward(x, train=True) - t)
    GD(network).backward(error, (t + 1) / 2)
    for p in network.parameters():
        np.testing.assert_allclose(p.grad, numeric_grad(summed_loss, p.value), rtol=1e-5,
                                   atol=1e-8)  # fmt: skip


@pytest.mark.parametrize("positions", ["each", "shared"])
@pytest.mark.parametrize("rule_class", [DFA, DRTP])
def test_a_direct_feedback_step_on_a_residual_unit_equals_the_formula(rule_class, positions, rng):
    """stem: conv(2c3) -> tanh; unit: x1 + conv(tanh(x1)); output: flatten -> dense -> tanh.
    The signal enters the unit at its output (after the sum) and reaches its convolution as
    is: no activation derivative between them (the tanh is before the convolution). With
    shared positions, each channel's signal is the same at every position."""
    network = classifier((5, 5, 1), [], 3, conv="2c3,r2c3", init=0.5, dtype=np.float64, rng=rng)
    rule = rule_class(network, np.random.default_rng(1), feedback_positions=positions)
    width = 2 if positions == "shared" else 5 * 5 * 2
    assert [m.shape for m in rule.feedback] == [(3, width), (3, width)]
    w0, w1, w2 = (layer.weight.value.copy() for layer in network.weight_layers())
    b0, b1 = (m.copy() for m in rule.feedback)
    x, labels = rng.normal(size=(4, 5, 5, 1)), rng.integers(0, 3, 4)
    t = one_hot(labels, 3, np.float64)
    a0, x_padded = conv_loops(x, w0)
    h0 = np.tanh(a0)
    c1, h0_padded = conv_loops(np.tanh(h0), w1)
    h1 = c1 + h0
    y = np.tanh(h1.reshape(4, -1) @ w2)
    e = 2 * (y - t)
    signal = e if rule_class is DFA else (t + 1) / 2
    g2 = h1.reshape(4, -1).T @ (e * (1 - y**2))

    def projected(b):  # (4, 5, 5, 2): per value, or each channel's at every position
        flat = signal @ b
        return np.broadcast_to(flat[:, None, None, :], h1.shape) if width == 2 else (
            flat.reshape(h1.shape))  # fmt: skip

    g1, _ = conv_grads_loops(h0_padded, w1, projected(b1))
    g0, _ = conv_grads_loops(x_padded, w0, projected(b0) * (1 - h0**2))
    train_step(network, rule, SGD(network.parameters(), 0.1), MSELoss(), x, labels)
    for layer, w, g in zip(network.weight_layers(), (w0, w1, w2), (g0, g1, g2), strict=True):
        np.testing.assert_allclose(layer.weight.value, w - 0.1 * g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("positions", ["each", "shared"])
def test_streaming_drtp_on_residual_units_equals_the_whole_step(positions, rng):
    x, labels = rng.normal(size=(6, 6, 6, 1)), rng.integers(0, 3, 6)
    results = []
    for streaming in (False, True):
        network = residual_net(np.random.default_rng(5), batch_norm=True, binarize=True,
                               hidden_activation="signsat")  # fmt: skip
        rule = DRTP(network, np.random.default_rng(1), feedback_positions=positions)
        optimizer = SGD(network.parameters(), 0.1)
        if streaming:
            streaming_step(network, rule, optimizer, MSELoss(), x, labels, chunk_bytes=64)
        else:
            train_step(network, rule, optimizer, MSELoss(), x, labels)
        results.append([p.value.copy() for p in network.parameters()])
    for whole, streamed in zip(*results, strict=True):
        np.testing.assert_allclose(streamed, whole, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", RULES.names())
def test_every_rule_trains_a_binary_residual_net(name, rng):
    network = residual_net(rng, batch_norm=True, binarize=True, hidden_activation="signsat")
    rule = RULES.get(name)(network, np.random.default_rng(1))
    if rule.draws_feedback and name == "FA":  # one matrix per layer that sends the error down
        shapes = [tuple(m.shape) for m in rule.feedback]
        assert shapes == [tuple(layer.weight.value.shape) for layer in network.error_layers()]
    before = [p.value.copy() for p in network.parameters()]
    x, labels = rng.normal(size=(8, 6, 6, 1)), rng.integers(0, 3, 8)
    loss = train_step(network, rule, SGD(network.parameters(), 0.05), MSELoss(), x, labels).loss
    assert np.isfinite(loss)
    moved = [not np.array_equal(b, p.value) for b, p in zip(before, network.parameters(),
                                                             strict=True)]  # fmt: skip
    assert moved[-1]  # the output layer learns under every rule
    assert any(moved[:-1]) == (name != "output-only")


def test_the_alignment_twin_and_costs_walk_residual_units(rng):
    from binary_nn.run.alignment import Alignment

    network = residual_net(rng, batch_norm=True, binarize=True, hidden_activation="signsat")
    x, labels = rng.normal(size=(8, 6, 6, 1)), rng.integers(0, 3, 8)
    metrics = Alignment._measure(network, GD(network), MSELoss(), x, labels)
    assert [metrics[f"align/grad/{k}"] for k in range(3)] == [0.0, 0.0, 0.0]
    dfa = Alignment._measure(network, DFA(network, np.random.default_rng(1)), MSELoss(), x, labels)
    assert all(0 < dfa[f"align/grad/{k}"] < 180 for k in range(3))
    rows = layer_costs(network)
    assert sum(row.parameters for row in rows) == network.n_parameters()
    assert [row.block for row in rows].count(2) == len(network.blocks[2].layers)
    assert held_values(network, streaming=True) < held_values(network)
    costs = {row["rule"]: row for row in rule_costs(network)}
    assert costs["FA"]["feedback_bytes"] == 8 * sum(
        layer.weight.size for layer in network.error_layers()
    )


def test_a_residual_net_trains_and_resumes_bit_for_bit(tmp_path, capsys):
    from binary_nn.train import main

    base = ["--conv", "4c3,r4c3,mp2,r8c3,gap", "--hidden", "", "--binarize", "--bn",
            "--hidden-act", "signsat", "--rsign", "--rprelu", "--dtype", "float64", "--seed",
            "2"]  # fmt: skip
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    dfa = ["-m", "DFA", "--feedback-positions", "shared"]
    assert main([*base, *dfa, "-e", "2", "--out", str(whole)]) == 0
    assert main([*base, *dfa, "-e", "1", "--out", str(parts)]) == 0
    assert main(["--resume", str(parts), "-e", "2"]) == 0

    def records(d):
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
                for line in (d / "metrics.jsonl").read_text().splitlines()]  # fmt: skip

    assert records(whole) == records(parts)
    capsys.readouterr()
    assert main(["--conv", "4c3,mp2", "--rsign", "-e", "1"]) == 2
    assert "--rsign needs a residual unit in --conv" in capsys.readouterr().err
    assert main(["--conv", "4c3", "--feedback-positions", "shared", "-e", "1"]) == 2
    assert "--feedback-positions needs -m DFA or DRTP" in capsys.readouterr().err


RESNETS = {
    "bi-real, gap": ["--conv", "8c3,r8c3,mp2,r16c3,gap", "--hidden", ""],
    "reactnet, sn": ["--conv", "6c3,r6c3,r12c3,mp2,gap", "--hidden", "", "--rsign", "--rprelu",
                     "--sn"],
    "pad shortcut": ["--conv", "6c3,r6c3,mp2,r12c3,gap", "--hidden", "", "--shortcut", "pad"],
    "flattened, a dense layer, binary scores": ["--conv", "6c3,r6c3,mp2,r6c3", "--hidden", "16",
                                                "--binarize-last"],
}  # fmt: skip


@pytest.fixture(scope="module")
def resnets(tmp_path_factory):
    from binary_nn.train import main

    root = tmp_path_factory.mktemp("resnets")
    paths = {}
    for k, (name, flags) in enumerate(RESNETS.items()):
        path = root / f"{k}.npz"
        args = ["--optimizer", "adam", "--lr", "3e-3", "-e", "3", "--seed", "2", "--bn",
                "--binarize", "--hidden-act", "signsat", "--out", str(root / str(k)), "--save",
                str(path), *flags]  # fmt: skip
        assert main(args) == 0
        paths[name] = path
    return paths


@pytest.mark.parametrize("name", list(RESNETS))
def test_packed_residual_nets_reproduce_the_float64_network(name, resnets, tmp_path):
    from binary_nn.data import load_dataset
    from binary_nn.deploy.packed import load_packed
    from binary_nn.deploy.packed_residual import PackedResidual
    from binary_nn.export import main as export_main
    from binary_nn.inference import Engine
    from binary_nn.predict import integer_pixels
    from binary_nn.run.checkpoint import network_from_checkpoint
    from binary_nn.run.probes import predict

    assert export_main([str(resnets[name]), "--out", str(tmp_path)]) == 0
    model = load_packed(tmp_path / "model.npz")
    assert sum(isinstance(stage, PackedResidual) for stage in model.convs) >= 2
    assert model.global_pool == ("gap" in RESNETS[name][1])
    digits = load_dataset("digits")
    network, _ = network_from_checkpoint(resnets[name])  # float64
    expected = predict(network, digits, "test")
    pixels = integer_pixels(digits.x_test, model)
    np.testing.assert_array_equal(Engine(model).predict(pixels), expected)
    np.testing.assert_array_equal(Engine(model).predict(pixels[:7]), expected[:7])


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("name", ["bi-real, gap", "reactnet, sn", "pad shortcut"])
def test_c_residual_nets_give_the_float64_networks_classes(name, resnets, tmp_path):
    from binary_nn.data import load_dataset
    from binary_nn.deploy.packed import load_packed
    from binary_nn.export import main as export_main
    from binary_nn.predict import integer_pixels
    from binary_nn.run.checkpoint import network_from_checkpoint
    from binary_nn.run.probes import predict

    out = tmp_path / "c"
    assert export_main([str(resnets[name]), "--out", str(out), "--format", "c"]) == 0
    binary = tmp_path / "bnn"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror",
                    f"-I{out}", str(out / "example.c"), str(out / "model.c"), "-o",
                    str(binary)], check=True)  # fmt: skip
    assert export_main([str(resnets[name]), "--out", str(tmp_path / "npz")]) == 0
    model = load_packed(tmp_path / "npz" / "model.npz")
    digits = load_dataset("digits")
    pixels = integer_pixels(digits.x_test, model)
    result = subprocess.run([str(binary)], input=pixels.tobytes(), capture_output=True, check=True)
    network, _ = network_from_checkpoint(resnets[name])  # float64
    np.testing.assert_array_equal(
        np.array(result.stdout.split(), dtype=int), predict(network, digits, "test")
    )


def test_export_formats_that_take_no_residual_units_refuse_them(resnets, tmp_path, capsys):
    from binary_nn.export import main as export_main

    capsys.readouterr()
    checkpoint = str(resnets["bi-real, gap"])
    assert export_main([checkpoint, "--out", str(tmp_path / "onnx"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "not yet residual units" in err and "Traceback" not in err
    dense = str(resnets["flattened, a dense layer, binary scores"])
    assert export_main([dense, "--out", str(tmp_path / "c"), "--format", "c"]) == 2
    err = capsys.readouterr().err
    assert "hidden dense layers, as npz" in err and "Traceback" not in err
