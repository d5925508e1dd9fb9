"""Learning on the device: the integer online step (Python reference) against its formula,
the exported C library against the reference bit for bit, the Cortex-M4F build under QEMU
against the host build, and the RAM the summary predicts against the image's."""

import shutil

import numpy as np
import pytest

from binary_nn.data import load_dataset
from binary_nn.data.__main__ import main as data_main
from binary_nn.data.__main__ import record_stream
from binary_nn.deploy.c_learn import Layout
from binary_nn.deploy.mcu import (
    build_host,
    build_mcu,
    run_host,
    run_mcu,
    section_sizes,
    toolchain_missing,
)
from binary_nn.deploy.online import (
    ERROR_BITS,
    WEIGHT_ONE,
    OnlineSettings,
    exp_table,
    round_shift,
)
from binary_nn.device import learner_from_checkpoint
from binary_nn.device import main as device_main
from binary_nn.errors import ConfigError
from binary_nn.export import main as export_main
from binary_nn.run.checkpoint import network_from_checkpoint
from binary_nn.summary import main as summary_main
from binary_nn.train import main as train_main

NO_CC = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
NO_ARM = pytest.mark.skipif(toolchain_missing() is not None, reason=str(toolchain_missing()))
DEVICE_FLAGS = ["--binarize", "--sn", "--hidden-act", "signsat", "--loss", "cross-entropy",
                "--last-act", "id"]  # fmt: skip
