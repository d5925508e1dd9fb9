import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def numeric_grad(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar ``f()`` with respect to ``array`` (in place)."""
    grad = np.zeros_like(array)
    it = np.nditer(array, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = array[i]
        array[i] = old + eps
        up = f()
        array[i] = old - eps
        down = f()
        array[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def check_layer(layer, x, rng, params=()):
    """Backward of ``sum(layer(x) * r)`` against finite differences for x and each param."""
    r = rng.normal(size=layer.forward(x.copy(), train=True).shape)

    def loss():
        return float(np.sum(layer.forward(x, train=True) * r))

    layer.forward(x, train=True)
    grad_x = layer.backward(r, need_input_grad=True)
    np.testing.assert_allclose(grad_x, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    for p in params:
        layer.forward(x, train=True)
        layer.backward(r, need_input_grad=True)
        analytic = p.grad.copy()
        np.testing.assert_allclose(analytic, numeric_grad(loss, p.value), rtol=1e-6, atol=1e-8)


KERNEL_BACKENDS = ["numpy", "numba"]


@pytest.fixture(params=KERNEL_BACKENDS)
def kernel_backend(request, monkeypatch):
    """Run a test once with each implementation of :mod:`binary_nn.nn.kernels`: the backend,
    which is also every network's default in the test (through the environment)."""
    from binary_nn.nn import kernels

    if request.param == "numba" and kernels.NUMBA is None:
        pytest.skip("numba is not installed (pip install -e '.[fast]')")
    monkeypatch.setenv(kernels.KERNELS_ENV, request.param)
    return kernels.kernels_named(request.param)


#: a GPU's run only where one is (the device check runs them): torch and CuPy on CUDA
ARRAY_BACKENDS = ["numpy", "numba", "torch", "array-api-strict", "torch-cuda", "cupy-cuda"]


@pytest.fixture(params=ARRAY_BACKENDS)
def array_backend(request):
    """Every kernel backend, the array-API ones (torch on the CPU, array_api_strict) too: a
    test builds its network with it and moves its inputs with ``asarray``."""
    from binary_nn.nn import kernels
    from binary_nn.nn.kernels.array_api import array_kernels

    if request.param in ("numpy", "numba"):
        if request.param == "numba" and kernels.NUMBA is None:
            pytest.skip("numba is not installed (pip install -e '.[fast]')")
        return kernels.kernels_named(request.param)
    backend, _, device = request.param.partition("-")
    if request.param == "array-api-strict":
        backend, device = request.param, ""
    try:
        return array_kernels(backend, device or "cpu")
    except ImportError:
        pytest.skip(f"{backend} is not installed")
    except ValueError as exc:  # no GPU here
        pytest.skip(str(exc))
