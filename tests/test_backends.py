"""The array backends: the engine on torch tensors and on array_api_strict arrays gives the
numbers it gives on numpy (float64, to rounding), and learns."""

import json

import numpy as np
import pytest

from binary_nn import RULES, classifier, train_step
from binary_nn.learning.loss import LOSSES
from binary_nn.learning.optim import OptimizerSettings, make_optimizer
from binary_nn.learning.step import streaming_step
from binary_nn.nn.kernels import NUMPY

CASES = {
    "mlp tanh, GD, SGD momentum": dict(
        net=dict(hidden=[12, 8]), rule="GD", optimizer=("sgd", dict(momentum=0.9))
    ),
    "mlp signsat bn binary, DFA, Adam, cross-entropy": dict(
        net=dict(hidden=[12, 8], hidden_activation="signsat", batch_norm=True, binarize=True),
        rule="DFA",
        optimizer=("adam", {}),
        loss="cross-entropy",
    ),
    "mlp sign bn binary sat-STE, DRTP, Bop": dict(
        net=dict(
            hidden=[12],
            hidden_activation="sign",
            batch_norm=True,
            binarize=True,
            weight_ste="sat",
            init=1.5,
        ),
        rule="DRTP",
        optimizer=("bop", dict(bop_threshold=1e-4, bop_gamma=0.1)),
    ),
    # tanh: a binary convolution of signs sums integers, and where batch norm then centres
    # a tie at 0, the backends' rounding of the mean decides its sign
    "convnet tanh bn binary, GD, AdamW": dict(
        net=dict(
            hidden=[10],
            conv="4c3,mp2,3c3",
            batch_norm=True,
            binarize=True,
            scale=True,
        ),
        rule="GD",
        optimizer=("adamw", dict(weight_decay=0.01)),
        images=True,
    ),
    "resnet tanh bn binary rsign rprelu gap, GD, Adam": dict(
        net=dict(
            hidden=[],
            conv="4c3,r4c3,r6c3,mp2,gap",
            batch_norm=True,
            binarize=True,
            rsign=True,
            rprelu=True,
        ),
        rule="GD",
        optimizer=("adam", {}),
        images=True,
    ),
    "resnet tanh, DFA, SGD": dict(
        net=dict(hidden=[5], conv="4c3,r4c3,mp2"), rule="DFA", optimizer=("sgd", {}), images=True
    ),
    "convnet tanh, DRTP streaming, SGD": dict(
        net=dict(hidden=[10], conv="4c3,mp2"),
        rule="DRTP",
        optimizer=("sgd", {}),
        images=True,
        streaming=True,
    ),
}


def steps(case, kernels, n_steps=3):
    """A few steps of ``case`` on ``kernels``: the network's state, the losses, on the host."""
    rng = np.random.default_rng(5)
    shape = (6, 6, 2) if case.get("images") else (7,)
    network = classifier(
        shape, n_classes=3, last_activation="id" if case.get("loss") else "tanh",
        dtype=np.float64, rng=rng, kernels=kernels, **case["net"],
    )  # fmt: skip
    streaming = case.get("streaming", False)
    rule = RULES.get(case["rule"])(network, np.random.default_rng(2), streaming=streaming)
    name, settings = case["optimizer"]
    settings = OptimizerSettings(lr=0.01, weight_clipping=1.0, **settings)
    optimizer = make_optimizer(name, network.named_parameters(), settings, kernels)
    loss = LOSSES.get(case.get("loss", "mse"))
    losses = []
    for _ in range(n_steps):
        x = kernels.asarray(rng.normal(size=(8, *shape)))
        labels = kernels.asarray(rng.integers(0, 3, size=8))
        step = streaming_step if streaming else train_step
        losses.append(step(network, rule, optimizer, loss, x, labels).loss)
    state = {k: np.array(kernels.to_host(v)) for k, v in network.named_state().items()}
    return state, losses, optimizer.state_dict()


@pytest.mark.parametrize("case", list(CASES))
def test_steps_on_every_backend_give_numpys_numbers(case, array_backend):
    expected, expected_losses, expected_optimizer = steps(CASES[case], NUMPY)
    state, losses, optimizer_state = steps(CASES[case], array_backend)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-10)
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(state[key], value, rtol=1e-9, atol=1e-12, err_msg=key)
    for key, value in expected_optimizer.items():
        np.testing.assert_allclose(optimizer_state[key], value, rtol=1e-9, atol=1e-12)
    first, _, _ = steps(CASES[case], NUMPY, n_steps=1)
    assert any(not np.array_equal(first[k], v) for k, v in expected.items())  # it trains


def test_the_same_seed_gives_the_same_network_on_every_backend(array_backend):
    def network(kernels):
        net = classifier(5, [4], 3, batch_norm=True, rng=np.random.default_rng(3), kernels=kernels)
        return {k: np.array(kernels.to_host(v)) for k, v in net.named_state().items()}

    for key, value in network(NUMPY).items():
        np.testing.assert_array_equal(network(array_backend)[key], value)


