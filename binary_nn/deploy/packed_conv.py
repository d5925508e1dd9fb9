"""Convolutional blocks made ready for inference, and how the packed engine runs them.

A convolutional block (``Conv2d -> [Scaler] -> [MaxPool2d] -> [BatchNorm] -> activation``)
becomes a ``PackedConv``. With binary weights and a sign activation it is a *threshold*
stage, exact in integers:

- the first block sees integer pixels ``p`` with zero padding of ``x = p / d - 1`` (the
  network's padding is 0 in ``x``, so a tap outside the image adds nothing): its accumulator
  is ``A = 2 (sum of w p) - 2d (sum of w)``, both sums over the taps inside the image (an
  integer when ``2d`` is one: 255 for the image sets, 16 for digits), ``2d`` times the
  network's pre-activation;
- a block fed by signs (+-1, zero padding) accumulates ``A = sum of x w`` over the taps inside
  the image, ``2 popcount(xnor) - taps`` on bits;
- max-pooling comes before batch norm and the sign in the network, on pre-activations, so it
  pools ``A``; the scaler, batch norm and sign fold into a threshold per channel with a
  direction, as for dense layers (``packed``): the output bit is ``max(A) > T``
  (direction +1) or ``max(A) < T`` (-1), which on bits is the OR (the AND) of the window's
  thresholded bits.

Any other block (real weights, ``tanh``) stays float32 with its scaler and batch norm folded
into a scale and shift per channel after the pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..nn.activations import Sign
from ..nn.conv import Conv2d, MaxPool2d
from ..nn.network import Block


@dataclass
class PackedConv:
    """One convolutional block of a packed model: ``kind`` ``"pixels"``, ``"binary"`` or
    ``"float"``; ``output`` ``"bits"`` (``threshold``, ``direction``) or ``"float"``
    (``scale``, ``shift``, then ``activation``)."""

    kind: str
    shape_in: tuple[int, int, int]  # (H, W, C_in)
    c_out: int
    k: int
    pool: int  # 1: no max-pool
    output: str
    weights: np.ndarray  # int8 +-1 (K, K, C_in, C_out) for packed kinds, float32 for "float"
    threshold: np.ndarray | None = None  # int32 (C_out,)
    direction: np.ndarray | None = None  # int8 (C_out,)
    scale: np.ndarray | None = None  # float64 (C_out,)
    shift: np.ndarray | None = None  # float64 (C_out,)
    activation: str = "sign"
    pixel_factor: int = 0  # 2d, for "pixels"

    @property
    def packed(self) -> bool:
        return self.kind in ("pixels", "binary")

    @property
    def shape_out(self) -> tuple[int, int, int]:
        h, w, _ = self.shape_in
        return h // self.pool, w // self.pool, self.c_out

    @property
    def n_out(self) -> int:
        return math.prod(self.shape_out)

    def describe(self) -> str:
        h, w, c = self.shape_in
        how = {"pixels": "packed: integer pixels x +-1", "binary": "packed: XNOR-popcount",
               "float": "float32"}[self.kind]  # fmt: skip
        pool = f", max-pool {self.pool}" if self.pool > 1 else ""
        out = "threshold -> bits" if self.output == "bits" else self.activation
        return f"{h}x{w}x{c}->{self.c_out}c{self.k}{pool} {how}, {out}"

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "shape_in": list(self.shape_in), "c_out": self.c_out,
            "k": self.k, "pool": self.pool, "output": self.output,
            "activation": self.activation, "pixel_factor": self.pixel_factor,
        }  # fmt: skip


def conv_of(block: Block) -> tuple[Conv2d, int]:
    """The block's convolution and its max-pool size (1 without one)."""
    conv = block.weight_layer
    assert isinstance(conv, Conv2d)
    pools = [layer.size for layer in block.layers if isinstance(layer, MaxPool2d)]
    return conv, pools[0] if pools else 1


def pack_conv(
    block: Block,
    first: bool,
    binary_input: bool,
    input_divisor: float,
    fold: Any,
    thresholds: Any,
) -> PackedConv:
    """The ``PackedConv`` of a convolutional block; ``fold`` and ``thresholds`` are the
    dense layers' (``_fold``, ``_thresholds``)."""
    conv, pool = conv_of(block)
    h, w, c_in = block.input_shape
    weights = np.asarray(conv.effective_weight(), dtype=np.float64)
    k, c_out = conv.k, weights.shape[3]
    scale, shift = fold(block, conv.fan_in)
    sign_out = isinstance(block.activation.activation, Sign)
    binary = conv.quantizer.binary and (first or binary_input)
    factor = 2 * input_divisor
    if binary and first and factor != round(factor):
        binary = False  # pixels scaled by a divisor whose double is not an integer
    if binary and sign_out:
        kind = "pixels" if first else "binary"
        acc_scale = 1 / factor if first else 1.0  # A in units of the pre-activation
        bound = (2 * 255 + int(factor)) * k * k * c_in + 1 if first else k * k * c_in + 1
        t, d = thresholds(acc_scale * scale, shift.copy(), bound)
        return PackedConv(
            kind, (h, w, c_in), c_out, k, pool, "bits", weights.astype(np.int8), t, d,
            pixel_factor=round(factor) if first else 0,
        )  # fmt: skip
    # real weights, or binary weights on a float input: sign(W) as floats
    return PackedConv(
        "float", (h, w, c_in), c_out, k, pool, "float", weights.astype(np.float32),
        scale=scale, shift=shift, activation=block.activation.activation.name,
    )  # fmt: skip


