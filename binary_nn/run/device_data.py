"""A run's examples where its network computes: on a GPU, each split's stored rows (uint8
pixels) and labels are copied there once, and batches are gathered and scaled there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..data import Dataset
from ..data.dataset import EXACT_IN_FLOAT32
from ..nn.kernels import Array, KernelBackend


class DeviceData:
    """``dataset``'s examples as arrays of ``kernels``, scaled to ``dtype``.

    On the numpy backends nothing is copied and a batch is what ``Dataset.scale`` makes
    of the rows, as before there were other backends.
    """

    def __init__(self, dataset: Dataset, kernels: KernelBackend, dtype: Any) -> None:
        self.dataset = dataset
        self.kernels = kernels
        self.dtype = np.dtype(dtype)
        self._copies: dict[str, Array] = {}

    def _stored(self, name: str) -> Array:
        """``x_train``, ``y_test``, ...: on the device, copied on first use."""
        if name not in self._copies:
            self._copies[name] = self.kernels.asarray(getattr(self.dataset, name))
        return self._copies[name]

    def scale(self, raw: Array) -> Array:
        """Stored rows as the network sees them (see ``scale_pixels``)."""
        if isinstance(raw, np.ndarray):
            return self.dataset.scale(raw, self.dtype)
        xp, divisor = self.kernels.xp, self.dataset.pixel_divisor
        target = self.kernels.dtype(self.dtype)
        if raw.dtype != xp.uint8:
            return xp.astype(raw, target)
        if self.dtype == np.float32 and divisor in EXACT_IN_FLOAT32:
            out = xp.astype(raw, target)  # the same two exact-then-rounded steps as numpy's
            out -= divisor
            out /= divisor
            return out
        out = xp.astype(raw, self.kernels.dtype(np.float64)) / divisor - 1
        return xp.astype(out, target)

    def batch(self, index: np.ndarray) -> Array:
        """The training rows ``index`` (host integers), scaled."""
        return self.scale(self._rows("x_train", index))

    def batch_labels(self, index: np.ndarray) -> Array:
        """The labels of the training rows ``index``."""
        return self._rows("y_train", index)

    def _rows(self, name: str, index: np.ndarray) -> Array:
        stored = self._stored(name)
        if isinstance(stored, np.ndarray):
            return stored[index]
        return self.kernels.xp.take(stored, self.kernels.asarray(index), axis=0)

    def chunks(self, split: str, size: int = 4096, limit: int | None = None) -> Iterator[Array]:
        """The scaled rows of ``split`` ("train", "val" or "test") in consecutive chunks."""
        x = self._stored(f"x_{split}")
        stop = x.shape[0] if limit is None else min(limit, x.shape[0])
        for start in range(0, stop, size):
            yield self.scale(x[start : min(start + size, stop)])

    def labels(self, split: str, limit: int | None = None) -> Array:
        """The labels of ``split`` (its first ``limit``) on the device."""
        y = self._stored(f"y_{split}")
        return y if limit is None else y[:limit]
