"""``p x p`` max pooling (stride ``p``) of a channels-last batch, and its gradient."""

from __future__ import annotations

from typing import Any

import numpy as np

from .jit import compiled


@compiled
def _maxpool_loop(x: Any, p: Any, out: Any, index: Any) -> Any:
    # the channel loop innermost: contiguous, so that it vectorises
    n_, ho, wo, c = out.shape
    for n in range(n_):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    out[n, i, j, ch] = x[n, i * p, j * p, ch]
                    index[n, i, j, ch] = 0
                for r in range(p):
                    for s in range(p):
                        at = r * p + s
                        for ch in range(c):
                            v = x[n, i * p + r, j * p + s, ch]
                            if v > out[n, i, j, ch]:  # strictly: the first maximum wins
                                out[n, i, j, ch] = v
                                index[n, i, j, ch] = at


def maxpool_numpy(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """See ``maxpool``."""
    n, h, w, c = x.shape
    ho, wo = h // p, w // p
    best, index = None, np.zeros((n, ho, wo, c), np.int8)
    for r in range(p):  # p*p passes over strided views, no copy of the windows
        for s in range(p):
            view = x[:, r : ho * p : p, s : wo * p : p, :]
            if best is None:
                best = view.copy()
                continue
            better = view > best
            np.copyto(best, view, where=better)
            index[better] = r * p + s
    assert best is not None
    return best, index


def maxpool_numba(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    n, h, w, c = x.shape
    out = np.empty((n, h // p, w // p, c), x.dtype)
    index = np.empty((n, h // p, w // p, c), np.int8)
    _maxpool_loop(x, p, out, index)
    return out, index


@compiled
def _unpool_loop(grad: Any, index: Any, p: Any, out: Any) -> Any:
    n_, ho, wo, c = grad.shape
    zero = grad.dtype.type(0)
    for n in range(n_):
        for i in range(ho):
            for j in range(wo):
                for r in range(p):
                    for s in range(p):
                        at = r * p + s
                        for ch in range(c):
                            hit = index[n, i, j, ch] == at
                            out[n, i * p + r, j * p + s, ch] = grad[n, i, j, ch] if hit else zero


def unpool_numpy(grad: np.ndarray, index: np.ndarray, p: int, shape: tuple[int, ...]) -> np.ndarray:
    """See ``unpool``."""
    out = np.zeros(shape, grad.dtype)
    ho, wo = grad.shape[1], grad.shape[2]
    for r in range(p):
        for s in range(p):
            np.copyto(out[:, r : ho * p : p, s : wo * p : p, :], grad, where=index == r * p + s)
    return out


def unpool_numba(grad: np.ndarray, index: np.ndarray, p: int, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, grad.dtype)  # the loop writes every window
    ho, wo = grad.shape[1] * p, grad.shape[2] * p
    out[:, ho:] = 0  # rows and columns past the last whole window
    out[:, :ho, wo:] = 0
    _unpool_loop(grad, index, p, out)
    return out
