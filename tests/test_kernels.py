"""The fused kernels against their formulas, in both implementations and both dtypes."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from binary_nn.data import load_dataset
from binary_nn.nn import kernels
from binary_nn.nn.kernels import jit
from binary_nn.run.build import build
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import train_epoch

DTYPES = [np.float32, np.float64]


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


def random(rng, shape, dtype, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(dtype)


def test_summarize_matches_its_definition(rng, kernel_backend, dtype):
    values = random(rng, (64, 37), dtype, scale=1.5) + dtype(0.25)
    values[3, 4] = -7.5  # the largest |v| is negative
    summary = kernel_backend.summarize(values, threshold=2.0)
    as64 = values.astype(np.float64)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert summary.mean == pytest.approx(as64.mean(), rel=tolerance)
    assert summary.variance == pytest.approx(as64.var(), rel=tolerance)
    assert summary.abs_max == 7.5
    assert summary.fraction_above == np.mean(np.abs(as64) > 2.0)
    assert 0 < summary.fraction_above < 1
    unbounded = kernel_backend.summarize(values)  # no threshold: the loops that count nothing
    assert unbounded.fraction_above == 0.0
    assert unbounded.mean == pytest.approx(as64.mean(), rel=tolerance)
    assert unbounded.variance == pytest.approx(as64.var(), rel=tolerance)
    assert unbounded.abs_max == 7.5


def test_summarize_counts_strictly_above_and_handles_edge_cases(kernel_backend, dtype):
    values = np.array([[-2.0, 2.0, 2.5, -3.0, 0.0, -0.0]], dtype)
    summary = kernel_backend.summarize(values, threshold=2.0)
    assert summary.fraction_above == pytest.approx(2 / 6)  # |2.0| is not above 2
    assert summary.abs_max == 3.0
    constant = np.full((10, 10), 0.1, dtype)
    assert kernel_backend.summarize(constant).variance == pytest.approx(0.0, abs=1e-6)
    assert kernel_backend.summarize(np.zeros((0, 3), dtype)) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("clip", [0.0, 0.3])
def test_sgd_update_equals_the_spec_formula_exactly(rng, kernel_backend, dtype, clip):
    value, grad = random(rng, (31, 17), dtype, 0.5), random(rng, (31, 17), dtype, 10)
    lr = 0.01
    expected = value - dtype(lr) * grad  # W -= lr * grad, in the model's dtype
    if clip > 0:
        expected = np.clip(expected, -clip, clip)
        assert np.any(np.abs(value - dtype(lr) * grad) > clip)  # the clip does something
    before_grad = grad.copy()
    kernel_backend.sgd_update(value, grad, lr, clip, np.empty_like(value))
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(grad, before_grad)  # the gradient stays readable
    assert value.dtype == dtype


def test_sign_maps_zero_and_negative_zero_to_minus_one(kernel_backend, dtype):
    values = np.array([[-1.5, -0.0, 0.0, 1e-30, 3.0]], dtype)
    out = kernel_backend.sign_into(values, np.empty_like(values))
    np.testing.assert_array_equal(out, np.array([[-1, -1, -1, 1, 1]], dtype))
    assert kernel_backend.sign_into(values, values) is values  # in place: the same numbers
    np.testing.assert_array_equal(values, out)


def test_activation_derivatives_equal_their_formulas(rng, kernel_backend, dtype):
    grad, a = random(rng, (9, 11), dtype), random(rng, (9, 11), dtype, 2)
    passed = kernel_backend.pass_where_below(grad, a, 1.0)
    np.testing.assert_array_equal(passed, np.where(np.abs(a) < 1, grad, 0))
    t = np.tanh(a)
    np.testing.assert_array_equal(
        kernel_backend.times_one_minus_square(grad, t), (1 - t * t) * grad
    )
    assert passed.dtype == dtype


def test_batchnorm_train_equals_its_formula(rng, kernel_backend, dtype):
    x = random(rng, (32, 7), dtype, 3) + dtype(2)
    gamma, beta = random(rng, 7, dtype), random(rng, 7, dtype)
    out, x_hat, mean, var, inv_std = kernel_backend.batchnorm_train(x, gamma, beta, 1e-3)
    as64 = x.astype(np.float64)
    expected_hat = (as64 - as64.mean(0)) / np.sqrt(as64.var(0) + 1e-3)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(mean, as64.mean(0), rtol=tolerance)
    np.testing.assert_allclose(var, as64.var(0), rtol=tolerance)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(as64.var(0) + 1e-3), rtol=tolerance)
    np.testing.assert_allclose(x_hat, expected_hat, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(out, expected_hat * gamma + beta, rtol=tolerance, atol=tolerance)
    assert {a.dtype for a in (out, x_hat, mean, var, inv_std)} == {np.dtype(dtype)}


def test_batchnorm_backward_equals_its_formula(rng, kernel_backend, dtype):
    n = 16
    grad, x_hat = random(rng, (n, 5), dtype), random(rng, (n, 5), dtype)
    gamma, inv_std = random(rng, 5, dtype), np.abs(random(rng, 5, dtype)) + dtype(0.5)
    gamma_grad, beta_grad = np.empty(5, dtype), np.empty(5, dtype)
    out = kernel_backend.batchnorm_backward(
        grad, x_hat, gamma, inv_std, gamma_grad, beta_grad, True
    )
    g64, h64 = grad.astype(np.float64), x_hat.astype(np.float64)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(beta_grad, g64.sum(0), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(gamma_grad, (g64 * h64).sum(0), rtol=tolerance, atol=tolerance)
    expected = (n * g64 - g64.sum(0) - h64 * (g64 * h64).sum(0)) * gamma * inv_std / n
    np.testing.assert_allclose(out, expected, rtol=10 * tolerance, atol=10 * tolerance)
    none = kernel_backend.batchnorm_backward(
        grad, x_hat, gamma, inv_std, gamma_grad, beta_grad, False
    )
    assert none is None


@pytest.mark.parametrize(
    "variant", [{}, {"bn": True, "binarize": True, "hidden_act": "signsat"}], ids=["tanh", "bin"]
)
def test_a_training_epoch_is_the_same_with_either_kernels(variant, dtype, monkeypatch):
    if kernels.NUMBA is None:
        pytest.skip("numba is not installed (pip install -e '.[fast]')")
    dataset = load_dataset("digits")
    config = TrainConfig(
        epochs=1, lr=1e-3, seed=3, hidden=(40, 30), dtype=np.dtype(dtype).name, **variant
    ).resolved()
    weights = {}
    for backend in ("numpy", "numba"):
        exp = build(config, dataset, kernels.kernels_named(backend))
        assert exp.model.kernels.name == backend == exp.optimizer.kernels.name
        train_epoch(exp, 1, 0, [])
        weights[backend] = [p.value.copy() for p in exp.model.parameters()]
    for numpy_value, numba_value in zip(weights["numpy"], weights["numba"], strict=True):
        # only the summation order of batch norm's reductions differs between the two
        if variant:
            np.testing.assert_allclose(numba_value, numpy_value, rtol=1e-4, atol=1e-5)
        else:
            np.testing.assert_array_equal(numba_value, numpy_value)


def test_backend_follows_the_environment(monkeypatch):
    monkeypatch.setenv(kernels.KERNELS_ENV, "numpy")
    assert kernels.default_kernels() is kernels.NUMPY
    monkeypatch.setenv(kernels.KERNELS_ENV, "auto")
    compiled = "numba" if kernels.numba is not None else "numpy"
    assert kernels.default_kernels().name == compiled
    monkeypatch.setenv(kernels.KERNELS_ENV, "fortran")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kernels.default_kernels().name == compiled
    message = str(caught[0].message)
    assert "BINARY_NN_KERNELS must be one of auto, numpy, numba, got 'fortran'" in message


def test_scale_shift_equals_its_formula(rng, kernel_backend, dtype):
    x, scale, shift = random(rng, (20, 6), dtype), random(rng, 6, dtype), random(rng, 6, dtype)
    np.testing.assert_array_equal(kernel_backend.scale_shift(x, scale, shift), x * scale + shift)


def test_kernels_write_through_to_arrays_that_are_not_c_contiguous(rng, kernel_backend):
    # a flat view of a transposed array would be a copy: such arrays take the numpy path
    value, grad = random(rng, (7, 5), np.float32).T, random(rng, (7, 5), np.float32).T
    expected = value - np.float32(0.1) * grad
    kernel_backend.sgd_update(value, grad, 0.1, 0.0, np.empty_like(value))
    np.testing.assert_array_equal(value, expected)
    out = np.zeros((7, 5), np.float32).T
    kernel_backend.sign_into(grad, out)
    np.testing.assert_array_equal(out, np.where(grad > 0, 1, -1))
    summary = kernel_backend.summarize(grad[::2], threshold=0.5)
    assert summary.abs_max == np.abs(grad[::2]).max()


def test_without_numba_everything_runs_on_numpy(tmp_path):
    # `pip install -e .` without the fast extra: numba cannot be imported
    script = (
        "import sys; sys.modules['numba'] = None\n"
        "from binary_nn.nn import kernels\n"
        "from binary_nn.run.config import TrainConfig\n"
        "from binary_nn.run.loop import run\n"
        "assert kernels.default_kernels().name == 'numpy'\n"
        "summary = run(TrainConfig(epochs=1, lr=1e-3, hidden=(32,), bn=True, binarize=True, "
        f"seed=1, out={str(tmp_path / 'run')!r}))\n"
        "assert summary['status'] == 'completed', summary\n"
        "print(summary['test/accuracy'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip().splitlines()[-1]) > 0.5  # learns (chance is 0.1)


def _double_all(values):
    for i in range(values.size):
        values[i] *= 2


def test_kernels_compile_without_a_writable_cache(monkeypatch):
    # a read-only install with no writable home: numba refuses to cache at decoration time
    if jit.numba is None:
        pytest.skip("numba is not installed (pip install -e '.[fast]')")
    real_njit = jit.numba.njit

    def njit(*args, cache=False, **kwargs):
        if cache:
            raise RuntimeError("cannot cache function '_double_all': no locator available")
        return real_njit(*args, cache=cache, **kwargs)

    monkeypatch.setattr(jit.numba, "njit", njit)
    double_all = jit.compiled(_double_all)
    values = np.arange(4.0)
    double_all(values)
    np.testing.assert_array_equal(values, [0.0, 2.0, 4.0, 6.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_kernels_give_the_same_numbers_in_the_given_memory(kernel_backend, dtype):
    rng = np.random.default_rng(3)
    grad = rng.normal(size=(16, 5)).astype(dtype)
    a = rng.normal(size=(16, 5)).astype(dtype)
    x_hat = rng.normal(size=(16, 5)).astype(dtype)
    gamma, inv_std = rng.uniform(0.5, 2, 5).astype(dtype), rng.uniform(0.5, 2, 5).astype(dtype)
    cases = {
        "pass_where_below": lambda g, ip: kernel_backend.pass_where_below(g, a, 1.0, in_place=ip),
        "times_one_minus_square": lambda g, ip: kernel_backend.times_one_minus_square(
            g, np.tanh(a), in_place=ip
        ),
        "batchnorm_backward": lambda g, ip: kernel_backend.batchnorm_backward(
            g, x_hat, gamma, inv_std, np.empty(5, dtype), np.empty(5, dtype), True, in_place=ip
        ),
    }
    for name, kernel in cases.items():
        expected = kernel(grad.copy(), False)
        given = grad.copy()
        result = kernel(given, True)
        assert result is given, name
        np.testing.assert_array_equal(result, expected, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_col2im_adds_every_patch_back(kernel_backend, dtype):
    rng = np.random.default_rng(5)
    cols = rng.normal(size=(2, 3, 4, 3, 3, 2)).astype(dtype)
    expected = np.zeros((2, 5, 6, 2))
    for n in range(2):
        for i in range(3):
            for j in range(4):
                expected[n, i : i + 3, j : j + 3, :] += cols[n, i, j]
    np.testing.assert_allclose(kernel_backend.col2im(cols), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_lists_each_patch_in_the_weights_order(kernel_backend, dtype):
    rng = np.random.default_rng(6)
    padded = rng.normal(size=(2, 5, 6, 3)).astype(dtype)  # 3x4 positions of 3x3 patches
    expected = [padded[n, i : i + 3, j : j + 3, :].reshape(-1)
                for n in range(2) for i in range(3) for j in range(4)]  # fmt: skip
    np.testing.assert_array_equal(kernel_backend.im2col(padded, 3), np.array(expected))
    out = np.empty((24, 27), dtype)
    assert kernel_backend.im2col(padded, 3, out) is out


def test_col2im_adds_into_the_given_memory(kernel_backend):
    cols = np.ones((1, 2, 2, 3, 3, 1))
    out = np.full((1, 4, 4, 1), 10.0)
    assert kernel_backend.col2im(cols, out) is out
    assert out[0, 0, 0, 0] == 11 and out[0, 1, 1, 0] == 14


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_takes_the_first_maximum_and_unpool_routes_back(kernel_backend, dtype):
    x = np.array([[[[1], [3], [0]], [[3], [2], [0]], [[9], [9], [9]]]], dtype=dtype)  # 3x3
    out, index = kernel_backend.maxpool(x, 2)
    assert out.shape == (1, 1, 1, 1) and out[0, 0, 0, 0] == 3
    assert index[0, 0, 0, 0] == 1  # (0, 1) is the first of the two 3s; the last row drops
    back = kernel_backend.unpool(np.full((1, 1, 1, 1), 5.0, dtype), index, 2, x.shape)
    assert back[0, 0, 1, 0] == 5 and back.sum() == 5


@pytest.mark.parametrize(
    ("n", "size", "c_in", "c_out", "k"),
    [(5, 14, 32, 64, 5), (2, 6, 70, 3, 3), (3, 5, 1, 4, 1), (2, 4, 64, 2, 3)],
)
def test_a_convolution_of_signs_by_signs_counts_bits_to_the_float_products_bits(
    rng, dtype, n, size, c_in, c_out, k
):
    # numba counts bits for +-1 inputs and weights; the numpy kernels multiply floats: the same
    # numbers, bit for bit (whole words, a word and a part, one channel)
    if kernels.NUMBA is None:
        pytest.skip("numba is not installed (pip install -e '.[fast]')")
    from binary_nn.nn.kernels import bits

    x = np.where(rng.random((n, size, size, c_in)) < 0.5, -1, 1).astype(dtype)
    w = np.where(rng.random((k * k * c_in, c_out)) < 0.5, -1, 1).astype(dtype)
    padded = kernels.NUMPY.pad_images(x, k // 2)
    assert bits.signs_inside(padded, k // 2) and bits.signs_inside(padded, 0) == (k == 1)
    by_bits = bits.conv2d_signs(padded, w, k)
    np.testing.assert_array_equal(by_bits, kernels.NUMPY.conv2d(padded, w, k, 1 << 20))
    x_half = x.copy()
    x_half[-1, -1, -1, -1] = 0.5  # the last value checked
    assert bits.conv2d_signs(kernels.NUMPY.pad_images(x_half, k // 2), w, k) is None
    np.testing.assert_array_equal(kernels.NUMBA.conv2d(padded, w, k, 1 << 20), by_bits)
    # a single input or weight that is not a sign takes the float product
    x[0, 0, 0, 0], w[0, 0] = 0.5, -3.0
    for inputs, weights in ((x, np.sign(w)), (np.sign(x), w)):
        padded = kernels.NUMPY.pad_images(inputs, k // 2)
        expected = kernels.NUMPY.conv2d(padded, weights, k, 1 << 20)
        np.testing.assert_array_equal(kernels.NUMBA.conv2d(padded, weights, k, 1 << 20), expected)


def test_signs_inside_looks_only_inside_the_padding(dtype):
    from binary_nn.nn.kernels import bits

    padded = np.zeros((2, 6, 6, 3), dtype)
    padded[:, 1:5, 1:5] = -1
    assert bits.signs_inside(padded, 1) and not bits.signs_inside(padded, 0)
    padded[1, 4, 4, 2] = -0.0
    assert not bits.signs_inside(padded, 1)
    padded[1, 4, 4, 2] = np.nan
    assert not bits.signs_inside(padded, 1)
