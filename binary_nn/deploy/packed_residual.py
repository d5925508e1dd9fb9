"""Residual units made ready for inference, and how the packed engine runs them.

A residual unit (``binary_nn.nn.residual``) with binary weights and a sign activation becomes
a ``PackedResidual``. Its input is the real-valued stream (float64); the unit

- signs the stream (after RSign's threshold, ``sign(x - alpha)``) and convolves the signs
  with its +-1 weights: an integer accumulator (XNOR-popcount in C), exact;
- max-pools the accumulator, divides it by the scaler's fan-in, applies batch norm in
  evaluation mode (``a * scale + shift``, with ``scale = gamma / sqrt(var + eps)`` and
  ``shift = beta - mean * scale`` computed as the network computes them);
- adds the shortcut: the stream itself, or its window means where the path pools, then a
  real 1x1 projection with its batch norm, or zero channels appended, where the channels
  grow;
- applies RPReLU where the unit has one.

Every step is the float64 network's operation on the same values in the same order, so the
stream is the network's; only the projection's and the output layer's sums may be added in
another order by another BLAS (last bits), which leaves the predictions alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..nn.activations import Sign
from ..nn.conv import AvgPool2d, ChannelPad, Conv2d, MaxPool2d
from ..nn.layers import BatchNorm, Scaler
from ..nn.react import RPReLU, Threshold
from ..nn.residual import Residual
from .packed_conv import convolve, max_pool

#: the arrays a packed residual stage may hold, by name: their dtype kind
ARRAYS = {
    "weights": "i", "alpha": "f", "scale": "f", "shift": "f", "project": "f",
    "project_scale": "f", "project_shift": "f", "rprelu": "f",
}  # fmt: skip


@dataclass
class PackedResidual:
    """One residual unit of a packed model (see the module docstring)."""

    shape_in: tuple[int, int, int]  # (H, W, C_in)
    c_out: int
    k: int
    pool: int  # 1: no pooling
    divisor: int  # the scaler's fan-in (1 without one)
    weights: np.ndarray  # int8 +-1 (K, K, C_in, C_out)
    alpha: np.ndarray  # float64 (C_in,): RSign's thresholds (zeros without)
    scale: np.ndarray  # float64 (C_out,): the path's batch norm (ones without)
    shift: np.ndarray  # float64 (C_out,)
    project: np.ndarray | None = None  # float64 (C_in, C_out): the shortcut's 1x1 projection
    project_scale: np.ndarray | None = None  # float64 (C_out,): its batch norm
    project_shift: np.ndarray | None = None
    rprelu: np.ndarray | None = None  # float64 (3, C_out): gamma, beta, zeta
    pad: bool = False  # the shortcut appends zero channels (no projection)

    kind = "residual"
    output = "float"  # a real-valued stream, never bits

    @property
    def packed(self) -> bool:
        return True  # the path's convolution reads signs

    @property
    def shape_out(self) -> tuple[int, int, int]:
        h, w, _ = self.shape_in
        return h // self.pool, w // self.pool, self.c_out

    @property
    def n_out(self) -> int:
        return math.prod(self.shape_out)

    def describe(self) -> str:
        h, w, c = self.shape_in
        pool = f", max-pool {self.pool} (shortcut: mean)" if self.pool > 1 else ""
        shortcut = (
            "1x1 projection"
            if self.project is not None
            else "zero-padded"
            if self.pad
            else "identity"
        )
        extras = "".join(
            f", {name}" for name, on in (("RSign", self.alpha.any()), ("RPReLU", self.rprelu
                                                                        is not None)) if on
        )  # fmt: skip
        return (
            f"{h}x{w}x{c}->{self.c_out}c{self.k}{pool} residual: packed XNOR-popcount of "
            f"the stream's signs + {shortcut} shortcut, float64{extras}"
        )

    def spec(self) -> dict[str, Any]:
        return {
            "stage": "residual", "shape_in": list(self.shape_in), "c_out": self.c_out,
            "k": self.k, "pool": self.pool, "divisor": self.divisor, "pad": self.pad,
        }  # fmt: skip

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: value for name in ARRAYS if (value := getattr(self, name)) is not None}


def _norm(layer: BatchNorm | None, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm in evaluation mode as the float64 network computes it (ones and zeros
    without one)."""
    if layer is None:
        return np.ones(channels), np.zeros(channels)
    scale = layer.gamma.value.astype(np.float64) / np.sqrt(
        layer.running_var.astype(np.float64) + layer.eps
    )
    shift = layer.beta.value.astype(np.float64) - layer.running_mean.astype(np.float64) * scale
    return scale, shift