def test_statistics_agree_across_backends(array_backend, rng):
    values = rng.normal(size=(40, 30))
    expected = NUMPY.summarize(values, 1.0)
    got = array_backend.summarize(array_backend.asarray(values), 1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def _torch_or_skip():
    pytest.importorskip("torch")


@pytest.mark.parametrize("method", ["GD", "DRTP"])
def test_a_run_on_torch_learns_digits_and_logs_numpys_numbers(method, tmp_path):
    _torch_or_skip()
    from binary_nn.run.config import TrainConfig
    from binary_nn.run.loop import run

    common = dict(method=method, seed=2, epochs=4, hidden=(64,), bn=True, lr=1e-3)
    on_torch = run(TrainConfig(**common, backend="torch", out=str(tmp_path / "torch")))
    on_numpy = run(TrainConfig(**common, out=str(tmp_path / "numpy")))
    assert on_torch["test/accuracy"] >= 0.85
    for key in ("train/loss", "test/accuracy", "train/accuracy"):
        assert on_torch[key] == pytest.approx(on_numpy[key], rel=1e-4), key
    stored = json.loads((tmp_path / "torch" / "config.json").read_text())
    assert (stored["backend"], stored["device"]) == ("torch", "cpu")


def test_a_checkpoint_saved_on_torch_loads_on_numpy_with_the_same_predictions(tmp_path):
    _torch_or_skip()
    from binary_nn.data import load_dataset
    from binary_nn.run.checkpoint import network_from_checkpoint
    from binary_nn.run.config import TrainConfig
    from binary_nn.run.loop import run
    from binary_nn.run.probes import predict

    saved = tmp_path / "model.npz"
    config = TrainConfig(
        seed=1, epochs=2, hidden=(32,), conv="4c3,mp2", bn=True, binarize=True,
        hidden_act="signsat", lr=1e-3, backend="torch", out=str(tmp_path / "r"), save=str(saved),
    )  # fmt: skip
    run(config)
    digits = load_dataset("digits")
    from binary_nn.nn.kernels.array_api import array_kernels

    on_numpy, _ = network_from_checkpoint(saved, dtype=None)
    on_torch, _ = network_from_checkpoint(saved, dtype=None, kernels=array_kernels("torch"))
    expected = predict(on_numpy, digits, "test")
    np.testing.assert_array_equal(predict(on_torch, digits, "test"), expected)
    assert np.mean(expected == digits.y_test) > 0.6  # it learned (chance: 0.1)


def test_resume_on_torch_continues_where_the_run_stopped(tmp_path):
    _torch_or_skip()
    from binary_nn.run.config import TrainConfig
    from binary_nn.run.loop import run

    common = dict(seed=4, hidden=(32,), bn=True, optimizer="adam", lr=1e-3, backend="torch")
    whole = run(TrainConfig(**common, epochs=3, out=str(tmp_path / "whole")))
    run(TrainConfig(**common, epochs=2, out=str(tmp_path / "part")))
    resumed = run(TrainConfig(**common, epochs=3, out=str(tmp_path / "part")), resume=True)
    assert resumed["epochs_completed"] == 3
    assert resumed["test/accuracy"] == pytest.approx(whole["test/accuracy"], abs=1e-12)
    assert resumed["train/loss"] == pytest.approx(whole["train/loss"], rel=1e-12)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "cuda", "--backend", "numpy"], "needs --backend torch or cupy"),
        (["--device", "tpu"], "must be cpu, cuda or cuda:N"),
        (["--backend", "jax"], "unknown --backend"),
    ],
)
def test_bad_backend_flags_get_one_sentence(flags, message, tmp_path, capsys):
    from binary_nn.train import main

    assert main(["--epochs", "1", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_a_gpu_that_is_not_there_gets_one_sentence(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from binary_nn.train import main

    assert main(["--epochs", "1", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "torch sees no CUDA GPU" in capsys.readouterr().err


def _logged(run_dir):
    """Every numeric value of every line of a run's metrics.jsonl but the timings, by line."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in line.items() if isinstance(v, float) and not k.startswith("time/")}
        for line in lines
    ]


def test_the_probes_on_torch_log_numpys_alignment_hsic_and_cost(tmp_path):
    _torch_or_skip()
    from binary_nn.run.config import TrainConfig
    from binary_nn.run.loop import run

    common = dict(
        method="DFA", seed=3, epochs=2, hidden=(32, 16), bn=True, binarize=True, lr=1e-3,
        alignment_every=10, verbose=1,
    )  # fmt: skip
    run(TrainConfig(**common, backend="torch", out=str(tmp_path / "torch")))
    run(TrainConfig(**common, out=str(tmp_path / "numpy")))
    on_torch, on_numpy = _logged(tmp_path / "torch"), _logged(tmp_path / "numpy")
    logged = {key for line in on_numpy for key in line}
    for prefix in ("align/grad/", "align/signal/", "flip/", "hsic/xz/", "hsic/zy/"):
        assert any(key.startswith(prefix) for key in logged), prefix
    assert len(on_torch) == len(on_numpy)
    for torch_line, numpy_line in zip(on_torch, on_numpy, strict=True):
        assert sorted(torch_line) == sorted(numpy_line)
        for key, value in numpy_line.items():
            assert torch_line[key] == pytest.approx(value, rel=1e-3, abs=1e-6), key
    costs = [
        json.loads((tmp_path / r / "config.json").read_text())["cost"] for r in ("torch", "numpy")
    ]
    assert (
        costs[0] == costs[1] and costs[0]["totals"]["forward_macs"] == 64 * 32 + 32 * 16 + 16 * 10
    )
