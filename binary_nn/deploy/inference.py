"""The packed inference engine: integer pixels in, classes out.

A :class:`~binary_nn.deploy.packed.PackedModel` runs layer by layer:

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

import numpy as np

from ..nn import kernels
from .packed import PackedLayer, PackedModel, pack_bits, unpack_bits

#: below this many examples the pixel layer takes the int8 loop, above it the float32 product
SMALL_BATCH = 16
#: examples per chunk of the numpy popcount (its (chunk, neurons, words) temporary)
NUMPY_CHUNK = 64

if kernels.numba is not None:
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def _popcount(typingctx, x):  # LLVM's ctpop: one instruction where the CPU has it
        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])

        return types.uint64(types.uint64), codegen

    @kernels.numba.njit(cache=True, nogil=True)
    def _xnor_counts(x, w_t, counts):
        # counts[n, m] = sum_k popcount(~(x[n, k] ^ w_t[k, m])); the inner loop runs over
        # neurons, contiguous in w_t, so that it vectorises
        n_rows, n_words = x.shape
        n_out = w_t.shape[1]
        for n in range(n_rows):
            for m in range(n_out):
                counts[n, m] = 0
            for k in range(n_words):
                xk = x[n, k]
                for m in range(n_out):
                    counts[n, m] += _popcount(~(xk ^ w_t[k, m]))

    @kernels.numba.njit(cache=True, nogil=True)
    def _pixel_sums(pixels, w, sums):
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


def _use_numba() -> bool:
    return kernels.numba is not None and kernels.BACKEND == "numba"


class Engine:
    """A packed model made ready to run: weights laid out for the kernels once, at load."""

    def __init__(self, model: PackedModel) -> None:
        self.model = model
        self._prepared = [self._prepare(layer) for layer in model.layers]

    @staticmethod
    def _prepare(layer: PackedLayer) -> dict:
        if layer.kind == "pixels":
            signs = unpack_bits(layer.weights, layer.n_in).T  # (n_in, n_out) of +-1
            return {"int8": np.ascontiguousarray(signs), "float": signs.astype(np.float32)}
        if layer.kind == "binary":
            return {"words": layer.weights, "words_t": np.ascontiguousarray(layer.weights.T)}
        return {"float": layer.weights}

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Classes of integer pixels ``(N, n_inputs)`` (any trailing shape is flattened)."""
        x: np.ndarray = np.asarray(pixels).reshape(len(pixels), -1)
        if x.shape[1] != self.model.n_inputs:
            raise ValueError(
                f"the model takes {self.model.n_inputs} pixels per example, got {x.shape[1]}"
            )
        bits = False  # whether x holds packed bits (else integer pixels or floats)
        for k, (layer, prepared) in enumerate(zip(self.model.layers, self._prepared, strict=True)):
            acc = self._accumulate(layer, prepared, x, bits, first=k == 0)
            if layer.output == "bits":
                assert layer.threshold is not None and layer.direction is not None
                on = np.where(layer.direction > 0, acc > layer.threshold, acc < layer.threshold)
                next_packed = (
                    k + 1 < len(self.model.layers) and self.model.layers[k + 1].kind == "binary"
                )
                if next_packed:
                    x, bits = pack_bits(np.where(on, 1, -1), pad=0), True
                else:
                    x, bits = np.where(on, np.float32(1), np.float32(-1)), False
            else:
                assert layer.scale is not None and layer.shift is not None
                a = acc * layer.scale + layer.shift
                if layer.output == "scores":
                    return self._decide(a)
                x, bits = self._activate(a, layer.activation), False
                if k + 1 < len(self.model.layers) and self.model.layers[k + 1].kind == "binary":
                    x, bits = pack_bits(x, pad=0), True  # sign outputs feed a binary layer
        raise AssertionError("a packed model ends in a scores layer")

    def _accumulate(
        self, layer: PackedLayer, prepared: dict, x: np.ndarray, bits: bool, first: bool
    ) -> np.ndarray:
        if layer.kind == "pixels":
            if _use_numba() and len(x) < SMALL_BATCH:
                sums = np.empty((len(x), layer.n_out), np.int32)
                _pixel_sums(np.ascontiguousarray(x, dtype=np.int32), prepared["int8"], sums)
                return sums
            return np.asarray(x, dtype=np.float32) @ prepared["float"]
        if layer.kind == "binary":
            assert bits, "a binary layer takes packed bits"
            if _use_numba():
                counts = np.empty((len(x), layer.n_out), np.uint64)
                _xnor_counts(x, prepared["words_t"], counts)
                return counts.astype(np.int64)
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


def predict(model: PackedModel, pixels: np.ndarray) -> np.ndarray:
    """Classes of integer pixels with a fresh :class:`Engine` (build one to predict often)."""
    return Engine(model).predict(pixels)


__all__ = ["Engine", "predict"]
