"""Batch normalisation over the last axis: evaluation's affine map, training's forward with
the batch statistics, and the exact backward through them."""

from __future__ import annotations

from typing import Any

import numpy as np

from .jit import compiled


@compiled
def _scale_shift_loop(x: Any, scale: Any, shift: Any, out: Any) -> Any:
    n, features = x.shape
    for i in range(n):
        for j in range(features):
            out[i, j] = x[i, j] * scale[j] + shift[j]


def scale_shift_numpy(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """See ``scale_shift``."""
    out = np.multiply(x, scale)
    out += shift
    return out


def scale_shift_numba(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    _scale_shift_loop(x, scale, shift, out)
    return out


@compiled
def _train_loop(
    x: Any, gamma: Any, beta: Any, eps: Any, count: Any, x_hat: Any, out: Any, mean: Any, var: Any
) -> Any:
    n, features = x.shape
    mean[:] = 0
    var[:] = 0
    for i in range(n):
        for j in range(features):
            mean[j] += x[i, j]
    mean /= count
    for i in range(n):
        for j in range(features):
            d = x[i, j] - mean[j]
            x_hat[i, j] = d
            var[j] += d * d
    var /= count
    inv_std = np.sqrt(var + eps)
    for j in range(features):
        inv_std[j] = count / count / inv_std[j]  # 1 / std in the arrays' dtype
    for i in range(n):
        for j in range(features):
            h = x_hat[i, j] * inv_std[j]
            x_hat[i, j] = h
            out[i, j] = h * gamma[j] + beta[j]
    return inv_std


BatchNormForward = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def train_numpy(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> BatchNormForward:
    """See ``batchnorm_train``."""
    mean = x.mean(axis=0)
    x_hat = np.subtract(x, mean)
    var = np.einsum("ij,ij->j", x_hat, x_hat) / x.shape[0]
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    x_hat *= inv_std
    out = np.multiply(x_hat, gamma)
    out += beta
    return out, x_hat, mean, var, inv_std


def train_numba(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> BatchNormForward:
    x_hat, out = np.empty_like(x), np.empty_like(x)
    mean, var = np.empty_like(gamma), np.empty_like(gamma)
    eps_, count = x.dtype.type(eps), x.dtype.type(x.shape[0])
    inv_std = _train_loop(x, gamma, beta, eps_, count, x_hat, out, mean, var)
    return out, x_hat, mean, var, inv_std


@compiled
def _grads_loop(grad: Any, x_hat: Any, gamma_grad: Any, beta_grad: Any) -> Any:
    n, features = grad.shape
    gamma_grad[:] = 0
    beta_grad[:] = 0
    for i in range(n):
        for j in range(features):
            g = grad[i, j]
            beta_grad[j] += g
            gamma_grad[j] += g * x_hat[i, j]


@compiled
def _input_grad_loop(
    grad: Any, x_hat: Any, gamma_grad: Any, beta_grad: Any, count: Any, scale: Any, out: Any
) -> Any:
    target = grad if out is None else out
    n, features = grad.shape
    for i in range(n):
        for j in range(features):
            g = grad[i, j] * count - beta_grad[j] - x_hat[i, j] * gamma_grad[j]
            target[i, j] = g * scale[j]


def backward_numpy(
    grad: np.ndarray,
    x_hat: np.ndarray,
    gamma: np.ndarray,
    inv_std: np.ndarray,
    gamma_grad: np.ndarray,
    beta_grad: np.ndarray,
    need_input_grad: bool,
    in_place: bool = False,
) -> np.ndarray | None:
    """See ``batchnorm_backward``."""
    n = grad.shape[0]
    np.sum(grad, axis=0, out=beta_grad)
    np.einsum("ij,ij->j", grad, x_hat, out=gamma_grad)
    if not need_input_grad:
        return None
    out = np.multiply(grad, n, out=grad if in_place else None)
    out -= beta_grad
    out -= x_hat * gamma_grad
    out *= gamma * inv_std / grad.dtype.type(n)
    return out


def backward_numba(
    grad: np.ndarray,
    x_hat: np.ndarray,
    gamma: np.ndarray,
    inv_std: np.ndarray,
    gamma_grad: np.ndarray,
    beta_grad: np.ndarray,
    need_input_grad: bool,
    in_place: bool = False,
) -> np.ndarray | None:
    n = grad.shape[0]
    _grads_loop(grad, x_hat, gamma_grad, beta_grad)
    if not need_input_grad:
        return None
    scale = gamma * inv_std / grad.dtype.type(n)
    out = grad if in_place else np.empty_like(grad)
    count = grad.dtype.type(n)
    _input_grad_loop(grad, x_hat, gamma_grad, beta_grad, count, scale, None if in_place else out)
    return out
