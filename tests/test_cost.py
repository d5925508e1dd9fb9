"""Cost accounting against counts made by hand, streaming DRTP against standard DRTP."""

import json
import tracemalloc

import numpy as np
import pytest

from binary_nn import DRTP, RULES, SGD, MSELoss, classifier, train_step
from binary_nn.learning.cost import cost_summary, held_values, layer_costs, rule_costs
from binary_nn.summary import main as summary_main
from binary_nn.train import main as train_main


def small(**options):
    return classifier((2, 3, 1), [5, 4], 3, rng=np.random.default_rng(0), **options)


def test_macs_of_every_rule_by_hand():
    rules = {r["rule"]: r for r in rule_costs(small())}
    forward = 6 * 5 + 5 * 4 + 4 * 3  # 62
    assert {r["forward_macs"] for r in rules.values()} == {forward}
    gd = rules["GD"]
    assert gd["backward_macs/weight_grads"] == forward
    assert gd["backward_macs/input_grads"] == 5 * 4 + 4 * 3  # not the first layer's
    assert rules["DFA"]["backward_macs/projections"] == 3 * (5 + 4)  # e @ B_k
    assert rules["DFA"]["backward_macs/input_grads"] == 0
    assert rules["DRTP"]["backward_macs/projections"] == 0  # a row lookup, not a product
    assert rules["DRTP"]["total_macs"] == 2 * forward
    assert rules["DFA"]["feedback_bytes"] == 3 * (5 + 4) * 4 and gd["feedback_bytes"] == 0
    assert rules["DFA"]["macs_vs_gd"] == pytest.approx((2 * forward + 27) / (2 * forward + 32))


def test_published_mlp_counts():
    rules = {r["rule"]: r for r in rule_costs(classifier(784, [700, 500, 300, 200], 10))}
    assert rules["GD"]["forward_macs"] == 1_110_800
    assert rules["GD"]["backward_macs"] == 1_672_800
    assert rules["DFA"]["backward_macs"] == 1_127_800


def test_held_values_by_hand():
    # tanh keeps its output, a Linear its input: x 6, h1 5, h2 4, y 3
    assert held_values(small()) == 6 + 5 + 4 + 3
    # streaming: one block at a time, its input and output
    assert held_values(small(), streaming=True) == max(6 + 5, 5 + 4, 4 + 3)
    # signsat keeps its input (the batch norm output), batch norm its x_hat; sign's output
    # is kept by the next Linear
    binary = small(batch_norm=True, binarize=True, hidden_activation="signsat")
    assert held_values(binary) == 6 + (5 + 5) + 5 + (4 + 4) + 4 + 3
    assert held_values(binary, streaming=True) == 6 + (5 + 5) + 5


def test_layer_table_bits_bytes_and_binary_macs():
    network = small(binarize=True, hidden_activation="sign", dtype=np.float32)
    rows = [r for r in layer_costs(network) if r.kind == "linear"]
    assert [r.bits for r in rows] == [1, 1, 32]
    assert [r.stored_bytes for r in rows] == [120, 80, 48]
    assert [r.packed_bytes for r in rows] == [4, 3, 48]  # ceil(30 / 8), ceil(20 / 8)
    # the first layer sees pixels, the output layer has real weights: only layer 1 is binary
    assert [r.binary_macs for r in rows] == [0, 20, 0]
    totals = cost_summary(network)["totals"]
    assert totals["binary_macs_share"] == pytest.approx(20 / 62)
    assert totals["packed_bytes"] == 4 + 3 + 48


def test_drtp_row_lookup_equals_the_product(rng):
    network = small(dtype=np.float64)
    rule = DRTP(network, rng)
    labels = rng.integers(0, 3, 9)
    target01 = np.eye(3)[labels]
    for k in range(2):
        np.testing.assert_array_equal(rule.project(target01, k), target01 @ rule.feedback[k])


def read(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--bn", "--binarize", "--hidden-act", "signsat", "--log-every", "3"],
        ["--conv", "4c3,mp2", "--bn", "--binarize", "--hidden-act", "signsat"],
    ],
)
def test_streaming_drtp_equals_standard_drtp_bit_for_bit(tmp_path, options):
    args = ["-m", "DRTP", "-e", "2", "--hidden", "32,16", "--lr", "3e-4", "--seed", "5",
            "--dtype", "float64", *options]  # fmt: skip
    for name, extra in (("standard", []), ("streaming", ["--streaming"])):
        out, ckpt = tmp_path / name, tmp_path / f"{name}.npz"
        assert train_main([*args, *extra, "--out", str(out), "--save", str(ckpt)]) == 0
    with np.load(tmp_path / "standard.npz") as a, np.load(tmp_path / "streaming.npz") as b:
        for key in a.files:
            if key != "config":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    def strip(records):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]

    assert strip(read(tmp_path / "standard")) == strip(read(tmp_path / "streaming"))


