"""Convolutional blocks: gradients against finite differences, a training step against a
direct-loop reference written here, DFA and DRTP on conv blocks, CIFAR-shaped data end to end."""

import json

import numpy as np
import pytest
from conftest import check_layer

from binary_nn import DFA, DRTP, GD, SGD, MSELoss, classifier, train_step
from binary_nn.data import Dataset
from binary_nn.learning.cost import rule_costs
from binary_nn.nn.conv import Conv2d, MaxPool2d
from binary_nn.nn.kernels.convolution import chunks
from binary_nn.nn.layers import BatchNorm
from binary_nn.nn.network import parse_conv
from binary_nn.nn.quantizers import SignQuantizer
from binary_nn.run.build import build
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import run
from binary_nn.train import main

pytestmark = pytest.mark.usefixtures("kernel_backend")


@pytest.mark.parametrize("chunk_bytes", [2 << 20, 1])  # the batch at once; one example a chunk
def test_conv_backward_matches_finite_differences(chunk_bytes, rng):
    layer = Conv2d(rng.normal(size=(3, 3, 2, 4)))
    layer.chunk_bytes = chunk_bytes
    assert len(chunks(np.zeros((3, 7, 8, 2)), 3, chunk_bytes)) == (3 if chunk_bytes == 1 else 1)
    check_layer(layer, rng.normal(size=(3, 5, 6, 2)), rng, [layer.weight])


def test_binary_conv_uses_sign_forward_and_the_latent_gradient(rng):
    w = rng.normal(size=(3, 3, 1, 2))
    layer = Conv2d(w.copy(), SignQuantizer())
    x = rng.normal(size=(1, 4, 4, 1))
    real = Conv2d(np.where(w > 0, 1.0, -1.0))
    np.testing.assert_allclose(layer.forward(x, train=True), real.forward(x, train=True))
    g = rng.normal(size=(1, 4, 4, 2))
    np.testing.assert_allclose(
        layer.backward(g, need_input_grad=True), real.backward(g, need_input_grad=True)
    )
    np.testing.assert_allclose(layer.weight.grad, real.weight.grad)


def test_maxpool_and_channel_batchnorm_match_finite_differences(rng):
    check_layer(MaxPool2d(2), rng.normal(size=(2, 5, 6, 3)), rng)  # odd size: the edge drops
    layer = BatchNorm(3, np.float64)
    layer.gamma.value[:] = rng.uniform(0.5, 2, 3)
    check_layer(layer, rng.normal(size=(4, 3, 3, 3)), rng, [layer.gamma, layer.beta])


# --- a direct-loop reference: convolution, pooling, dense layers, tanh -------------------------


def conv_loops(x, w):
    n, h, wd, _ = x.shape
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros((n, h, wd, w.shape[3]))
    for b in range(n):
        for i in range(h):
            for j in range(wd):
                for o in range(w.shape[3]):
                    out[b, i, j, o] = np.sum(xp[b, i : i + k, j : j + k, :] * w[:, :, :, o])
    return out, xp


def conv_grads_loops(xp, w, d):
    n, h, wd, _ = d.shape
    k = w.shape[0]
    dw, dxp = np.zeros_like(w), np.zeros_like(xp)
    for b in range(n):
        for i in range(h):
            for j in range(wd):
                for o in range(w.shape[3]):
                    dw[:, :, :, o] += xp[b, i : i + k, j : j + k, :] * d[b, i, j, o]
                    dxp[b, i : i + k, j : j + k, :] += w[:, :, :, o] * d[b, i, j, o]
    p = k // 2
    return dw, dxp[:, p : p + h, p : p + wd, :]


