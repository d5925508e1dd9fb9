"""Metrics against direct computations."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score

from binary_nn import GD, SGD, classifier
from binary_nn.run.metrics import (
    BatchStatistics,
    classification_scores,
    confusion,
    cosine_cka,
    information_plane,
)


def test_classification_scores_are_macro_averages():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0, 2])
    scores = classification_scores(y, p, "test")
    assert scores["test/accuracy"] == pytest.approx(5 / 7)
    # class 3 never occurs: macro averages are over the classes present or predicted
    assert scores["test/precision"] == pytest.approx(
        precision_score(y, p, average="macro", zero_division=0)
    )
    assert scores["test/f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert confusion(y, p, 3) == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]


def cka_by_gram_matrices(x, y):
    """The textbook definition: centred cosine-kernel Gram matrices and their alignment."""

    def kernel(v):
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        k = v @ v.T
        h = np.eye(len(v)) - 1 / len(v)
        return h @ k @ h

    kx, ky = kernel(x), kernel(y)
    return np.sum(kx * ky) / np.sqrt(np.sum(kx * kx) * np.sum(ky * ky))


def test_cosine_cka_matches_the_gram_matrix_definition(rng):
    x = rng.normal(size=(40, 7))
    y = np.tanh(x @ rng.normal(size=(7, 5))) + 0.1 * rng.normal(size=(40, 5))
    assert cosine_cka(x, y) == pytest.approx(cka_by_gram_matrices(x, y), rel=1e-10)
    assert cosine_cka(x, x) == pytest.approx(1.0)
    assert cosine_cka(x, 3 * x) == pytest.approx(1.0)  # invariant to scale
    assert 0 <= cosine_cka(x, rng.normal(size=(40, 3))) < 0.5
    assert cosine_cka(x, np.ones((40, 3))) == 0.0  # constant kernel


def test_batch_statistics_match_numpy(rng, kernel_backend):
    model = classifier(6, [5, 4], 3, hidden_activation="tanh", dtype=np.float64, init=2.0, rng=rng)
    x = rng.normal(size=(16, 6)) * 3
    t = -np.ones((16, 3))
    model.keep_preactivations(True)  # as a step with statistics does
    GD(model).backward(2 * (model.forward(x, train=True) - t), t)
    stats = BatchStatistics()(model)
    for k, block in enumerate(model.hidden_blocks):
        a = block.activation.input
        assert stats[f"batch/saturation/{k}"] == pytest.approx(np.mean(np.abs(a) > 2))
        assert stats[f"batch/preact_var/{k}"] == pytest.approx(a.var())
    assert 0 < stats["batch/saturation/0"] < 1
    for k, block in enumerate(model.blocks):
        g = block.weight_layer.weight.grad
        assert stats[f"batch/grad_var/{k}"] == pytest.approx(g.var())
        assert stats[f"batch/grad_absmax/{k}"] == pytest.approx(np.abs(g).max())
    # the gradients' summaries may come from the optimizer's step instead
    summaries = SGD(model.parameters(), lr=1e-3).step(summarize_grads=True)
    assert BatchStatistics()(model, summaries) == pytest.approx(stats)


def test_information_plane_aligns_every_block_with_input_and_targets(rng):
    model = classifier(6, [5, 4], 3, hidden_activation="tanh", dtype=np.float64, init=1.0, rng=rng)
    x = rng.normal(size=(30, 6))
    targets = np.eye(3)[rng.integers(0, 3, 30)]
    plane = information_plane(model, x, targets)
    # the output block (k = 2, the number of hidden blocks) too, as the published code does
    assert sorted(plane) == [f"hsic/{p}/{k}" for p in ("xz", "zy") for k in range(3)]
    outputs = model.block_outputs(x)
    np.testing.assert_array_equal(outputs[-1], model.forward(x, train=False))
    for k, z in enumerate(outputs):
        assert plane[f"hsic/xz/{k}"] == pytest.approx(cosine_cka(x, z), rel=1e-12)
        assert plane[f"hsic/zy/{k}"] == pytest.approx(cosine_cka(z, targets), rel=1e-12)
        assert 0 < plane[f"hsic/xz/{k}"] <= 1