def test_streaming_with_another_rule_is_one_sentence(tmp_path, capsys):
    assert train_main(["-m", "DFA", "--streaming", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--streaming needs -m DRTP" in err
    assert not (tmp_path / "r").exists()


def test_summary_command_and_the_runs_config(tmp_path, capsys):
    out = tmp_path / "cost.json"
    args = ["--dataset", "MNIST", "--hidden", "700,500,300,200", "--json", str(out)]
    assert summary_main(args) == 0
    printed = capsys.readouterr().out
    assert "| GD | 1,110,800 | 562,000 | 0 | 1,110,800 | 2,783,600 |" in printed
    assert "| DRTP (streaming) |" in printed
    saved = json.loads(out.read_text())
    assert saved["totals"]["forward_macs"] == 1_110_800
    assert summary_main(["--hidden", "7,x"]) == 2  # bad flags: one sentence
    run = tmp_path / "run"
    assert train_main(["-e", "1", "--hidden", "16", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["cost"]["totals"]["forward_macs"] == 64 * 16 + 16 * 10
    assert [r["rule"] for r in config["cost"]["rules"]] == [
        "GD", "DFA", "DRTP", "FA", "uSF", "brSF", "frSF", "output-only", "DRTP (streaming)",
    ]  # fmt: skip


def _step_peak(network, rule, batch):
    """Bytes at the peak of a training step on ``batch`` random examples, the batch handed
    over (as the training loop hands it: it may go once the first block is done) and
    counted, after a first step has allocated the lazy state."""
    optimizer = SGD(network.parameters(), lr=1e-6)
    x = np.random.default_rng(0).normal(size=(batch, *network.input_shape))
    labels = np.zeros(batch, int)
    train_step(network, rule, optimizer, MSELoss(), x.copy(), labels)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        train_step(network, rule, optimizer, MSELoss(), x.copy(), labels)
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("rule_name", ["DFA", "DRTP"])
def test_a_direct_feedback_step_holds_one_projected_signal_at_a_time(rule_name):
    # the activations the step holds, plus one hidden block's signal: not one per block
    network = classifier(
        32, (64, 64, 64), 10, init=0.1, rng=np.random.default_rng(1), dtype=np.float64
    )
    peak = _step_peak(network, RULES.get(rule_name)(network, np.random.default_rng(2)), 512)
    held, signal = held_values(network, streaming=False) * 512 * 8, 64 * 512 * 8
    assert peak < held + 1.5 * signal  # three signals held at once would pass 2


NETWORKS = {  # small float64 networks of every kind of hidden block
    "tanh": {},
    "binary-bn": {"batch_norm": True, "binarize": True, "hidden_activation": "signsat"},
    "conv-bn": {"conv": "5c3,mp2", "batch_norm": True, "binarize": True,
                "hidden_activation": "signsat"},
}  # fmt: skip


def _network(kind):
    shape = (6, 6, 2) if "conv" in NETWORKS[kind] else 20
    return classifier(shape, (24, 13), 4, init=0.1, rng=np.random.default_rng(1), dtype=np.float64,
               **NETWORKS[kind])  # fmt: skip


def _trained(kind, chunk_bytes=None, steps=3):
    """A few DRTP steps on random data: standard, or streaming with ``chunk_bytes``."""
    from binary_nn.learning.step import streaming_step

    network = _network(kind)
    rule = DRTP(network, np.random.default_rng(2), streaming=chunk_bytes is not None)
    optimizer = SGD(network.parameters(), lr=1e-2)
    rng = np.random.default_rng(3)
    for _ in range(steps):
        x = rng.uniform(-1, 1, (48, *network.input_shape))
        labels = rng.integers(0, network.n_classes, 48)
        if chunk_bytes is None:
            train_step(network, rule, optimizer, MSELoss(), x, labels)
        else:
            streaming_step(network, rule, optimizer, MSELoss(), x, labels, chunk_bytes=chunk_bytes)
    return network.named_state()


@pytest.mark.parametrize("kind", NETWORKS)
def test_streaming_takes_a_block_update_a_few_features_at_a_time(kind):
    # 48 examples x 8 bytes: slices of 1 to 2 features, against the whole-signal step
    initial, standard = _network(kind).named_state(), _trained(kind)
    assert all(not np.array_equal(standard[k], initial[k]) for k in initial if "weight" in k)
    for chunk_bytes in (48 * 8, 48 * 8 * 2):
        sliced = _trained(kind, chunk_bytes)
        for name, value in standard.items():
            # the per-feature kernels give the same bits; BLAS may round a product's
            # columns differently by the width it is given (the last bits in float64)
            np.testing.assert_allclose(sliced[name], value, rtol=1e-12, atol=1e-15, err_msg=name)


def test_feature_slices_widths():
    from binary_nn.learning.step import feature_slices

    block = classifier(20, (700,), 10).hidden_blocks[0]
    slices = feature_slices(block, 4096, 4, 512 << 10)
    assert [s.stop - s.start for s in slices] == [32] * 21 + [28]  # 32 x 4096 x 4 = 512 KiB
    assert feature_slices(block, 128, 4, 512 << 10) == [slice(0, 700)]  # the whole fits


def test_a_weight_layer_gives_no_input_gradient_of_a_slice_of_features():
    network = classifier(6, (5,), 3, rng=np.random.default_rng(0))
    block = network.hidden_blocks[0]
    block.forward(np.ones((4, 6), np.float32), train=True)
    with pytest.raises(ValueError, match="no input gradient of a slice"):
        block.backward(np.ones((4, 2), np.float32), need_input_grad=True, features=slice(0, 2))


def test_streaming_peak_at_a_large_batch_is_its_activations_and_one_slice():
    # 4096 examples: the first block's signal (4096 x 128 x 8 = 4 MiB) goes in slices, so the
    # step's peak is the input and the first block's output (what held_values counts), the
    # targets (2 x 10 values per example) and about two slices (the signal's and the kept
    # features' copy), not a whole signal more
    network = classifier(
        96, (128, 64), 10, init=0.1, rng=np.random.default_rng(1), dtype=np.float64
    )
    peak = _step_peak(network, DRTP(network, np.random.default_rng(2), streaming=True), 4096)
    held = held_values(network, streaming=True) * 4096 * 8
    assert held == (96 + 128) * 4096 * 8
    assert peak < held + 20 * 4096 * 8 + 2.5 * (512 << 10)  # a whole signal: 4 MiB more