def pool_loops(a, size):
    n, h, w, c = a.shape
    out = np.zeros((n, h // size, w // size, c))
    where = np.zeros((n, h // size, w // size, c, 2), int)
    for b in range(n):
        for i in range(h // size):
            for j in range(w // size):
                for ch in range(c):
                    window = a[b, i * size : (i + 1) * size, j * size : (j + 1) * size, ch]
                    r, s = np.unravel_index(np.argmax(window), window.shape)
                    out[b, i, j, ch] = window[r, s]
                    where[b, i, j, ch] = (i * size + r, j * size + s)
    return out, where


def unpool_loops(d, where, shape):
    out = np.zeros(shape)
    n, ho, wo, c = d.shape
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    r, s = where[b, i, j, ch]
                    out[b, r, s, ch] += d[b, i, j, ch]
    return out


def reference_step(weights, feedback, x, labels, rule, lr):
    """GD / DFA / DRTP on conv(2c3) -> mp2 -> tanh -> dense(4) tanh -> dense(3) tanh."""
    wc, w1, w2 = weights
    t = -np.ones((len(x), 3))
    t[np.arange(len(x)), labels] = 1
    a0, xp = conv_loops(x, wc)
    p0, where = pool_loops(a0, 2)
    h0 = np.tanh(p0)
    f0 = h0.reshape(len(x), -1)
    h1 = np.tanh(f0 @ w1)
    y = np.tanh(h1 @ w2)
    e = 2 * (y - t)
    d2 = e * (1 - y**2)
    g2 = h1.T @ d2
    if rule == "GD":
        s1, later = d2 @ w2.T, None
    else:
        signal = e if rule == "DFA" else (t + 1) / 2
        s1, later = signal @ feedback[1], signal @ feedback[0]
    d1 = s1 * (1 - h1**2)
    g1 = f0.T @ d1
    s0 = (d1 @ w1.T) if rule == "GD" else later
    d0 = s0.reshape(h0.shape) * (1 - h0**2)
    gc, _ = conv_grads_loops(xp, wc, unpool_loops(d0, where, a0.shape))
    return [wc - lr * gc, w1 - lr * g1, w2 - lr * g2]


@pytest.mark.parametrize("rule_class", [GD, DFA, DRTP])
def test_one_step_of_a_small_convnet_equals_the_direct_loops(rule_class, rng):
    network = classifier((6, 6, 1), [4], 3, conv="2c3,mp2", init=0.5, dtype=np.float64, rng=rng)
    rule = rule_class(network, np.random.default_rng(1))
    if rule.feedback:  # B ~ U(-1, 1) of (n_classes, C*H*W) for the conv block
        assert [m.shape for m in rule.feedback] == [(3, 3 * 3 * 2), (3, 4)]
    weights = [b.weight_layer.weight.value.copy() for b in network.blocks]
    x, labels = rng.normal(size=(5, 6, 6, 1)), rng.integers(0, 3, 5)
    expected = reference_step(weights, [m.copy() for m in rule.feedback], x, labels,
                              rule_class.name, 0.1)  # fmt: skip
    train_step(network, rule, SGD(network.parameters(), 0.1), MSELoss(), x, labels)
    for block, w in zip(network.blocks, expected, strict=True):
        np.testing.assert_allclose(block.weight_layer.weight.value, w, rtol=1e-10, atol=1e-12)


def test_conv_spec_tokens_and_errors():
    assert parse_conv("32c5,mp2,64c5,mp2") == [
        ("conv", 32, 5), ("pool", 2, 2), ("conv", 64, 5), ("pool", 2, 2),
    ]  # fmt: skip
    for bad, token in (("32c4", "'32c4'"), ("mp2,8c3", "'mp2'"), ("8c3,x", "'x'")):
        with pytest.raises(ValueError, match=f"bad token {token}"):
            parse_conv(bad)


def test_conv_costs_and_the_cli(tmp_path, capsys):
    network = classifier((28, 28, 1), [1000], 10, conv="32c5,mp2,64c5,mp2")
    gd = rule_costs(network)[0]
    conv = 28 * 28 * 25 * 32 + 14 * 14 * 25 * 32 * 64
    assert gd["forward_macs"] == conv + 7 * 7 * 64 * 1000 + 1000 * 10
    assert main(["--conv", "8c4", "-e", "1"]) == 2
    assert "--conv: bad token '8c4'" in capsys.readouterr().err


def test_cifar_shaped_data_runs_end_to_end_and_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    dataset = Dataset(
        "cifar-shaped",
        rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 96),
        rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 20),
        n_classes=10,
    )  # fmt: skip
    common = dict(method="DRTP", conv="4c3,mp2,8c3,mp2", hidden=(16,), bn=True, binarize=True,
                  hidden_act="signsat", epochs=2, batchsize=32, lr=1e-3, seed=1)  # fmt: skip
    save = tmp_path / "model.npz"
    summary = run(TrainConfig(**common, out=str(tmp_path / "r"), save=str(save)), dataset)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["architecture"].startswith("3072-16x16x4(c3,bin,mp2,bn,signsat)-8x8x8(")
    with np.load(save) as f:
        assert f["conv.0.weight"].shape == (3, 3, 3, 4) and f["feedback.0"].shape == (10, 1024)
    again = build(TrainConfig(**common, load=str(save)).resolved(), dataset)
    np.testing.assert_array_equal(again.model.blocks[1].weight_layer.weight.value,
                                  np.load(save)["conv.1.weight"])  # fmt: skip


def test_a_convnet_is_evaluated_in_smaller_chunks_with_the_same_predictions(monkeypatch, rng):
    from binary_nn.run import probes

    dense = classifier(784, [700, 500], 10)
    convnet = classifier((28, 28, 1), [1000], 10, conv="32c5,mp2,64c5,mp2")
    assert probes.eval_chunk(dense) == probes.EVAL_CHUNK == 4096
    assert probes.eval_chunk(convnet) == 4096 * 784 // (28 * 28 * 32)  # the first conv's output
    small = classifier((6, 6, 1), [5], 3, conv="2c3,mp2", batch_norm=True, rng=rng)
    images = rng.integers(0, 256, (10, 6, 6, 1), dtype=np.uint8)
    data = Dataset("tiny", images, rng.integers(0, 3, 10), images[:4], rng.integers(0, 3, 4))
    whole = probes.predict(small, data, "train")
    monkeypatch.setattr(probes, "EVAL_CHUNK_VALUES", 72 * 3)  # 3 examples a chunk
    assert probes.eval_chunk(small) == 3
    np.testing.assert_array_equal(probes.predict(small, data, "train"), whole)


def test_a_long_evaluation_pass_shows_a_bar_on_a_terminal(monkeypatch):
    import io
    import sys
    import time

    from binary_nn import classifier, load_dataset
    from binary_nn.run import probes

    data = load_dataset("digits")
    net = classifier(data.input_shape, [16], 10, rng=np.random.default_rng(0))
    fast = net.forward

    def slow(x, train):  # 0.6 s a chunk: 3.6 s for the pass
        time.sleep(0.6)
        return fast(x, train=train)

    monkeypatch.setattr(net, "forward", slow)
    monkeypatch.setattr(probes, "EVAL_CHUNK", 60)
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", terminal)
    predicted = probes.predict(net, data, "test")
    assert len(predicted) == 360 and "evaluating test" in terminal.getvalue()
    terminal.truncate(0)
    monkeypatch.setattr(net, "forward", fast)  # a quick pass: no bar
    probes.predict(net, data, "test")
    assert terminal.getvalue().strip("\x00") == ""
