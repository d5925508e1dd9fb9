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


KERNEL_BACKENDS = ["numpy", "numba"]


@pytest.fixture(params=KERNEL_BACKENDS)
def kernel_backend(request, monkeypatch) -> str:
    """Run a test once with each implementation of :mod:`binary_nn.nn.kernels`."""
    from binary_nn.nn import kernels

    if request.param == "numba" and kernels.numba is None:
        pytest.skip("numba is not installed (pip install -e '.[fast]')")
    monkeypatch.setattr(kernels, "BACKEND", request.param)
    return request.param
