"""Signs as bits: +-1 arrays packed into 64-bit words, and the convolution of +-1 images by +-1
weights as XNOR/popcount, whose integer results equal the float products exactly.

A product of +-1 values sums integers, which float32 holds exactly below 2^24; counting the
agreements of two sign vectors ``a`` agree of ``n`` gives their dot product ``2 a - n``. So a
convolution whose input and weights are all +-1 (every binary convolution after the first,
with sign activations) may count bits instead of multiplying floats and give the same floats,
bit for bit: training's forward can take it as well as inference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .jit import compiled, numba

#: bits per packed word
WORD = 64


def pack_bits(signs: np.ndarray, pad: int) -> np.ndarray:
    """Rows of a (rows, n) array of +-1 to (rows, ceil(n / 64)) uint64 words, bit i of word k
    set for +1 at column 64k + i; the padding bits are set to ``pad`` (0 or 1)."""
    rows, n = signs.shape
    words = -(-n // WORD)
    bits = np.full((rows, words * WORD), bool(pad))
    bits[:, :n] = signs > 0
    packed = np.packbits(bits.reshape(rows, words, WORD), axis=2, bitorder="little")
    return packed.view(np.uint64).reshape(rows, words)


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """The inverse of ``pack_bits``: (rows, n) int8 of +-1."""
    rows = len(words)
    bits = np.unpackbits(words.view(np.uint8).reshape(rows, -1), axis=1, bitorder="little")
    return bits[:, :n].astype(np.int8) * 2 - 1


if numba is not None:
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def popcount(typingctx: Any, x: Any) -> Any:
        """The set bits of a uint64: LLVM's ctpop, one instruction where the CPU has it."""

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.ctpop(args[0])

        return types.uint64(types.uint64), codegen

    @numba.njit(cache=True, nogil=True, inline="always")
    def position_agreements(maps: Any, w_t: Any, n: Any, y: Any, x: Any, agree: Any) -> Any:
        """Into ``agree`` (C_out,): the agreements of the +-1 weights ``w_t`` (k, k, words,
        C_out) with the bit map ``maps`` (N, H, W, words) around position (y, x) of image
        ``n``, over the taps inside the image (zero padding: the others add nothing).
        Returns the number of those taps. The loop over output channels (contiguous in
        ``w_t``) vectorises."""
        h, wd, words = maps.shape[1], maps.shape[2], maps.shape[3]
        k = w_t.shape[0]
        pad = k // 2
        agree[:] = 0
        taps = 0
        for dy in range(k):
            yy = y + dy - pad
            if yy < 0 or yy >= h:
                continue
            for dx in range(k):
                xx = x + dx - pad
                if xx < 0 or xx >= wd:
                    continue
                taps += 1
                for v in range(words):
                    inverted = ~maps[n, yy, xx, v]  # xnor(x, w) = ~x ^ w
                    for co in range(len(agree)):
                        agree[co] += np.int64(popcount(inverted ^ w_t[dy, dx, v, co]))
        return taps

else:  # pragma: no cover - only without numba, where no compiled loop calls them
    popcount = position_agreements = None


@compiled
def _signs_inside_loop(padded: Any, pad: Any) -> Any:
    # counted a row at a time (a loop without a branch vectorises), stopping after a bad row
    n_, hp, wp, c = padded.shape
    for n in range(n_):
        for y in range(pad, hp - pad):
            row = padded[n, y].ravel()
            bad = 0
            for i in range(pad * c, (wp - pad) * c):
                bad += (row[i] != 1) & (row[i] != -1)
            if bad:
                return False
    return True


def signs_inside(padded: np.ndarray, pad: int = 0) -> bool:
    """Whether every element of an (N, H, W, C) batch inside ``pad`` rows and columns of
    padding is exactly +1 or -1 (numba stops at the first that is not)."""
    if _signs_inside_loop is not None and padded.flags.c_contiguous:
        return bool(_signs_inside_loop(padded, pad))
    inside = padded[:, pad : padded.shape[1] - pad, pad : padded.shape[2] - pad]
    return bool(np.all((inside == 1) | (inside == -1)))


@compiled
def _conv_signs_loop(maps: Any, w_t: Any, c_in: Any, out: Any) -> Any:
    # each output: 2 * agreements - (taps inside) * c_in, the +-1 dot product
    n_, h, wd, _ = maps.shape
    agree = np.empty(w_t.shape[3], np.int64)
    for n in range(n_):
        for y in range(h):
            for x in range(wd):
                taps = position_agreements(maps, w_t, n, y, x, agree)
                for co in range(len(agree)):
                    out[n, y, x, co] = 2 * agree[co] - taps * c_in


def sign_maps(images: np.ndarray) -> np.ndarray:
    """+-1 images (N, H, W, C) as bit maps (N, H, W, ceil(C / 64)), padding bits 0."""
    n, h, w, c = images.shape
    return pack_bits(images.reshape(-1, c), pad=0).reshape(n, h, w, -1)


def tap_words(w: np.ndarray, k: int) -> np.ndarray:
    """+-1 convolution weights (k*k*C, C_out) in im2col's row order as channel words per tap
    and output channel, (k, k, words, C_out), padding bits 1 (they never agree with a
    map's 0s, so they count nothing)."""
    c_in, c_out = w.shape[0] // (k * k), w.shape[1]
    per_tap = w.reshape(k, k, c_in, c_out).transpose(0, 1, 3, 2).reshape(-1, c_in)
    words = pack_bits(per_tap, pad=1).reshape(k, k, c_out, -1)
    return np.ascontiguousarray(words.transpose(0, 1, 3, 2))


def conv2d_signs(padded: np.ndarray, w: np.ndarray, k: int) -> np.ndarray | None:
    """The stride-1 ``k x k`` convolution of a batch of +-1 images zero-padded by ``k // 2``
    (odd ``k``) by +-1 weights (k*k*C, C_out), by XNOR/popcount (numba only): (N, H, W, C_out)
    in the batch's dtype, equal to the float product; None when an image value is not a sign."""
    pad = k // 2
    if not signs_inside(padded, pad):
        return None
    images = padded[:, pad : padded.shape[1] - pad, pad : padded.shape[2] - pad]
    n, h, wd, c = images.shape
    out = np.empty((n, h, wd, w.shape[1]), padded.dtype)
    _conv_signs_loop(sign_maps(images), tap_words(w, k), c, out)
    return out
