"""Convolution by patches: a zero-padded channels-last batch to its ``k x k`` patches
(im2col), and the patches' gradients added back into the batch (col2im)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .jit import compiled


@compiled
def _im2col_loop(padded: Any, k: Any, out: Any) -> Any:
    n_, hp, wp, c = padded.shape
    h, w = hp - k + 1, wp - k + 1
    for n in range(n_):
        for i in range(h):
            for j in range(w):
                row = (n * h + i) * w + j
                for di in range(k):
                    for dj in range(k):
                        col = (di * k + dj) * c
                        for ch in range(c):
                            out[row, col + ch] = padded[n, i + di, j + dj, ch]


def im2col_numpy(padded: np.ndarray, k: int, out: np.ndarray) -> np.ndarray:
    """See ``im2col``."""
    n, hp, wp, c = padded.shape
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    # (N, H, W, C, K, K) -> (N, H, W, K, K, C)
    out.reshape(n, hp - k + 1, wp - k + 1, k, k, c)[...] = windows.transpose(0, 1, 2, 4, 5, 3)
    return out


def im2col_numba(padded: np.ndarray, k: int, out: np.ndarray) -> np.ndarray:
    _im2col_loop(padded, k, out)
    return out


@compiled
def _col2im_loop(cols: Any, out: Any) -> Any:
    n_, h, w, k, _, c = cols.shape
    for n in range(n_):
        for i in range(h):
            for j in range(w):
                for di in range(k):
                    for dj in range(k):
                        for ch in range(c):
                            out[n, i + di, j + dj, ch] += cols[n, i, j, di, dj, ch]


def col2im_numpy(cols: np.ndarray, out: np.ndarray) -> np.ndarray:
    """See ``col2im``."""
    _, h, w, k, _, _ = cols.shape
    for i in range(k):
        for j in range(k):
            out[:, i : i + h, j : j + w, :] += cols[:, :, :, i, j, :]
    return out


def col2im_numba(cols: np.ndarray, out: np.ndarray) -> np.ndarray:
    _col2im_loop(cols, out)
    return out
