"""Convolutions as im2col products over numpy arrays, a few examples at a time."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Patches(Protocol):
    """What a convolution takes of its kernel backend: the patches and their sum back."""

    def im2col(self, padded: np.ndarray, k: int, out: np.ndarray | None = None) -> np.ndarray: ...

    def col2im(self, cols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...


def chunks(padded: np.ndarray, k: int, chunk_bytes: int) -> list[slice]:
    """Consecutive slices of examples whose patches take about ``chunk_bytes``."""
    n, hp, wp, c = padded.shape
    per_example = (hp - k + 1) * (wp - k + 1) * k * k * c * padded.itemsize
    step = max(1, chunk_bytes // per_example)
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def conv2d_numpy(
    kernels: Patches, padded: np.ndarray, w: np.ndarray, k: int, chunk_bytes: int
) -> np.ndarray:
    """See ``conv2d``."""
    n, hp, wp, _ = padded.shape
    out = np.empty((n, hp - k + 1, wp - k + 1, w.shape[1]), padded.dtype)
    for chunk in chunks(padded, k, chunk_bytes):
        cols = kernels.im2col(padded[chunk], k)
        np.matmul(cols, w, out=out[chunk].reshape(len(cols), -1))
    return out


def conv2d_backward_numpy(
    kernels: Patches,
    padded: np.ndarray,
    grad: np.ndarray,
    w: np.ndarray,
    k: int,
    weight_grad: np.ndarray,
    need_input_grad: bool,
    chunk_bytes: int,
) -> np.ndarray | None:
    """See ``conv2d_backward``."""
    grad = np.ascontiguousarray(grad)
    # a contiguous transpose: OpenBLAS multiplies by it 3-4x faster than by the view here
    w_t = np.ascontiguousarray(w.T) if need_input_grad else None
    input_grad = np.zeros_like(padded) if need_input_grad else None
    for index, chunk in enumerate(chunks(padded, k, chunk_bytes)):
        cols = kernels.im2col(padded[chunk], k)
        rows = grad[chunk].reshape(len(cols), -1)
        if index == 0:
            np.matmul(cols.T, rows, out=weight_grad)
        else:
            weight_grad += cols.T @ rows
        if input_grad is not None and w_t is not None:
            patch_grads = np.matmul(rows, w_t, out=cols)  # the chunk's patches are done
            kernels.col2im(patch_grads.reshape(*grad[chunk].shape[:3], k, k, -1), input_grad[chunk])
    if input_grad is None:
        return None
    pad, (h, wd) = k // 2, grad.shape[1:3]
    return input_grad[:, pad : pad + h, pad : pad + wd, :]