def convolve(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The zero-padded ``K x K`` convolution of a channels-last batch, in float32 (exact for
    the integer sums of the packed kinds: every partial sum is an integer below 2^24)."""
    n, h, w, c = x.shape
    k = weights.shape[0]
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * w, k * k * c)
    out = cols.astype(np.float32) @ weights.reshape(k * k * c, -1).astype(np.float32)
    return out.reshape(n, h, w, -1)


def max_pool(a: np.ndarray, p: int) -> np.ndarray:
    if p == 1:
        return a
    n, h, w, c = a.shape
    ho, wo = h // p, w // p
    return a[:, : ho * p, : wo * p].reshape(n, ho, p, wo, p, c).max(axis=(2, 4))


def inside_sums(conv: PackedConv) -> np.ndarray:
    """Per output position and channel, the sum of the weights of the taps inside the image
    (H, W, C_out): what zero padding leaves of a constant input."""
    h, w, c_in = conv.shape_in
    return convolve(np.ones((1, h, w, c_in), np.float32), conv.weights)[0]


def run_conv(conv: PackedConv, x: np.ndarray, input_divisor: float) -> np.ndarray:
    """A stage on a batch: integer pixels (N, H, W, C) for the first, else +-1 or floats;
    returns +-1 (float32) for a threshold stage, else the activation's floats."""
    if conv.kind == "pixels":
        a = 2 * convolve(np.asarray(x, np.float32), conv.weights)
        a -= conv.pixel_factor * inside_sums(conv)
    elif conv.kind == "binary":
        a = convolve(x, conv.weights)
    else:
        inputs = x
        if x.dtype == np.uint8 or np.issubdtype(x.dtype, np.integer):  # the pixels
            inputs = np.asarray(x, np.float32) / np.float32(input_divisor) - 1
        a = convolve(inputs, conv.weights)
    a = max_pool(a, conv.pool)
    if conv.output == "bits":
        assert conv.threshold is not None and conv.direction is not None
        on = np.where(conv.direction > 0, a > conv.threshold, a < conv.threshold)
        return np.where(on, np.float32(1), np.float32(-1))
    assert conv.scale is not None and conv.shift is not None
    value = a.astype(np.float64) * conv.scale + conv.shift
    if conv.activation == "tanh":
        return np.tanh(value).astype(np.float32)
    if conv.activation == "id":
        return value.astype(np.float32)
    return np.where(value > 0, np.float32(1), np.float32(-1))


def check_values(stage: Any, where: str, weight_dtype: type) -> None:
    """Refuse a stage whose arrays have another dtype than export writes, or values the
    engine cannot use (NaN or infinite scales, directions other than +-1): such a file
    predicts garbage without an error otherwise."""
    if stage.weights.dtype != weight_dtype:
        raise ValueError(f"{where} weights are {stage.weights.dtype}, not {np.dtype(weight_dtype)}")
    if stage.weights.dtype.kind == "f" and not np.isfinite(stage.weights).all():
        raise ValueError(f"{where} weights hold NaN or infinite values")
    for name, kind in (("threshold", "i"), ("direction", "i"), ("scale", "f"), ("shift", "f")):
        value = getattr(stage, name)
        if value is None:
            continue
        if value.dtype.kind != kind:
            raise ValueError(
                f"{where} {name} is {value.dtype}, not {'integer' if kind == 'i' else 'float'}"
            )
        if kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"{where} {name} holds NaN or infinite values")
    if stage.direction is not None and not np.isin(stage.direction, (-1, 1)).all():
        raise ValueError(f"{where} direction holds values other than -1 and +1")


def check_conv(conv: PackedConv, k: int) -> None:
    kk, _, c_in, c_out = conv.weights.shape
    if (kk, c_in, c_out) != (conv.k, conv.shape_in[2], conv.c_out):
        raise ValueError(f"convolution {k} weights have shape {conv.weights.shape}")
    needed = ("threshold", "direction") if conv.output == "bits" else ("scale", "shift")
    for name in needed:
        value = getattr(conv, name)
        if value is None or value.shape != (conv.c_out,):
            raise ValueError(f"convolution {k} lacks a {name} of {conv.c_out} values")
    if conv.kind == "pixels" and conv.pixel_factor < 1:
        raise ValueError(f"convolution {k} lacks its pixel factor")
    check_values(conv, f"convolution {k}", np.float32 if conv.kind == "float" else np.int8)


def refuse_c(conv: PackedConv, k: int) -> None:
    """The C model runs threshold stages only (integers)."""
    if conv.output != "bits":
        raise ConfigError(
            f"the C model runs binary convolutions with sign activations; convolution {k} is "
            f"{conv.describe()}: export it as npz, or train it with --binarize and a sign "
            "activation"
        )
