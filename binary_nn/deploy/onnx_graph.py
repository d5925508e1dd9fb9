"""A trained network as an ONNX graph of standard operators, for any ONNX runtime.

The graph computes what the network's evaluation forward computes, in float64 by default:

- its input is the raw ``uint8`` pixels, channels last (``N x H x W x C``, or ``N x F``), scaled
  in the graph as the network scales them: ``x = p / divisor - 1``;
- a dense layer is a ``MatMul`` by its effective weights (``sign(W)`` where binary), a
  convolution a ``Conv`` (stride 1, zero padding ``K // 2``) on ``NCHW`` (one ``Transpose`` in
  front of the first and one before the flattening keep the network's channels-last order),
  a max-pool a ``MaxPool`` (floor). ONNX runtimes have no float64 ``Conv``: a convolution runs
  in float32 where that is exact — binary weights on +-1 inputs (small integer sums), or on
  the integer pixels themselves (``conv(p / d - 1, W) = conv(p, W) / d - conv(1_image, W)``,
  the second term a constant map that knows the zero padding) — and a real-valued one in
  float32 (its results then agree with the network's to float32 rounding);
- ``--sn`` is a ``Div`` by the fan-in; batch norm in evaluation mode the ``Mul`` and ``Add`` of
  its per-feature scale and shift, computed here as the network computes them;
- ``tanh`` is ``Tanh``; the sign family is ``Where(x > 0, 1, -1)`` (0 maps to -1, unlike ONNX's
  ``Sign``); ``id`` nothing.

Its outputs are ``scores`` (the output layer's activations) and ``classes`` (their arg-max).
Building needs the ``onnx`` package (``pip install -e ".[onnx]"``); the check runs it with
``onnxruntime``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..nn.conv import Conv2d, GlobalAvgPool, MaxPool2d
from ..nn.layers import ActivationLayer, BatchNorm, Flatten, Linear, Scaler
from ..nn.network import Network

OPSET = 17
SIGN_FAMILY = ("sign", "signsat", "signtanh")


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ConfigError(
            "--format onnx needs the onnx package: pip install -e '.[onnx]'"
        ) from None
    return onnx


class _Graph:
    """Nodes and constants, named in order."""

    def __init__(self, onnx: Any, dtype: np.dtype) -> None:
        self.onnx, self.dtype = onnx, dtype
        self.nodes: list[Any] = []
        self.constants: list[Any] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def constant(self, value: Any, stem: str, dtype: Any = None) -> str:
        name = self.name(stem)
        array = np.asarray(value, dtype=dtype or self.dtype)
        self.constants.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attributes: Any) -> str:
        out = self.name(stem)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], **attributes))
        return out


def onnx_model(network: Network, pixel_divisor: float, dtype: Any = np.float64) -> Any:
    """The ONNX model (an ``onnx.ModelProto``, checked) of ``network``'s evaluation forward."""
    if not network.is_chain or any(isinstance(x, GlobalAvgPool) for x in network.layers()):
        raise ConfigError(
            "--format onnx takes chains of blocks, not yet residual units or gap: export "
            "such a network as npz or c"
        )
    onnx = _onnx()
    dtype = np.dtype(dtype)
    g = _Graph(onnx, dtype)
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    shape = list(network.input_shape)
    pixels = "pixels"
    x = g.node("Cast", [pixels], "cast", to=elem)
    x = g.node("Div", [x, g.constant(pixel_divisor, "divisor")], "scaled")
    x = g.node("Sub", [x, g.constant(1.0, "one")], "input")
    nchw, values = False, "input"  # what x holds: the scaled input, +-1 signs, or reals
    for block in network.blocks:
        for layer in block.layers:
            if isinstance(layer, Conv2d):
                if not nchw:
                    x, nchw = g.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2]), True
                on_pixels = values == "input" and layer.quantizer.binary and len(shape) == 3
                source = g.node("Transpose", [pixels], "pixels_nchw", perm=[0, 3, 1, 2]) \
                    if on_pixels else x  # fmt: skip
                x = _conv(g, source, layer, on_pixels, pixel_divisor, shape)
                values = "real"
            elif isinstance(layer, MaxPool2d):  # keeps what x holds
                size = [layer.size, layer.size]
                x = g.node("MaxPool", [x], "pool", kernel_shape=size, strides=size)
            elif isinstance(layer, Flatten):
                if nchw:
                    x, nchw = g.node("Transpose", [x], "nhwc", perm=[0, 2, 3, 1]), False
                x = g.node("Flatten", [x], "flat", axis=1)
            elif isinstance(layer, Linear):
                weights = np.asarray(layer.effective_weight())
                x, values = g.node("MatMul", [x, g.constant(weights, "w")], "matmul"), "real"
            elif isinstance(layer, Scaler):
                x, values = g.node("Div", [x, g.constant(layer.fan_in, "fan_in")], "sn"), "real"
            elif isinstance(layer, BatchNorm):
                x, values = _batch_norm(g, x, layer, nchw), "real"
            elif isinstance(layer, ActivationLayer):
                x = _activation(g, x, layer.activation.name)
                values = "signs" if layer.activation.name in SIGN_FAMILY else "real"
            else:
                raise ConfigError(
                    f"--format onnx cannot export a {type(layer).__name__} layer; export it as npz"
                )
    scores = g.node("Identity", [x], "scores")
    classes = g.node("ArgMax", [scores], "classes", axis=1, keepdims=0)
    graph = onnx.helper.make_graph(
        g.nodes, "binary_nn",
        [onnx.helper.make_tensor_value_info(
            pixels, onnx.TensorProto.UINT8, ["N", *shape])],
        [onnx.helper.make_tensor_value_info(scores, elem, ["N", network.n_classes]),
         onnx.helper.make_tensor_value_info(classes, onnx.TensorProto.INT64, ["N"])],
        initializer=g.constants,
    )  # fmt: skip
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="binary_nn"
    )
    model.ir_version = min(model.ir_version, 9)  # what current runtimes read
    onnx.checker.check_model(model)
    return model


