"""The in-memory dataset every learning run reads, and its scaling rules.

Images keep their shape, channels last: ``(N, H, W, C)`` — MNIST and Fashion-MNIST are
``(N, 28, 28, 1)``, CIFAR-10 ``(N, 32, 32, 3)`` with channels in R, G, B order, digits
``(N, 8, 8, 1)``; other data may be plain vectors ``(N, F)``. Channels last is the layout of the
published (Keras) code, so a network that wants vectors flattens an image exactly as it did.
Images stay in their stored dtype (uint8 for the image sets) and are scaled one batch at a
time, so a run never holds a float copy of a whole training set.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

#: more classes than this is taken for a mistake in the labels
MAX_CLASSES = 100_000
#: uint8 images: ``x = p / 127.5 - 1`` maps 0..255 to [-1, 1]
PIXEL_DIVISOR = 127.5
#: divisors for which float32's ``(p - d) / d`` equals float64's ``p / d - 1`` rounded
#: (127.5: checked for all 256 values in the tests; a power of two: every step is exact)
EXACT_IN_FLOAT32 = (127.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)


def scale_pixels(raw: np.ndarray, dtype: np.dtype, divisor: float = PIXEL_DIVISOR) -> np.ndarray:
    """Integer pixels ``p`` to ``x = p / divisor - 1``, exactly as float64 computes it rounded
    to ``dtype``: the one place binary_nn turns pixels into inputs (training, evaluation,
    export and the packed engine all take ``divisor`` from the dataset).

    In float32, ``(p - divisor) / divisor`` has one rounding of an exact quotient and equals
    the float64 formula rounded to float32 for the divisors of the built-in datasets, at a
    third of the cost of a lookup table; float64 uses the formula itself.
    """
    if np.dtype(dtype) == np.float32 and divisor in EXACT_IN_FLOAT32:
        out = np.subtract(raw, np.float32(divisor), dtype=np.float32)
        out /= np.float32(divisor)
        return out
    out = np.divide(raw, divisor, dtype=np.float64)
    out -= 1
    return out.astype(dtype, copy=False)


@dataclass
class Dataset:
    """Train and test arrays of one classification task.

    ``x_*`` hold one example per row: vectors ``(N, F)`` or images ``(N, H, W, C)`` (``(N, H, W)``
    gets a channel axis); uint8 pixels, scaled to ``x / pixel_divisor - 1`` batch by batch, or
    floats used as they are. ``y_*`` are integer labels ``0 .. n_classes - 1``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 0
    pixel_divisor: float = PIXEL_DIVISOR
    #: a validation split held out of the training set (``with_validation``); empty if none
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.x_val is None or self.y_val is None:
            self.x_val = self.x_train[:0]
            self.y_val = self.y_train[:0]
        if len(self.x_test) == 0 and self.x_test.ndim < 2:  # an empty test split, any shape
            self.x_test = self.x_test.reshape(0, *self.x_train.shape[1:])
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim < 2:
                raise DataError(f"{self.name}: x_{split} must hold one example per row")
            if x.ndim == 3:  # (N, H, W): one channel
                setattr(self, f"x_{split}", x[..., np.newaxis])
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(
                    f"{self.name}: y_{split} must be a vector with one label per row of "
                    f"x_{split} ({len(x)}), got shape {y.shape}"
                )
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{self.name}: y_{split} must hold integer labels, got {y.dtype}")
            if len(y) and y.min() < 0:
                raise DataError(f"{self.name}: y_{split} holds negative labels")
            if x.ndim >= 2 and math.prod(x.shape[1:]) == 0:
                raise DataError(f"{self.name}: x_{split} holds examples with no values")
            if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
                row = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0, 0])
                raise DataError(
                    f"{self.name}: x_{split} holds NaN or infinite values (first in row {row}); "
                    "clean or drop those examples"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: x_train holds examples of shape {self.x_train.shape[1:]} but "
                f"x_test of shape {self.x_test.shape[1:]}"
            )
        if len(self.y_train) == 0:
            raise DataError(f"{self.name}: the training set is empty")
        classes = np.unique(self.y_train)
        largest = int(classes[-1])
        if largest >= MAX_CLASSES or largest >= 2 * len(classes) + 100:
            raise DataError(
                f"{self.name}: labels must be 0 .. C-1, but y_train holds {largest} among only "
                f"{len(classes)} distinct labels; renumber them"
            )
        unseen = np.setdiff1d(np.unique(self.y_test), classes)
        if len(unseen):
            shown = ", ".join(map(str, unseen[:5]))
            raise DataError(
                f"{self.name}: y_test holds label(s) {shown} that y_train never has; a classifier "
                "cannot learn them"
            )
        self.n_classes = max(self.n_classes, largest + 1)
        self.y_train = self.y_train.astype(np.intp, copy=False)
        self.y_test = self.y_test.astype(np.intp, copy=False)
        self.y_val = self.labels("val").astype(np.intp, copy=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example: ``(H, W, C)`` for images, ``(F,)`` for vectors."""
        return tuple(int(n) for n in self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Values per example."""
        return math.prod(self.input_shape)

    def scale(self, raw: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Rows of ``x_train``/``x_test`` as the network sees them, in ``dtype``."""
        if raw.dtype == np.uint8:
            return scale_pixels(raw, dtype, self.pixel_divisor)
        return raw.astype(dtype, copy=False)

    @property
    def splits(self) -> list[str]:
        """The splits that hold examples: ``train``, then ``val`` when held out, then ``test``."""
        return [s for s in ("train", "val", "test") if len(self.labels(s))]

    def labels(self, split: str) -> np.ndarray:
        y: np.ndarray = getattr(self, f"y_{split}")
        return y

    def with_validation(self, fraction: float, seed: int) -> Dataset:
        """A copy whose training set keeps ``1 - fraction`` of this one (in its order) and
        whose validation split holds the rest, drawn stratified by class with ``seed``."""
        from sklearn.model_selection import train_test_split

        if fraction <= 0:
            return self
        rows = np.arange(len(self.y_train))
        try:
            kept, held = train_test_split(
                rows, test_size=fraction, stratify=self.y_train, random_state=seed
            )
        except ValueError as exc:
            raise DataError(
                f"--val-split {fraction:g} cannot hold out a stratified validation set of "
                f"{self.name}'s {len(rows)} training examples ({exc}); choose another fraction"
            ) from None
        kept, held = np.sort(kept), np.sort(held)
        return Dataset(
            self.name, self.x_train[kept], self.y_train[kept], self.x_test, self.y_test,
            self.n_classes, self.pixel_divisor, self.x_train[held], self.y_train[held],
        )  # fmt: skip

    def chunks(
        self, split: str, dtype: np.dtype, size: int = 4096, limit: int | None = None
    ) -> Iterator[np.ndarray]:
        """The scaled rows of ``split`` ("train", "val" or "test") in consecutive chunks."""
        x = getattr(self, f"x_{split}")
        stop = len(x) if limit is None else min(limit, len(x))
        for start in range(0, stop, size):
            yield self.scale(x[start : min(start + size, stop)], dtype)
