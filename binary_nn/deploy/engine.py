"""The packed inference engine: integer pixels in, classes out.

A ``PackedModel`` runs layer by layer:

- the pixel layer sums integer pixels times +-1 weights: for a few examples a numba loop over
  int8 weights (a quarter of float32's bytes to read), for many a float32 product with +-1
  weights, exact since every partial sum is an integer below 2^24;
- a binary layer counts ``popcount(xnor(x, w))`` over 64-bit words (numba: vectorised over the
  layer's neurons; numpy: ``np.bitwise_count``) and compares it with the neurons' thresholds,
  packing the output bits for the next layer;
- float layers are float32 products with the folded scale and shift and their activation;
- the scores decide as the float64 network's arg-max does.

Numba is used when installed (the ``fast`` extra) and ``$BINARY_NN_KERNELS`` is not
``numpy``; both paths give the same classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.kernels import KernelBackend, default_kernels, numba
from ..nn.kernels.bits import pack_bits, popcount, position_agreements, sign_maps, unpack_bits
from .packed import PackedLayer, PackedModel
from .packed_conv import PackedConv, inside_sums, run_conv
from .packed_residual import PackedResidual, run_residual

#: below this many examples the pixel layer takes the int8 loop, above it the float32 product
SMALL_BATCH = 16
#: examples per chunk of the numpy popcount (its (chunk, neurons, words) temporary)
NUMPY_CHUNK = 64

if numba is not None:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _row_counts(x: Any, n: Any, w_t: Any, counts: Any) -> Any:
        # counts[m] = sum_k popcount(~(x[n, k] ^ w_t[k, m])); the inner loop runs over
        # neurons, contiguous in w_t, so that it vectorises
        counts[:] = 0
        for k in range(x.shape[1]):
            xk = ~x[n, k]  # xnor(x, w) = ~x ^ w
            for m in range(w_t.shape[1]):
                counts[m] += np.int64(popcount(xk ^ w_t[k, m]))

    @numba.njit(cache=True, nogil=True, inline="always")
    def _set_bits(acc: Any, threshold: Any, direction: Any, flags: Any, out: Any, n: Any) -> Any:
        # bit m of row n: (acc - T) * direction > 0, i.e. acc > T or acc < T (exact: acc and T
        # are integers below 2^24): first one flag byte per neuron (a loop that vectorises),
        # then 8 flag bytes to 8 bits at a time by one multiplication
        for m in range(len(threshold)):
            flags[m] = (acc[m] - threshold[m]) * direction[m] > 0
        eights = flags.view(np.uint64)
        for w in range(out.shape[1]):
            word = np.uint64(0)
            for b in range(8):
                byte = (eights[w * 8 + b] * np.uint64(0x0102040810204080)) >> np.uint64(56)
                word |= byte << np.uint64(8 * b)
            out[n, w] = word

    @numba.njit(cache=True, nogil=True)
    def _xnor_counts(x: Any, w_t: Any, counts: Any) -> Any:
        for n in range(x.shape[0]):
            _row_counts(x, n, w_t, counts[n])

    @numba.njit(cache=True, nogil=True)
    def _xnor_threshold(x: Any, w_t: Any, threshold: Any, direction: Any, out: Any) -> Any:
        # one binary layer: counts, thresholds and the output bits in one pass per example
        counts = np.empty(w_t.shape[1], np.int64)
        flags = np.zeros(out.shape[1] * 64, np.uint8)  # the padding flags stay 0
        for n in range(x.shape[0]):
            _row_counts(x, n, w_t, counts)
            _set_bits(counts, threshold, direction, flags, out, n)

    @numba.njit(cache=True, nogil=True)
    def _threshold_bits(acc: Any, threshold: Any, direction: Any, out: Any) -> Any:
        flags = np.zeros(out.shape[1] * 64, np.uint8)
        for n in range(acc.shape[0]):
            _set_bits(acc[n], threshold, direction, flags, out, n)

    @numba.njit(cache=True, nogil=True)
    def _pixel_sums(pixels: Any, w: Any, sums: Any) -> Any:
        # sums[n, m] = sum_i pixels[n, i] * w[i, m] in int32, vectorised over m
        n_rows, n_in = pixels.shape
        n_out = w.shape[1]
        for n in range(n_rows):
            for m in range(n_out):
                sums[n, m] = 0
            for i in range(n_in):
                p = np.int32(pixels[n, i])
                if p != 0:
                    for m in range(n_out):
                        sums[n, m] += p * w[i, m]


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _conv_pixels(
        pixels: Any, w: Any, inside: Any, factor: Any, p: Any, threshold: Any, direction: Any,
        out: Any,
    ) -> Any:  # fmt: skip
        # the first convolution on integer pixels, pooled and thresholded into bit maps;
        # the channel loops innermost, so that they vectorise
        n_, h, wd, c_in = pixels.shape
        k = w.shape[0]
        c_out = w.shape[3]
        pad = k // 2
        acc = np.empty(c_out, np.int32)
        best = np.empty(c_out, np.int32)
        for n in range(n_):
            for r in range(out.shape[1]):
                for q in range(out.shape[2]):
                    best[:] = -(2**30)
                    for py in range(p):
                        for px in range(p):
                            y, x = r * p + py, q * p + px
                            acc[:] = 0
                            for dy in range(k):
                                yy = y + dy - pad
                                if yy < 0 or yy >= h:
                                    continue
                                for dx in range(k):
                                    xx = x + dx - pad
                                    if xx < 0 or xx >= wd:
                                        continue
                                    for c in range(c_in):
                                        v = np.int32(pixels[n, yy, xx, c])
                                        for co in range(c_out):
                                            acc[co] += v * w[dy, dx, c, co]
                            for co in range(c_out):
                                a = 2 * acc[co] - factor * inside[y, x, co]
                                if a > best[co]:
                                    best[co] = a
                    _set_map_bits(best, threshold, direction, out, n, r, q)

    @numba.njit(cache=True, nogil=True)
    def _conv_bits(
        x: Any, w_t: Any, c_in: Any, p: Any, threshold: Any, direction: Any, out: Any
    ) -> Any:
        # a convolution on bit maps (a word per 64 channels at each position): XNOR-popcount
        # of the taps inside the image, pooled and thresholded into bit maps
        c_out = w_t.shape[3]
        pc = np.empty(c_out, np.int64)
        best = np.empty(c_out, np.int64)
        for n in range(x.shape[0]):
            for r in range(out.shape[1]):
                for q in range(out.shape[2]):
                    best[:] = -(2**40)
                    for py in range(p):
                        for px in range(p):
                            taps = position_agreements(x, w_t, n, r * p + py, q * p + px, pc)
                            for co in range(c_out):
                                a = 2 * pc[co] - taps * c_in
                                if a > best[co]:
                                    best[co] = a
                    _set_map_bits(best, threshold, direction, out, n, r, q)

    @numba.njit(cache=True, nogil=True, inline="always")
    def _set_map_bits(
        best: Any, threshold: Any, direction: Any, out: Any, n: Any, r: Any, q: Any
    ) -> Any:
        for v in range(out.shape[3]):
            out[n, r, q, v] = 0
        for co in range(len(best)):
            on = best[co] > threshold[co] if direction[co] > 0 else best[co] < threshold[co]
            if on:
                out[n, r, q, co >> 6] |= np.uint64(1) << np.uint64(co & 63)


class Engine:
    """A packed model made ready to run: weights laid out for the kernels once, at load.

    The numba kernels run in one thread: split between the two vCPUs of the development
    machine they ran slower (207 against 312 G binary MAC/s), the cores sharing their
    AVX-512 units; the float32 products use the BLAS's threads.
    """

    def __init__(self, model: PackedModel, kernels: KernelBackend | None = None) -> None:
        # the packed loops run where the float kernels are compiled too
        self.compiled = (kernels if kernels is not None else default_kernels()).name == "numba"
        self.model = model
        self._prepared = [self._prepare(layer) for layer in model.layers]
        self._conv_prepared = [self._prepare_conv(conv) for conv in model.convs]

    @staticmethod
    def _prepare_conv(conv: PackedConv | PackedResidual) -> dict[str, Any]:
        """A packed stage's weights as its loop reads them."""
        if isinstance(conv, PackedResidual):
            return {}
        if conv.kind == "pixels":
            return {
                "w": np.ascontiguousarray(conv.weights, dtype=np.int32),
                "inside": np.ascontiguousarray(inside_sums(conv), dtype=np.int32),
            }
        if conv.kind == "binary":  # channel words per (tap, output channel), padding bits 1
            k, _, c_in, c_out = conv.weights.shape
            per_tap = conv.weights.transpose(0, 1, 3, 2).reshape(-1, c_in)
            words = pack_bits(per_tap, pad=1).reshape(k, k, c_out, -1)
            return {"w_t": np.ascontiguousarray(words.transpose(0, 1, 3, 2))}
        return {}

    def _convolutions(self, pixels: np.ndarray) -> np.ndarray:
        """The convolutional stages on a batch of images: +-1 or floats, flattened."""
        x: np.ndarray = pixels.reshape(len(pixels), *self.model.convs[0].shape_in)
        as_map = False  # whether x holds bit maps (N, H, W, channel words)
        for conv, prepared in zip(self.model.convs, self._conv_prepared, strict=True):
            if isinstance(conv, PackedResidual):  # the real-valued stream, in float64
                if as_map:
                    x, as_map = _unmap(x, conv.shape_in[2]), False
                x = run_residual(conv, np.asarray(x, np.float64))
                continue
            compiled = self.compiled and conv.packed and conv.output == "bits"
            if not compiled:
                if as_map:
                    x, as_map = _unmap(x, conv.shape_in[2]), False
                x = run_conv(conv, x, self.model.input_divisor)
                continue
            ho, wo, c_out = conv.shape_out
            out = np.empty((len(x), ho, wo, -(-c_out // 64)), np.uint64)
            assert conv.threshold is not None and conv.direction is not None
            threshold, direction = conv.threshold.astype(np.int64), conv.direction
            if conv.kind == "pixels":
                pix = np.ascontiguousarray(x, dtype=np.uint8)
                _conv_pixels(pix, prepared["w"], prepared["inside"], conv.pixel_factor,
                             conv.pool, threshold, direction, out)  # fmt: skip
            else:
                if not as_map:
                    x = sign_maps(x)
                _conv_bits(x, prepared["w_t"], conv.shape_in[2], conv.pool, threshold,
                           direction, out)  # fmt: skip
            x, as_map = out, True
        if as_map:
            x = _unmap(x, self.model.convs[-1].c_out)
        if self.model.global_pool:  # each channel's mean, as the network's takes it
            return np.mean(np.asarray(x, np.float64), axis=(1, 2))
        return x.reshape(len(x), -1)

    @staticmethod
    def _prepare(layer: PackedLayer) -> dict[str, Any]:
        prepared: dict[str, Any] = {"float": layer.weights}
        if layer.kind == "pixels":
            signs = unpack_bits(layer.weights, layer.n_in).T  # (n_in, n_out) of +-1
            prepared = {"int8": np.ascontiguousarray(signs), "float": signs.astype(np.float32)}
        elif layer.kind == "binary":
            prepared = {"words": layer.weights, "words_t": np.ascontiguousarray(layer.weights.T)}
        if layer.output == "bits":  # float32 holds these integers (below 2^24) exactly
            assert layer.threshold is not None and layer.direction is not None
            prepared["threshold"] = layer.threshold.astype(np.float32)
            prepared["direction"] = layer.direction.astype(np.float32)
        return prepared

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Classes of integer pixels ``(N, n_inputs)`` (any trailing shape is flattened)."""
        x: np.ndarray = np.asarray(pixels).reshape(len(pixels), -1)
        if x.shape[1] != self.model.n_inputs:
            raise ValueError(
                f"the model takes {self.model.n_inputs} pixels per example, got {x.shape[1]}"
            )
        bits = False  # whether x holds packed bits (else integer pixels or floats)
        layers, convs = self.model.layers, self.model.convs
        if convs:  # the convolutional stages, then their output flattened
            x = self._convolutions(x)
            if layers[0].kind == "binary":
                x, bits = pack_bits(x, pad=0), True
        for k, (layer, prepared) in enumerate(zip(layers, self._prepared, strict=True)):
            first = k == 0 and not convs  # this layer reads the pixels
            to_bits = k + 1 < len(layers) and layers[k + 1].kind == "binary"
            if layer.output == "bits":
                x, bits = self._threshold_layer(layer, prepared, x, bits, first, to_bits)
                continue
            acc = self._accumulate(layer, prepared, x, bits, first=first)
            assert layer.scale is not None and layer.shift is not None
            a = acc * layer.scale + layer.shift
            if layer.output == "scores":
                return self._decide(a)
            x, bits = self._activate(a, layer.activation), False
            if to_bits:
                x, bits = pack_bits(x, pad=0), True  # sign outputs feed a binary layer
        raise AssertionError("a packed model ends in a scores layer")

    def _threshold_layer(
        self,
        layer: PackedLayer,
        prepared: dict[str, Any],
        x: np.ndarray,
        bits: bool,
        first: bool,
        to_bits: bool,
    ) -> tuple[np.ndarray, bool]:
        """A threshold layer's output: packed words for a binary layer next, else +-1."""
        assert layer.threshold is not None and layer.direction is not None
        words = -(-layer.n_out // 64)
        if self.compiled and to_bits:
            out = np.empty((len(x), words), np.uint64)
            threshold, direction = prepared["threshold"], prepared["direction"]
            if layer.kind == "binary":
                _xnor_threshold(x, prepared["words_t"], threshold, direction, out)
            else:
                acc = self._accumulate(layer, prepared, x, bits, first)
                _threshold_bits(acc, threshold, direction, out)
            return out, True
        acc = self._accumulate(layer, prepared, x, bits, first)
        on = np.where(layer.direction > 0, acc > layer.threshold, acc < layer.threshold)
        if to_bits:
            return pack_bits(np.where(on, 1, -1), pad=0), True
        return np.where(on, np.float32(1), np.float32(-1)), False

    def _accumulate(
        self, layer: PackedLayer, prepared: dict[str, Any], x: np.ndarray, bits: bool, first: bool
    ) -> np.ndarray:
        if layer.kind == "pixels":
            if self.compiled and len(x) < SMALL_BATCH:
                sums = np.empty((len(x), layer.n_out), np.int32)
                _pixel_sums(np.ascontiguousarray(x, dtype=np.int32), prepared["int8"], sums)
                return sums
            return np.asarray(x, dtype=np.float32) @ prepared["float"]
        if layer.kind == "binary":
            assert bits, "a binary layer takes packed bits"
            if self.compiled:
                counts = np.empty((len(x), layer.n_out), np.int64)
                _xnor_counts(x, prepared["words_t"], counts)
                return counts
            return np.concatenate(
                [
                    np.bitwise_count(~(chunk[:, None, :] ^ prepared["words"][None])).sum(
                        axis=2, dtype=np.int64
                    )
                    for chunk in np.array_split(x, max(1, -(-len(x) // NUMPY_CHUNK)))
                ]
            )
        if first:  # real weights on the pixels as the network sees them
            inputs = np.asarray(x, dtype=np.float32) / np.float32(self.model.input_divisor)
            inputs -= 1
        else:
            inputs = unpack_bits(x, layer.n_in).astype(np.float32) if bits else x
        return inputs @ prepared["float"]

    @staticmethod
    def _activate(a: np.ndarray, name: str) -> np.ndarray:
        if name == "tanh":
            return np.tanh(a).astype(np.float32)
        if name == "id":
            return a.astype(np.float32)
        return np.where(a > 0, np.float32(1), np.float32(-1))  # the sign family

    def _decide(self, scores: np.ndarray) -> np.ndarray:
        """The float64 network's arg-max of ``last_activation(scores)``, first index on ties."""
        last = self.model.last_activation
        if last == "tanh":  # float64 tanh ties scores near saturation: the first one wins
            return np.argmax(np.tanh(np.asarray(scores, dtype=np.float64)), axis=1)
        if last != "id":  # the sign family: +1 where positive
            scores = scores > 0
        return np.argmax(scores, axis=1)


def _unmap(words: np.ndarray, c: int) -> np.ndarray:
    """Bit maps back to +-1 images (float32)."""
    n, h, w, _ = words.shape
    signs = unpack_bits(words.reshape(n * h * w, -1), c)
    return signs.reshape(n, h, w, c).astype(np.float32)


def predict(model: PackedModel, pixels: np.ndarray) -> np.ndarray:
    """Classes of integer pixels with a fresh ``Engine`` (build one to predict often)."""
    return Engine(model).predict(pixels)


__all__ = ["Engine", "predict"]