def pack_residual(unit: Residual, k: int) -> PackedResidual:
    """The ``PackedResidual`` of unit ``k``; a unit export cannot pack is one sentence."""
    conv = unit.weight_layer
    if not (
        isinstance(conv, Conv2d)
        and conv.quantizer.binary
        and isinstance(unit.activation.activation, Sign)
    ):
        raise ConfigError(
            f"export packs residual units with binary weights and a sign activation; unit {k} "
            "is not (train it with --binarize and --hidden-act sign, signsat or signtanh)"
        )
    path, shortcut = unit.path.layers, unit.shortcut.layers
    h, w, c_in = unit.input_shape
    c_out = unit.output_shape[-1]
    pools = [layer.size for layer in path if isinstance(layer, MaxPool2d)]
    scalers = [layer for layer in path if isinstance(layer, Scaler)]
    norms = [layer for layer in path if isinstance(layer, BatchNorm)]
    thresholds = [layer for layer in path if isinstance(layer, Threshold)]
    scale, shift = _norm(norms[0] if norms else None, c_out)
    alpha = thresholds[0].alpha.value.astype(np.float64) if thresholds else np.zeros(c_in)
    stage = PackedResidual(
        (h, w, c_in), c_out, conv.k, pools[0] if pools else 1,
        scalers[0].fan_in if scalers else 1,
        np.asarray(conv.effective_weight(), dtype=np.float64).astype(np.int8), alpha, scale,
        shift,
    )  # fmt: skip
    projections = [layer for layer in shortcut if isinstance(layer, Conv2d)]
    if projections:
        weights = projections[0].effective_weight().astype(np.float64)
        stage.project = weights.reshape(c_in, c_out)
        shortcut_norms = [layer for layer in shortcut if isinstance(layer, BatchNorm)]
        stage.project_scale, stage.project_shift = _norm(
            shortcut_norms[0] if shortcut_norms else None, c_out
        )
    stage.pad = any(isinstance(layer, ChannelPad) for layer in shortcut)
    pooled = [layer.size for layer in shortcut if isinstance(layer, AvgPool2d)]
    if pooled != pools:
        raise ConfigError(f"unit {k}'s shortcut pools otherwise than its path: export it as is")
    after = unit.after.layers
    if after:
        rprelu = after[0]
        assert isinstance(rprelu, RPReLU)
        stage.rprelu = np.stack(
            [p.value.astype(np.float64) for p in (rprelu.gamma, rprelu.beta, rprelu.zeta)]
        )
    return stage


def load_residual(spec: dict[str, Any], arrays: dict[str, np.ndarray], k: int) -> PackedResidual:
    """A stage ``PackedResidual.spec`` and ``arrays`` wrote (stage ``k``), checked."""
    prefix = f"conv.{k}."
    stage = PackedResidual(
        tuple(spec["shape_in"]), spec["c_out"], spec["k"], spec["pool"], spec["divisor"],
        arrays[prefix + "weights"], arrays[prefix + "alpha"], arrays[prefix + "scale"],
        arrays[prefix + "shift"], pad=bool(spec.get("pad", False)),
    )  # fmt: skip
    for name in ("project", "project_scale", "project_shift", "rprelu"):
        setattr(stage, name, arrays.get(prefix + name))
    check_residual(stage, k)
    return stage


def check_residual(stage: PackedResidual, k: int) -> None:
    """Refuse a stage whose arrays do not fit its shapes, or hold what the engine cannot use."""
    _, _, c_in = stage.shape_in
    c_out = stage.c_out
    shapes = {
        "weights": (stage.k, stage.k, c_in, c_out), "alpha": (c_in,), "scale": (c_out,),
        "shift": (c_out,), "project": (c_in, c_out), "project_scale": (c_out,),
        "project_shift": (c_out,), "rprelu": (3, c_out),
    }  # fmt: skip
    for name, kind in ARRAYS.items():
        value = getattr(stage, name)
        if value is None:
            continue
        if value.shape != shapes[name] or value.dtype.kind != kind:
            raise ValueError(f"residual stage {k} {name} has shape {value.shape} ({value.dtype})")
        if kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"residual stage {k} {name} holds NaN or infinite values")
    if not np.isin(stage.weights, (-1, 1)).all():
        raise ValueError(f"residual stage {k} weights hold values other than -1 and +1")
    grows = stage.project is not None or stage.pad
    if grows == (c_in == c_out) or (stage.pad and stage.project is not None):
        raise ValueError(
            f"residual stage {k} has {c_in} -> {c_out} channels and no matching shortcut"
        )
    if stage.divisor < 1 or stage.pool < 1:
        raise ValueError(f"residual stage {k} has a divisor or pool below 1")


def run_residual(stage: PackedResidual, x: np.ndarray) -> np.ndarray:
    """The stage on a float64 stream (N, H, W, C_in)."""
    signs = np.where(x - stage.alpha > 0, np.float32(1), np.float32(-1))
    acc = max_pool(convolve(signs, stage.weights), stage.pool).astype(np.float64)
    if stage.divisor != 1:
        acc /= stage.divisor
    path = acc * stage.scale
    path += stage.shift
    shortcut = x
    if stage.pool > 1:  # the window means, as the network's average pool takes them
        n, h, w, c = x.shape
        p = stage.pool
        windows = x[:, : h // p * p, : w // p * p, :].reshape(n, h // p, p, w // p, p, c)
        shortcut = np.mean(windows, axis=(2, 4))
    if stage.project is not None:
        assert stage.project_scale is not None and stage.project_shift is not None
        n, h, w, _ = shortcut.shape  # the network's 1x1 convolution: one product of rows
        shortcut = (shortcut.reshape(n * h * w, -1) @ stage.project).reshape(n, h, w, -1)
        shortcut *= stage.project_scale
        shortcut += stage.project_shift
    if stage.pad:  # zero channels appended, as the network's shortcut appends them
        zeros = np.zeros((*shortcut.shape[:-1], stage.c_out - shortcut.shape[-1]))
        shortcut = np.concatenate([shortcut, zeros], axis=-1)
    out = path + shortcut
    if stage.rprelu is not None:
        gamma, beta, zeta = stage.rprelu
        shifted = out - gamma
        out = np.where(shifted > 0, shifted, beta * shifted) + zeta
    return out
