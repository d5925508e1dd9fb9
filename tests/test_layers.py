"""Every layer's backward against finite differences (float64), and the binary-weight rules."""

import numpy as np
import pytest
from conftest import check_layer

from binary_nn.nn.activations import ACTIVATIONS
from binary_nn.nn.layers import ActivationLayer, BatchNorm, Flatten, Linear, Scaler
from binary_nn.nn.network import Block
from binary_nn.nn.quantizers import SignQuantizer, WeightQuantizer, sign

# every layer test runs with the numpy and the numba kernels
pytestmark = pytest.mark.usefixtures("kernel_backend")


def test_linear_backward_matches_finite_differences(rng):
    layer = Linear(rng.uniform(-1, 1, (5, 4)))
    check_layer(layer, rng.normal(size=(6, 5)), rng, [layer.weight])


def test_linear_skips_input_gradient_when_not_needed(rng):
    layer = Linear(rng.uniform(-1, 1, (5, 4)))
    x = rng.normal(size=(6, 5))
    layer.forward(x, train=True)
    assert layer.backward(np.ones((6, 4)), need_input_grad=False) is None
    np.testing.assert_allclose(layer.weight.grad, x.T @ np.ones((6, 4)))


def test_scaler_backward_matches_finite_differences(rng):
    layer = Scaler(fan_in=7)
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(layer.forward(x, train=True), x / 7)
    check_layer(layer, x, rng)


def test_batchnorm_backward_matches_finite_differences(rng):
    layer = BatchNorm(4, dtype=np.float64)
    layer.gamma.value[:] = rng.uniform(0.5, 2, 4)
    layer.beta.value[:] = rng.normal(size=4)
    check_layer(layer, rng.normal(size=(8, 4)) * 3 + 1, rng, [layer.gamma, layer.beta])


def test_batchnorm_forward_and_running_statistics(rng):
    layer = BatchNorm(3, dtype=np.float64)
    x1, x2 = rng.normal(size=(10, 3)) * 2 + 5, rng.normal(size=(10, 3))
    y = layer.forward(x1, train=True)
    expected = (x1 - x1.mean(0)) / np.sqrt(x1.var(0) + 1e-3)
    np.testing.assert_allclose(y, expected)
    # the first batch initialises the running statistics, later ones blend with momentum 0.9
    np.testing.assert_allclose(layer.running_mean, x1.mean(0))
    np.testing.assert_allclose(layer.running_var, x1.var(0))
    layer.forward(x2, train=True)
    np.testing.assert_allclose(layer.running_mean, 0.9 * x1.mean(0) + 0.1 * x2.mean(0))
    np.testing.assert_allclose(layer.running_var, 0.9 * x1.var(0) + 0.1 * x2.var(0))
    # evaluation uses the running statistics and does not change them
    before = layer.running_mean.copy()
    y_eval = layer.forward(x2, train=False)
    np.testing.assert_allclose(
        y_eval, (x2 - layer.running_mean) / np.sqrt(layer.running_var + 1e-3)
    )
    np.testing.assert_array_equal(layer.running_mean, before)


@pytest.mark.parametrize("name", ["tanh", "id"])
def test_smooth_activations_backward_matches_finite_differences(name, rng):
    check_layer(ActivationLayer(ACTIVATIONS.get(name)), rng.normal(size=(4, 5)), rng)


@pytest.mark.parametrize(
    ("name", "derivative"),
    [
        ("sign", lambda a: np.ones_like(a)),
        ("signsat", lambda a: (np.abs(a) < 1).astype(float)),
        ("signtanh", lambda a: 1 - np.tanh(a) ** 2),
    ],
)
def test_sign_activations_forward_and_straight_through_backward(name, derivative):
    a = np.array([[-2.5, -1.0, -0.3, 0.0, 0.3, 1.0, 2.5]])
    layer = ActivationLayer(ACTIVATIONS.get(name))
    np.testing.assert_array_equal(layer.forward(a, train=True), [[-1, -1, -1, -1, 1, 1, 1]])
    grad = np.linspace(1, 2, a.size).reshape(a.shape)
    np.testing.assert_allclose(layer.backward(grad, need_input_grad=True), grad * derivative(a))


def test_activation_registry_is_case_insensitive_and_lists_names():
    assert ACTIVATIONS.get("TANH").name == "tanh"
    with pytest.raises(ValueError, match="choose one of: tanh, sign, signsat, signtanh, id"):
        ACTIVATIONS.get("relu")


