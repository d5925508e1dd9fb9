"""A trained network made ready for inference: bit-packed binary layers, integer thresholds.

``pack_network`` turns a network (as a checkpoint saved it) into a ``PackedModel``:

- a hidden layer with binary weights whose activation is a sign (``sign``, ``signsat``,
  ``signtanh``: the forward is ``sign`` in all three) becomes a *threshold layer*: its
  pre-activation is an integer ``acc`` (below), and the scaler, batch norm (evaluation mode)
  and sign fold into one integer threshold per neuron with a direction: the output bit is 1
  (+1) when ``acc > T`` (``direction`` +1) or ``acc < T`` (-1, batch norm's ``gamma < 0``);
  ``sign(0) = -1`` as in training;
- the first layer sees integer pixels ``p`` (``x = p / input_divisor - 1``), so its ``acc`` is
  ``p @ sign(W)``, exact in integers (and in float32: every partial sum is an integer below
  2^24); a layer fed by sign outputs has ``acc = popcount(xnor(x, w))`` over 64-bit words
  (1 bits for +1), thresholded directly;
- every other layer (real weights, or an activation that is not a sign) stays float32 with
  batch norm folded into a scale and shift per neuron; its input is turned to floats;
- the output layer gives scores; the class is their arg-max as the float64 network decides
  it (``tanh`` saturates to exactly 1.0 in float64 from 19.06 on, so scores past that tie
  and the first wins).

``PackedModel.save`` writes one ``.npz`` of plain arrays (no pickled objects) with the
architecture as JSON text and a format version; ``load_packed`` refuses anything else in
one sentence.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..archive import read_npz
from ..errors import ConfigError
from ..files import write_bytes_atomic
from ..nn.activations import Sign
from ..nn.conv import Conv2d, GlobalAvgPool
from ..nn.kernels.bits import WORD, pack_bits
from ..nn.layers import BatchNorm, Linear, Scaler
from ..nn.network import Block, Network
from ..nn.residual import Residual
from .packed_conv import PackedConv, check_conv, check_values, pack_conv
from .packed_residual import PackedResidual, load_residual, pack_residual

FORMAT = "binary_nn.packed"
#: 1: chains; 2: residual stages and global average pooling too (a chain is still written as 1)
FORMAT_VERSION = 2


def tanh_saturation() -> float:
    """The smallest float64 ``a`` with ``tanh(a) == 1.0``: scores above it tie."""
    low, high = 1.0, 40.0
    for _ in range(200):
        mid = (low + high) / 2
        if np.tanh(mid) == 1.0:
            high = mid
        else:
            low = mid
    return high


@dataclass
class PackedLayer:
    """One layer of a ``PackedModel``.

    ``kind``: ``"pixels"`` (the first layer, integer pixels times +-1 weights), ``"binary"``
    (+-1 inputs and weights, XNOR-popcount) or ``"float"``. ``output``: ``"bits"`` (a threshold
    layer: ``threshold``, ``direction``), ``"float"`` (``scale``, ``shift``, then
    ``activation``) or ``"scores"`` (the output layer: ``scale``, ``shift`` map the integer
    accumulator to the float64 network's pre-activation).
    """

    kind: str
    n_in: int
    n_out: int
    output: str
    weights: np.ndarray  # uint64 (n_out, words) packed, or float32 (n_in, n_out)
    threshold: np.ndarray | None = None  # int32 (n_out,)
    direction: np.ndarray | None = None  # int8 (n_out,)
    scale: np.ndarray | None = None  # float64 (n_out,)
    shift: np.ndarray | None = None  # float64 (n_out,)
    activation: str = "sign"

    @property
    def packed(self) -> bool:
        return self.kind in ("pixels", "binary")

    def describe(self) -> str:
        how = {
            "pixels": "packed: integer pixels x +-1",
            "binary": "packed: XNOR-popcount",
            "float": "float32",
        }[self.kind]
        out = {"bits": "threshold -> bits", "float": self.activation, "scores": "scores"}
        return f"{self.n_in}->{self.n_out} {how}, {out[self.output]}"


@dataclass
class PackedModel:
    """Layers, how pixels scale (``x = p / input_divisor - 1``) and how scores decide."""

    layers: list[PackedLayer]
    input_divisor: float
    last_activation: str
    source: dict[str, Any] = field(default_factory=dict[str, Any])
    #: the convolutional stages before the dense layers (``packed_conv``, and residual units:
    #: ``packed_residual``)
    convs: list[PackedConv | PackedResidual] = field(
        default_factory=list[PackedConv | PackedResidual]
    )
    #: whether the stages' output is averaged over positions (``gap``), not flattened
    global_pool: bool = False

    @property
    def version(self) -> int:
        """The file format a model needs: 1 unless it has residual stages or ``gap``."""
        residual = any(isinstance(stage, PackedResidual) for stage in self.convs)
        return FORMAT_VERSION if residual or self.global_pool else 1

    @property
    def n_inputs(self) -> int:
        if self.convs:
            return math.prod(self.convs[0].shape_in)
        return self.layers[0].n_in

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def fully_binary(self) -> bool:
        """Every layer packed: integers only after the pixels."""
        return all(layer.packed for layer in self.layers) and all(
            conv.output == "bits" for conv in self.convs
        )

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k, conv in enumerate(self.convs):
            if isinstance(conv, PackedResidual):
                out.update({f"conv.{k}.{name}": value for name, value in conv.arrays().items()})
                continue
            for name in ("weights", "threshold", "direction", "scale", "shift"):
                value = getattr(conv, name)
                if value is not None:
                    out[f"conv.{k}.{name}"] = value
        for k, layer in enumerate(self.layers):
            for name in ("weights", "threshold", "direction", "scale", "shift"):
                value = getattr(layer, name)
                if value is not None:
                    out[f"layer.{k}.{name}"] = value
        return out

    def header(self) -> dict[str, Any]:
        header = {
            "format": FORMAT,
            "version": self.version,
            "input_divisor": self.input_divisor,
            "last_activation": self.last_activation,
            "layers": [
                {
                    "kind": layer.kind,
                    "n_in": layer.n_in,
                    "n_out": layer.n_out,
                    "output": layer.output,
                    "activation": layer.activation,
                }
                for layer in self.layers
            ],
            "convs": [conv.spec() for conv in self.convs],
            "source": self.source,
        }
        return {**header, "global_pool": True} if self.global_pool else header

    def nbytes(self) -> int:
        """Bytes of the arrays the model holds."""
        return sum(a.nbytes for a in self.arrays().values())

    def save(self, path: str | Path) -> None:
        """One ``.npz``: plain arrays and the header as JSON text, written atomically."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {"header": np.array(json.dumps(self.header())), **self.arrays()}
        np.savez(buffer, **arrays)
        write_bytes_atomic(Path(path), buffer.getvalue())


def load_packed(path: str | Path) -> PackedModel:
    """Read a model ``PackedModel.save`` wrote; anything else is one sentence."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"model file {path} does not exist; export one first")
    if path.is_file() and not zipfile.is_zipfile(path):
        raise ConfigError(
            f"{path} is not a readable packed model (not an .npz archive); export it again"
        )
    arrays = read_npz(path, "a packed model written by binary_nn.export")
    try:
        if "header" not in arrays and "config" in arrays:
            raise ConfigError(
                f"{path} is a training checkpoint, not a packed model: export it first "
                f"(python -m binary_nn.export {path} --out DIR), or score it with "
                f"python -m binary_nn.evaluate {path}"
            )
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(
            f"{path} is not a readable packed model (a corrupt or truncated file? {exc}); "
            "export it again"
        ) from None
    if not isinstance(header, dict):
        raise ConfigError(f"{path} is not a packed model: its header is not an object")
    if header.get("format") != FORMAT or header.get("version") not in (1, FORMAT_VERSION):
        raise ConfigError(
            f"{path} is not a packed model of format {FORMAT} version 1 or {FORMAT_VERSION}"
        )
    try:
        layers = []
        for k, spec in enumerate(header["layers"]):
            layer = PackedLayer(
                spec["kind"], spec["n_in"], spec["n_out"], spec["output"],
                arrays[f"layer.{k}.weights"], activation=spec["activation"],
            )  # fmt: skip
            for name in ("threshold", "direction", "scale", "shift"):
                setattr(layer, name, arrays.get(f"layer.{k}.{name}"))
            _check_layer(layer, k)
            layers.append(layer)
        convs: list[PackedConv | PackedResidual] = []
        for k, spec in enumerate(header.get("convs", [])):
            if spec.get("stage") == "residual":
                convs.append(load_residual(spec, arrays, k))
                continue
            conv = PackedConv(
                spec["kind"], tuple(spec["shape_in"]), spec["c_out"], spec["k"], spec["pool"],
                spec["output"], arrays[f"conv.{k}.weights"], activation=spec["activation"],
                pixel_factor=spec["pixel_factor"],
            )  # fmt: skip
            for name in ("threshold", "direction", "scale", "shift"):
                setattr(conv, name, arrays.get(f"conv.{k}.{name}"))
            check_conv(conv, k)
            convs.append(conv)
        return PackedModel(
            layers, float(header["input_divisor"]), header["last_activation"],
            header["source"], convs, bool(header.get("global_pool", False)),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path} is an inconsistent packed model ({exc}); export it again"
        ) from None


def _check_layer(layer: PackedLayer, k: int) -> None:
    words = -(-layer.n_in // WORD)
    expected = (layer.n_out, words) if layer.packed else (layer.n_in, layer.n_out)
    if layer.weights.shape != expected:
        raise ValueError(f"layer {k} weights have shape {layer.weights.shape}, not {expected}")
    needed = {"bits": ("threshold", "direction")}.get(layer.output, ("scale", "shift"))
    for name in needed:
        value = getattr(layer, name)
        if value is None or value.shape != (layer.n_out,):
            raise ValueError(f"layer {k} lacks a {name} of {layer.n_out} values")
    check_values(layer, f"layer {k}", np.uint64 if layer.packed else np.float32)


def _fold(block: Block, fan_in: int) -> tuple[np.ndarray, np.ndarray]:
    """The block's pre-activation as ``a * scale + shift`` of its weight layer's output ``a``
    (scaler and evaluation-mode batch norm folded), in float64; per feature (a convolution's
    channel)."""
    n = block.output_shape[-1]
    scale, shift = np.ones(n), np.zeros(n)
    for layer in block.layers:
        if isinstance(layer, Scaler):
            scale /= fan_in
        elif isinstance(layer, BatchNorm):
            bn_scale = layer.gamma.value.astype(np.float64) / np.sqrt(
                layer.running_var.astype(np.float64) + layer.eps
            )
            bn_shift = layer.beta.value.astype(np.float64) - layer.running_mean * bn_scale
            scale, shift = scale * bn_scale, shift * bn_scale + bn_shift
    return scale, shift


def _thresholds(scale: np.ndarray, shift: np.ndarray, bound: int) -> Any:
    """``acc * scale + shift > 0`` as ``acc > T`` (direction +1) or ``acc < T`` (-1)."""
    threshold = np.zeros(len(scale), np.int32)
    direction = np.ones(len(scale), np.int8)
    for j, (a, b) in enumerate(zip(scale, shift, strict=True)):
        if a > 0:
            threshold[j] = math.floor(-b / a) if math.isfinite(-b / a) else bound
        elif a < 0:
            direction[j] = -1
            threshold[j] = math.ceil(-b / a) if math.isfinite(-b / a) else -bound
        else:  # no dependence on the input: always +1 when the shift is positive
            threshold[j] = -bound if b > 0 else bound
    return np.clip(threshold, -bound, bound), direction


def pack_network(network: Network, input_divisor: float = 127.5) -> PackedModel:
    """The ``PackedModel`` of ``network`` (batch norm's running statistics used):
    convolutional blocks and residual units first (``packed_conv``, ``packed_residual``),
    then the dense layers."""
    layers: list[PackedLayer] = []
    convs: list[PackedConv | PackedResidual] = []
    binary_input = global_pool = False
    for k, block in enumerate(network.blocks):
        if isinstance(block, Residual):
            convs.append(pack_residual(block, k))
            binary_input = False  # a real-valued stream
            continue
        weights = block.weight_layer
        global_pool = global_pool or any(isinstance(x, GlobalAvgPool) for x in block.layers)
        if isinstance(weights, Conv2d):
            conv = pack_conv(block, k == 0, binary_input, input_divisor, _fold, _thresholds)
            convs.append(conv)
            binary_input = conv.output == "bits"
            continue
        if not isinstance(weights, Linear):
            raise ConfigError(f"export cannot pack block {k}, a {weights.kind} layer")
        n_in, n_out = weights.fan_in, block.output_size
        w = np.asarray(weights.effective_weight(), dtype=np.float64).reshape(n_in, n_out)
        is_output = k == len(network.blocks) - 1
        sign_out = isinstance(block.activation.activation, Sign) and not is_output
        binary_w = weights.quantizer.binary
        scale, shift = _fold(block, weights.fan_in)
        if binary_w and (k == 0 or binary_input):
            kind = "pixels" if k == 0 else "binary"
            packed = pack_bits(w.T, pad=0 if k == 0 else 1)
            if k == 0:  # a = (p @ w) / divisor - sum(w)
                acc_scale = np.full(n_out, 1 / input_divisor)
                acc_shift = -w.sum(axis=0)
            else:  # a = 2 popcount(xnor) - n
                acc_scale, acc_shift = np.full(n_out, 2.0), np.full(n_out, -float(n_in))
            if sign_out:
                bound = 255 * n_in + 1 if k == 0 else n_in + 1
                t, d = _thresholds(acc_scale * scale, acc_shift * scale + shift, bound)
                layer = PackedLayer(kind, n_in, n_out, "bits", packed, t, d)
            else:  # a float pre-activation from the integer accumulator
                output = "scores" if is_output else "float"
                layer = PackedLayer(
                    kind, n_in, n_out, output, packed, scale=acc_scale * scale,
                    shift=acc_shift * scale + shift, activation=block.activation.activation.name,
                )  # fmt: skip
        else:  # float32 weights (sign(W) where binarized) on a float input
            layer = PackedLayer(
                "float", n_in, n_out, "scores" if is_output else "float", w.astype(np.float32),
                scale=scale, shift=shift, activation=block.activation.activation.name,
            )  # fmt: skip
        layers.append(layer)
        binary_input = sign_out
    last = network.output_block.activation.activation.name
    return PackedModel(layers, float(input_divisor), last, convs=convs, global_pool=global_pool)