def _conv(
    g: _Graph, x: str, layer: Conv2d, on_pixels: bool, divisor: float, shape: list[int]
) -> str:
    """A convolution in float32, back to the graph's dtype (see the module docstring)."""
    effective = np.asarray(layer.effective_weight(), np.float64)
    weights = np.transpose(effective, (3, 2, 0, 1))  # (C_out, C_in, K, K)
    pad, k = layer.k // 2, [layer.k, layer.k]
    x32 = g.node("Cast", [x], "f32", to=g.onnx.TensorProto.FLOAT)
    y = g.node("Conv", [x32, g.constant(weights, "conv_w", np.float32)], "conv",
               kernel_shape=k, pads=[pad] * 4)  # fmt: skip
    y = g.node("Cast", [y], "f64", to=g.onnx.helper.np_dtype_to_tensor_dtype(g.dtype))
    if not on_pixels:
        return y
    # conv(p / d - 1) = conv(p) / d - conv(ones inside the image): the border map, exact
    h, w, c = shape
    ones = np.pad(np.ones((h, w, c)), ((pad, pad), (pad, pad), (0, 0)))
    border = np.zeros((effective.shape[3], h, w))
    for i in range(h):
        for j in range(w):
            window = ones[i : i + layer.k, j : j + layer.k, :]
            border[:, i, j] = np.tensordot(window, effective, axes=3)
    y = g.node("Div", [y, g.constant(divisor, "divisor")], "conv_scaled")
    return g.node("Sub", [y, g.constant(border, "conv_border")], "conv_input")


def _batch_norm(g: _Graph, x: str, layer: BatchNorm, nchw: bool) -> str:
    """Evaluation batch norm as the network computes it: ``x * scale + shift``."""
    gamma = np.asarray(layer.gamma.value, np.float64)
    scale = gamma / np.sqrt(np.asarray(layer.running_var, np.float64) + layer.eps)
    shift = np.asarray(layer.beta.value, np.float64) - layer.running_mean * scale
    if nchw:  # per channel: broadcast along the channel axis of NCHW
        scale, shift = scale.reshape(-1, 1, 1), shift.reshape(-1, 1, 1)
    x = g.node("Mul", [x, g.constant(scale, "bn_scale")], "bn_scaled")
    return g.node("Add", [x, g.constant(shift, "bn_shift")], "bn")


def _activation(g: _Graph, x: str, name: str) -> str:
    if name == "tanh":
        return g.node("Tanh", [x], "tanh")
    if name == "id":
        return x
    if name in SIGN_FAMILY:  # sign(v) = +1 if v > 0 else -1
        positive = g.node("Greater", [x, g.constant(0.0, "zero")], "positive")
        ones = (g.constant(1.0, "plus_one"), g.constant(-1.0, "minus_one"))
        return g.node("Where", [positive, *ones], "sign")
    raise ConfigError(f"--format onnx cannot export the activation {name!r}; export it as npz")


def save_onnx(model: Any, path: Any) -> int:
    """Write ``model`` atomically; return its size in bytes."""
    from ..files import write_bytes_atomic

    data = model.SerializeToString()
    write_bytes_atomic(path, data)
    return len(data)