RULES = {
    "GD": ["-m", "GD"],
    "DFA": ["-m", "DFA"],
    "DFA-binary-feedback": ["-m", "DFA", "--feedback", "binary"],
    "DRTP": ["-m", "DRTP"],
    "DRTP-streaming": ["-m", "DRTP", "--streaming"],
    "output-only": ["-m", "output-only"],
    "DFA-binary-output": ["-m", "DFA", "--binarize-last"],
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """``train --epochs 0 --save`` per rule: the networks a device starts from."""
    root = tmp_path_factory.mktemp("untrained")
    paths = {}
    for name, flags in RULES.items():
        path = root / f"{name}.npz"
        args = ["--hidden", "32,16", "-e", "0", "--seed", "5", "--save", str(path),
                "--out", str(root / name), *DEVICE_FLAGS, *flags]  # fmt: skip
        assert train_main(args) == 0
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def stream(digits):
    """1,437 x 2 learning steps, the 360 test images, the state's hash, then the whole state."""
    data, labels = record_stream(digits, None, None, seed=3, passes=2)
    dump = bytes([3, 0]) + bytes(64)
    return data + dump, labels


def exported(checkpoint, out, *options):
    assert export_main([str(checkpoint), "--format", "c", "--learn", "--out", str(out),
                        *options]) == 0  # fmt: skip
    return out


def test_an_untrained_checkpoint_holds_the_initial_weights(untrained):
    learner = learner_from_checkpoint(untrained["DFA"], OnlineSettings())
    network, _ = network_from_checkpoint(untrained["DFA"])
    for layer, block in zip(learner.layers, network.blocks, strict=True):
        weight = block.weight_layer.weight.value.T  # (out, in)
        np.testing.assert_array_equal(layer.latent, np.rint(weight * WEIGHT_ONE))
    # --init 0.1 by default: U(-0.1, 0.1), in Q14 within +-1638
    assert 1000 < np.abs(learner.layers[0].latent).max() <= 1639


def test_one_dfa_step_follows_the_formula(untrained, digits):
    """One step of a 64-32-16-10 learner against the fixed-point formulas written out here."""
    settings = OnlineSettings()
    learner = learner_from_checkpoint(untrained["DFA"], settings)
    before = [layer.latent.copy() for layer in learner.layers]
    pixels, label = digits.x_train[7].reshape(-1), int(digits.y_train[7])
    learner.learn(pixels, label)

    x = 2 * pixels.astype(np.int64) - learner.pixel_offset
    signs, opens = [], []
    for layer, latent in zip(learner.layers[:-1], before[:-1], strict=True):
        z = (np.where(latent > 0, 1, -1) @ x) * 256
        mu = (z + 64) >> 7  # from 0: mu += round((z - 0) / 128)
        centred = z - mu
        mad = (np.abs(centred) + 64) >> 7
        opens.append(16 * np.abs(centred) <= 16 * mad)
        x = np.where(centred > 0, 1, -1)
        signs.append(x)
        np.testing.assert_array_equal(layer.mu, mu)
        np.testing.assert_array_equal(layer.mad, mad)
    scores = before[-1] @ x  # a real output layer: Q14 weights
    q = np.minimum(((scores.max() - scores) * learner.q_mul) >> learner.q_shift, 256)
    table = np.rint(np.exp(-np.arange(257) / 16) * 2**15).astype(np.int64)
    np.testing.assert_array_equal(exp_table(), table)
    e = (table[q] << 16) // table[q].sum()
    e[label] -= 1 << ERROR_BITS
    inputs = [2 * pixels.astype(np.int64) - learner.pixel_offset, *signs]
    for k, layer in enumerate(learner.layers):
        if k < len(learner.layers) - 1:
            delta = np.where(opens[k], layer.feedback.T @ e, 0)
        else:
            delta = e
        rate = layer.rate
        d = (delta * rate.mul + (1 << (rate.shift - 1))) >> rate.shift
        step = np.outer(d, inputs[k])
        if rate.x_shift:
            step = (step + (1 << (rate.x_shift - 1))) >> rate.x_shift
        expected = np.clip(before[k] - step, -WEIGHT_ONE, WEIGHT_ONE)
        np.testing.assert_array_equal(layer.latent, expected)
    assert any((layer.latent != b).any() for layer, b in zip(learner.layers, before, strict=True))


def test_rates_stand_for_the_learning_rate(untrained):
    """The fixed-point step of a layer is lr / n_in in float units, to 15 bits."""
    settings = OnlineSettings(lr_hidden=0.5, lr_output=0.05)
    learner = learner_from_checkpoint(untrained["DFA"], settings)
    output = learner.layers[-1]
    rate = output.rate.mul / 2 ** (output.rate.shift + output.rate.x_shift)
    # delta in Q16, weights in Q14, the output's gain logit_scale, 16 inputs
    expected = 0.05 * settings.logit_scale * 2**14 / (16 * 2**16)
    assert rate == pytest.approx(expected, rel=2**-14)


def test_round_shift_rounds_half_up():
    values = np.array([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 5])
    np.testing.assert_array_equal(round_shift(values, 1), np.floor(values / 2 + 0.5))
    np.testing.assert_array_equal(round_shift(values, 2), np.floor(values / 4 + 0.5))


def test_streaming_drtp_takes_the_same_steps(untrained, stream):
    data, _ = stream
    plain = learner_from_checkpoint(untrained["DRTP"], OnlineSettings())
    streaming = learner_from_checkpoint(untrained["DRTP-streaming"], OnlineSettings())
    assert streaming.streaming and not plain.streaming
    assert plain.run_records(data) == streaming.run_records(data)


@NO_CC
@pytest.mark.parametrize("rule", list(RULES))
def test_c_learns_as_the_reference_bit_for_bit(rule, untrained, stream, tmp_path, capsys):
    """2,874 learning steps, then every prediction, the state's hash and every state value:
    the host build of the exported C prints what python -m binary_nn.device prints."""
    data, labels = stream
    out = exported(untrained[rule], tmp_path / "c")
    c_lines = run_host(build_host(out), data)
    records = tmp_path / "stream.bin"
    records.write_bytes(data)
    capsys.readouterr()
    assert device_main([str(untrained[rule]), "--records", str(records)]) == 0
    reference = capsys.readouterr().out.splitlines()
    assert c_lines == reference
    predictions = np.array([int(line) for line in reference if line.isdigit()])
    assert len(predictions) == len(labels) == 360
    assert sum(line.startswith("layer0.latent ") for line in reference) == 32
    if rule != "output-only":  # every rule learns its hidden layers well above chance (0.1)
        assert np.mean(predictions == labels) > 0.4


def test_the_rules_learn_above_the_control(untrained, stream):
    data, labels = stream
    accuracy = {}
    for rule in ("DFA", "output-only"):
        lines = learner_from_checkpoint(untrained[rule], OnlineSettings()).run_records(data)
        predictions = np.array([int(line) for line in lines if line.isdigit()])
        accuracy[rule] = np.mean(predictions == labels)
    assert accuracy["DFA"] > accuracy["output-only"] + 0.05


@NO_ARM
def test_the_emulated_cortex_m4_prints_what_the_host_prints(untrained, digits, tmp_path):
    data, _ = record_stream(digits, 1000, None, seed=2)
    out = exported(untrained["DFA"], tmp_path / "c")
    elf = build_mcu(out, 64 * 1024)
    run = run_mcu(elf, data)
    assert run.lines == run_host(build_host(out), data)
    assert len(run.lines) == 361 and run.measured["learn_steps"] == 1000
    assert run.ticks_checked  # 40 instructions a tick under -icount shift=0
    assert 20_000 < run.instructions_per_step < 500_000
    assert 64 < run.measured["stack_peak_bytes"] < 1024
    # the RAM the summary predicts is the image's, to alignment (the harness's buffers apart)
    sizes = section_sizes(elf)
    learner = learner_from_checkpoint(untrained["DFA"], OnlineSettings())
    predicted = sum(Layout.of_learner(learner).memory().values())
    static = sizes[".data"] + sizes.get(".bss", 0) - (2 + 64) - (24 + 17)
    assert predicted <= static <= predicted * 1.05


@NO_ARM
def test_a_model_over_the_ram_budget_does_not_link(untrained, tmp_path):
    out = exported(untrained["DFA"], tmp_path / "c")
    with pytest.raises(ConfigError, match="does not fit the RAM budget"):
        build_mcu(out, 4 * 1024)


def test_summary_tells_the_device_ram_per_rule(capsys):
    argv = ["--dataset", "MNIST", "--hidden", "128", "--binarize", "--sn",
            "--hidden-act", "signsat"]  # fmt: skip
    assert summary_main(argv) == 0
    out = capsys.readouterr().out
    # 784-128-10 in int16: 2 * (784 * 128 + 128 * 10) bytes of latent weights
    assert "| DFA | 203,264 | 1,024 | 768 | 160 | 205,216 |" in out
    assert "| DRTP (streaming) | 203,264 |" in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hidden-act", "tanh", "--binarize"], "binary weights and a sign activation"),
        (["--conv", "4c3", "--binarize", "--hidden-act", "signsat"], "convolutions"),
        (["-m", "FA", "--binarize", "--hidden-act", "signsat"], "learns with GD, DFA"),
    ],
)
def test_export_learn_refuses_what_the_device_cannot_run(flags, message, tmp_path, capsys):
    path = tmp_path / "ck.npz"
    assert train_main(["--hidden", "8", "-e", "0", "--save", str(path),
                       "--out", str(tmp_path / "run"), *flags]) == 0  # fmt: skip
    capsys.readouterr()
    assert export_main([str(path), "--format", "c", "--learn", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_records_and_options_get_one_sentence(untrained, tmp_path, capsys):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(bytes(100))
    assert device_main([str(untrained["DFA"]), "--records", str(cut)]) == 2
    assert "not a multiple of 66" in capsys.readouterr().err
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(bytes([1, 12]) + bytes(64))
    assert device_main([str(untrained["DFA"]), "--records", str(wrong)]) == 2
    assert "labels 0 to 9" in capsys.readouterr().err
    assert export_main([str(untrained["DFA"]), "--format", "npz", "--learn",
                        "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "give it with --format c" in capsys.readouterr().err
    assert export_main([str(untrained["DFA"]), "--format", "c", "--learn", "--gate", "nan",
                        "--out", str(tmp_path / "y")]) == 2  # fmt: skip
    assert "--gate must be a number" in capsys.readouterr().err
    for rate, says in (("1e-12", "--lr-output is too small"), ("1e6", "--lr-output is too large")):
        assert export_main([str(untrained["DFA"]), "--format", "c", "--learn", "--lr-output",
                            rate, "--out", str(tmp_path / f"z{rate}")]) == 2  # fmt: skip
        assert says in capsys.readouterr().err
    assert data_main(["records", "digits", "--out", str(tmp_path / "r"), "--learn", "-1"]) == 2
    assert "--learn must be an integer" in capsys.readouterr().err


@NO_CC
def test_the_export_directory_carries_its_options_to_the_reference(
    untrained, stream, tmp_path, capsys
):
    """Exported with non-default options, the directory's learner.json gives the reference the
    same ones; an option that contradicts them, or a changed checkpoint, is refused."""
    data, _ = stream
    checkpoint = tmp_path / "ck.npz"
    checkpoint.write_bytes(untrained["DFA"].read_bytes())
    out = exported(checkpoint, tmp_path / "c", "--gate", "0.5", "--lr-hidden", "0.3")
    records = tmp_path / "stream.bin"
    records.write_bytes(data)
    capsys.readouterr()
    assert device_main([str(out), "--records", str(records)]) == 0
    assert capsys.readouterr().out.splitlines() == run_host(build_host(out), data)
    # the defaults would learn something else
    assert device_main([str(checkpoint), "--records", str(records)]) == 0
    assert capsys.readouterr().out.splitlines() != run_host(build_host(out), data)
    assert device_main([str(out), "--records", str(records), "--gate", "1"]) == 2
    assert "--gate 1 differs from the 0.5" in capsys.readouterr().err
    checkpoint.write_bytes(untrained["GD"].read_bytes())
    assert device_main([str(out), "--records", str(records)]) == 2
    assert "has changed since" in capsys.readouterr().err