def test_sign_maps_zero_to_minus_one_in_any_dtype():
    for dtype in (np.float32, np.float64):
        v = np.array([-1.5, -0.0, 0.0, 1e-30, 2.0], dtype=dtype)
        out = sign(v)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, [-1, -1, -1, 1, 1])


def test_binarized_linear_forward_uses_sign_and_updates_latent_gradient(rng):
    w = np.array([[0.5, -0.2], [0.0, 0.7], [-0.1, 0.3]])
    layer = Linear(w.copy(), SignQuantizer())
    x = rng.normal(size=(4, 3))
    wb = np.array([[1, -1], [-1, 1], [-1, 1]])
    np.testing.assert_allclose(layer.forward(x, train=True), x @ wb)
    g = rng.normal(size=(4, 2))
    grad_x = layer.backward(g, need_input_grad=True)
    np.testing.assert_allclose(grad_x, g @ wb.T)  # the error below uses sign(W) too
    np.testing.assert_allclose(layer.weight.grad, x.T @ g)  # identity STE: unchanged
    np.testing.assert_array_equal(layer.weight.value, w)  # latent weights kept real


@pytest.mark.parametrize(
    ("ste", "shape"),
    [
        ("identity", lambda w: np.ones_like(w)),
        ("sat", lambda w: (np.abs(w) < 1).astype(float)),
        ("tanh", lambda w: 1 - np.tanh(w) ** 2),
    ],
)
def test_weight_ste_shapes_the_latent_gradient(ste, shape, rng):
    w = np.array([[1.5, -0.2], [-1.0, 0.7], [0.99, -3.0]])
    layer = Linear(w.copy(), SignQuantizer(ste))
    x, g = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    layer.forward(x, train=True)
    layer.backward(g, need_input_grad=True)
    np.testing.assert_allclose(layer.weight.grad, (x.T @ g) * shape(w))


def test_real_quantizer_leaves_weights_and_gradient_alone(rng):
    w = np.array([[1.5, -0.2], [-1.0, 0.7]])
    layer = Linear(w.copy(), WeightQuantizer())
    assert layer.quantizer.bits is None and SignQuantizer("sat").bits == 1
    x, g = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    layer.forward(x, train=True)
    layer.backward(g, need_input_grad=True)
    np.testing.assert_allclose(layer.weight.grad, x.T @ g)


def test_block_chains_forward_and_backward(rng):
    block = Block(
        [
            Flatten(),
            Linear(rng.uniform(-1, 1, (4, 3))),
            Scaler(4),
            BatchNorm(3, np.float64),
            ActivationLayer(ACTIVATIONS.get("tanh")),
        ],
        input_shape=(2, 2, 1),
    )
    assert block.output_shape == (3,) and block.output_size == 3
    assert block.activation is block.layers[-1] and block.weight_layer is block.layers[1]
    assert sorted(block.named_state()) == [
        "batchnorm.beta",
        "batchnorm.gamma",
        "batchnorm.running_mean",
        "batchnorm.running_var",
        "linear.weight",
    ]
    check_layer(block, rng.normal(size=(6, 2, 2, 1)), rng, block.parameters())


def test_block_without_input_gradient_still_fills_its_parameters(rng):
    block = Block(
        [Flatten(), Linear(rng.uniform(-1, 1, (4, 3))), ActivationLayer(ACTIVATIONS.get("id"))],
        input_shape=(4, 1),
    )
    x = rng.normal(size=(5, 4, 1))
    block.forward(x, train=True)
    assert block.backward(np.ones((5, 3)), need_input_grad=False) is None
    np.testing.assert_allclose(block.weight_layer.weight.grad, x.reshape(5, 4).T @ np.ones((5, 3)))


def test_block_needs_one_weight_layer_and_one_activation(rng):
    with pytest.raises(ValueError, match="exactly one weight layer and one activation"):
        Block([Linear(rng.uniform(-1, 1, (4, 3)))], input_shape=(4,))


def test_quantizers_are_looked_up_by_name_and_carry_their_bit_width():
    from binary_nn.nn.quantizers import QUANTIZERS, weight_quantizer

    binary = weight_quantizer(True, "sat")
    assert isinstance(binary, SignQuantizer) and binary.bits == 1 and binary.ste.name == "sat"
    assert weight_quantizer(False).bits is None
    assert QUANTIZERS.get("BINARY") is SignQuantizer
    with pytest.raises(ValueError, match="choose one of: real, sign"):
        QUANTIZERS.get("ternary")
