"""C99 for a microcontroller: ``model.h`` and ``model.c`` with one function,
``int bnn_predict(const uint8_t *pixels)``.

Weights are bit-packed ``uint64_t`` constants and thresholds integers; the code uses no
dynamic memory and no library beyond ``<stdint.h>``. A net whose hidden layers all end in a
sign (and whose first layer has binary weights) runs in integers only when its output layer
is binary too; a real-valued output layer adds float sums of +-weights and no other float work
(the ``tanh`` of the scores needs no computing: only its saturation, which a clamp gives).
Nets with other hidden layers (``tanh``, real weights) cannot be written without ``<math.h>``
and floats everywhere: export them as ``npz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..nn.kernels.bits import WORD, pack_bits
from .packed import PackedModel, tanh_saturation
from .packed_conv import PackedConv, refuse_c

EXAMPLE = """/* An example host program: images as raw pixels on stdin, one class per line out. */
#include <stdio.h>
#include "model.h"

int main(void) {
    static uint8_t image[BNN_INPUTS];
    while (fread(image, 1, BNN_INPUTS, stdin) == BNN_INPUTS) {
        printf("%d\\n", bnn_predict(image));
    }
    return 0;
}
"""


@dataclass
class CModel:
    header: str
    source: str
    flash_bytes: int  # constant data
    ram_bytes: int  # the two activation buffers and the scores
    integer_only: bool


POPCOUNT = (
    "\nstatic int32_t popcount64(uint64_t x) {\n"
    "    x = x - ((x >> 1) & 0x5555555555555555u);\n"
    "    x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);\n"
    "    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fu;\n"
    "    return (int32_t)((x * 0x0101010101010101u) >> 56);\n"
    "}\n\n"
)


def tanh_clamp(last_activation: str, ctype: str) -> str:
    """The line(s) that turn ``score[j]`` (of ``ctype``) into what the float64 network's
    last activation decides on: ``tanh`` ties scores past its saturation, the sign family
    keeps their signs, ``id`` keeps them."""
    if last_activation == "id":
        return ""
    if last_activation != "tanh":
        return "        score[j] = score[j] > 0 ? 1 : -1;\n"
    saturation = tanh_saturation()
    limit = {
        "int32_t": str(int(np.ceil(saturation))),
        "float": f"{saturation!r}f",
        "double": f"{saturation!r}",
    }[ctype]
    return (
        f"        /* tanh(score) rounds to exactly 1 from {saturation:.6f} on in "
        "64-bit arithmetic: such scores tie and the first wins */\n"
        f"        if (score[j] > {limit}) score[j] = {limit};\n"
        f"        if (score[j] < -{limit}) score[j] = -{limit};\n"
    )


def c_prologue(consts: list[str], maps: list[str]) -> str:
    """``model.c`` up to ``bnn_predict``'s first statements: the constants, ``popcount64``
    and the static maps."""
    return (
        '#include "model.h"\n\n'
        + "\n".join(consts)
        + POPCOUNT
        + "int bnn_predict(const uint8_t *pixels) {\n"
        + "".join(maps)
    )


def c_header(model: PackedModel, flash: int, ram: int, what: str) -> str:
    """``model.h``: the sizes and ``bnn_predict``'s declaration."""
    return (
        f"/* {what} exported by binary_nn (python -m binary_nn.export). */\n"
        "#ifndef BNN_MODEL_H\n#define BNN_MODEL_H\n\n#include <stdint.h>\n\n"
        f"#define BNN_INPUTS {model.n_inputs}\n#define BNN_CLASSES {model.n_classes}\n"
        f"#define BNN_FLASH_BYTES {flash}\n#define BNN_RAM_BYTES {ram}\n\n"
        "/* The class of one image: BNN_INPUTS pixels as stored (uint8, row by row). */\n"
        "int bnn_predict(const uint8_t *pixels);\n\n#endif\n"
    )


def _literals(ctype: str, values: np.ndarray) -> list[str]:
    if ctype == "uint64_t":
        return [f"0x{int(v):016x}u" for v in values]
    if ctype == "float":
        return [f"{float(v)!r}f" for v in values]
    if ctype == "double":
        return [repr(float(v)) for v in values]
    return [str(int(v)) for v in values]


def c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 8) -> str:
    """A constant array definition; a 2-D array gets one brace pair per row."""
    dims = "".join(f"[{d}]" for d in values.shape)
    rows = values if values.ndim == 2 else values[None]
    lines = []
    for row in rows:
        items = _literals(ctype, row)
        chunks = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        text = ",\n     ".join(chunks)
        lines.append(f"{{{text}}}" if values.ndim == 2 else text)
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}{dims} = {{\n    {body}\n}};\n"


def _bits_code(k: int, layer: Any, source_words: int) -> str:
    """The loop of threshold layer ``k``: accumulate, compare, set the output bit."""
    if layer.kind == "pixels":
        accumulate = (
            f"        int32_t acc = 0;\n"
            f"        for (int i = 0; i < {layer.n_in}; ++i) {{\n"
            f"            int32_t p = (int32_t)pixels[i];\n"
            f"            acc += ((W{k}[j][i >> 6] >> (i & 63)) & 1u) ? p : -p;\n"
            f"        }}\n"
        )
    else:
        accumulate = (
            f"        int32_t acc = 0;\n"
            f"        for (int w = 0; w < {source_words}; ++w) {{\n"
            f"            acc += popcount64(~(in[w] ^ W{k}[j][w]));\n"
            f"        }}\n"
        )
    return (
        f"    /* layer {k}: {layer.describe()} */\n"
        f"    for (int w = 0; w < {-(-layer.n_out // WORD)}; ++w) out[w] = 0;\n"
        f"    for (int j = 0; j < {layer.n_out}; ++j) {{\n"
        f"{accumulate}"
        f"        int on = D{k}[j] > 0 ? acc > T{k}[j] : acc < T{k}[j];\n"
        f"        if (on) out[j >> 6] |= (uint64_t)1 << (j & 63);\n"
        f"    }}\n"
        f"    swap = in; in = out; out = swap;\n"
    )


def conv_consts(k: int, conv: PackedConv) -> dict[str, tuple[str, np.ndarray]]:
    """The constant arrays of convolution ``k``: its weights as bits (the pixel stage's taps
    of a channel in words; a binary stage's channels of a tap in words), thresholds and
    directions."""
    w = conv.weights  # (K, K, C_in, C_out) of +-1
    kk, _, c_in, c_out = w.shape
    if conv.kind == "pixels":
        words = pack_bits(w.reshape(-1, c_out).T, pad=0)  # (C_out, taps words)
    else:  # (C_out, K, K, channel words), padding bits 1: against 0 input bits, no match
        per_tap = w.transpose(3, 0, 1, 2).reshape(c_out * kk * kk, c_in)
        words = pack_bits(per_tap, pad=1).reshape(c_out, kk * kk * -(-c_in // WORD))
    assert conv.threshold is not None and conv.direction is not None
    return {
        f"CW{k}": ("uint64_t", words),
        f"CT{k}": ("int32_t", conv.threshold.astype(np.int32)),
        f"CD{k}": ("int8_t", conv.direction),
    }


def conv_code(k: int, conv: PackedConv, source: str) -> str:
    """Convolution ``k`` one output position at a time: the taps inside the image, the max
    over the pool's window, the threshold; its output map holds bits, a word per position
    and 64 channels, so no convolution keeps a feature map of integers."""
    h, w, c_in = conv.shape_in
    ho, wo, c_out = conv.shape_out
    p, kk, pad = conv.pool, conv.k, conv.k // 2
    wc_in, wc_out = -(-c_in // WORD), -(-c_out // WORD)
    if conv.kind == "pixels":
        taps = (
            f"                            for (int c = 0; c < {c_in}; ++c) {{\n"
            f"                                int t = ((dy * {kk}) + dx) * {c_in} + c;\n"
            f"                                int32_t v = (int32_t)pixels"
            f"[(yy * {w} + xx) * {c_in} + c];\n"
            f"                                int bit = (int)((CW{k}[co][t >> 6]"
            f" >> (t & 63)) & 1u);\n"
            f"                                sp += bit ? v : -v;\n"
            f"                                sw += bit ? 1 : -1;\n"
            f"                            }}\n"
        )
        finish = f"                    int32_t a = 2 * sp - {conv.pixel_factor} * sw;\n"
        init = "                    int32_t sp = 0, sw = 0;\n"
    else:
        taps = (
            f"                            for (int v = 0; v < {wc_in}; ++v) {{\n"
            f"                                uint64_t x = {source}"
            f"[(yy * {w} + xx) * {wc_in} + v];\n"
            f"                                uint64_t m = CW{k}[co]"
            f"[(dy * {kk} + dx) * {wc_in} + v];\n"
            f"                                pc += popcount64(~(x ^ m));\n"
            f"                            }}\n"
            f"                            n += {c_in};\n"
        )
        finish = "                    int32_t a = 2 * pc - n;\n"
        init = "                    int32_t pc = 0, n = 0;\n"
    return (
        f"    /* convolution {k}: {conv.describe()} */\n"
        f"    for (int i = 0; i < {ho * wo * wc_out}; ++i) M{k}[i] = 0;\n"
        f"    for (int r = 0; r < {ho}; ++r) {{\n"
        f"        for (int q = 0; q < {wo}; ++q) {{\n"
        f"            for (int co = 0; co < {c_out}; ++co) {{\n"
        f"                int32_t best = INT32_MIN;\n"
        f"                for (int py = 0; py < {p}; ++py) for (int px = 0; px < {p}; ++px) {{\n"
        f"                    int y = r * {p} + py, x0 = q * {p} + px;\n"
        + init
        + f"                    for (int dy = 0; dy < {kk}; ++dy) {{\n"
        f"                        int yy = y + dy - {pad};\n"
        f"                        if (yy < 0 || yy >= {h}) continue;\n"
        f"                        for (int dx = 0; dx < {kk}; ++dx) {{\n"
        f"                            int xx = x0 + dx - {pad};\n"
        f"                            if (xx < 0 || xx >= {w}) continue;\n"
        + taps
        + "                        }\n"
        "                    }\n" + finish + "                    if (a > best) best = a;\n"
        "                }\n"
        f"                int on = CD{k}[co] > 0 ? best > CT{k}[co] : best < CT{k}[co];\n"
        f"                if (on) M{k}[(r * {wo} + q) * {wc_out} + (co >> 6)]"
        " |= (uint64_t)1 << (co & 63);\n"
        "            }\n"
        "        }\n"
        "    }\n"
    )


def _flatten_code(k: int, conv: PackedConv) -> str:
    """The last convolution's map as the dense layers' flat bits, (row, column, channel)."""
    ho, wo, c_out = conv.shape_out
    wc = -(-c_out // WORD)
    n = ho * wo * c_out
    return (
        f"    /* the map of convolution {k} as {n} bits in (row, column, channel) order */\n"
        f"    for (int i = 0; i < {-(-n // WORD)}; ++i) in[i] = 0;\n"
        f"    for (int pos = 0; pos < {ho * wo}; ++pos) {{\n"
        f"        for (int c = 0; c < {c_out}; ++c) {{\n"
        f"            if ((M{k}[pos * {wc} + (c >> 6)] >> (c & 63)) & 1u) {{\n"
        f"                int i = pos * {c_out} + c;\n"
        f"                in[i >> 6] |= (uint64_t)1 << (i & 63);\n"
        "            }\n"
        "        }\n"
        "    }\n"
    )


def chain_stages(model: PackedModel) -> list[PackedConv]:
    """The model's plain convolutional stages (all of its stages in a chain)."""
    return [stage for stage in model.convs if isinstance(stage, PackedConv)]


def c_model(model: PackedModel) -> CModel:
    """The C source of ``model``; a net C cannot hold is one sentence."""
    if model.global_pool or len(convs := chain_stages(model)) < len(model.convs):
        raise ConfigError(
            "c_model takes chains of blocks: give a residual network to c_residual.residual_c_model"
        )
    for k, conv in enumerate(convs):
        refuse_c(conv, k)
    *hidden, last = model.layers
    for k, layer in enumerate(hidden):
        if layer.output != "bits":
            raise ConfigError(
                f"--format c needs hidden layers with binary weights and a sign activation; "
                f"layer {k} ({layer.describe()}) is not: export it as npz"
            )
    if not hidden and not convs and last.kind != "pixels":
        raise ConfigError("--format c needs at least one hidden layer with binary weights")
    integer_scores = last.kind == "binary"
    if integer_scores:
        assert last.scale is not None and last.shift is not None
        if not (np.all(last.scale == 2) and np.all(last.shift == -last.n_in)):
            raise ConfigError("--format c: the output layer's scores are not integers")
    consts, flash = [], 0
    conv_arrays: dict[str, tuple[str, np.ndarray]] = {}
    for k, conv in enumerate(convs):
        conv_arrays.update(conv_consts(k, conv))
    for name, (ctype, values) in conv_arrays.items():
        consts.append(c_array(ctype, name, values))
        flash += values.size * {"uint64_t": 8, "int32_t": 4, "int8_t": 1}[ctype]
    for k, layer in enumerate(model.layers):
        arrays = {f"W{k}": ("uint64_t", layer.weights)} if layer.packed else {}
        if layer.output == "bits":
            assert layer.threshold is not None and layer.direction is not None
            arrays[f"T{k}"] = ("int32_t", layer.threshold.astype(np.int32))
            arrays[f"D{k}"] = ("int8_t", layer.direction)
        elif not integer_scores:  # float output weights, rows per class
            arrays[f"W{k}"] = ("float", np.ascontiguousarray(layer.weights.T))
        for name, (ctype, values) in arrays.items():
            consts.append(c_array(ctype, name, values))
            flash += values.size * {"uint64_t": 8, "int32_t": 4, "int8_t": 1, "float": 4}[ctype]
    words = max(-(-layer.n_out // WORD) for layer in hidden) if hidden else 1
    maps, conv_lines = [], []
    if convs:
        words = max(words, -(-convs[-1].n_out // WORD))
        for k, conv in enumerate(convs):
            ho, wo, c_out = conv.shape_out
            maps.append(f"    static uint64_t M{k}[{ho * wo * -(-c_out // WORD)}];\n")
            conv_lines.append(conv_code(k, conv, f"M{k - 1}" if k else "pixels"))
        conv_lines.append(_flatten_code(len(convs) - 1, convs[-1]))
    map_bytes = sum(conv.shape_out[0] * conv.shape_out[1] * -(-conv.c_out // WORD) * 8
                    for conv in convs)  # fmt: skip
    score_type = "int32_t" if integer_scores else "float"
    ram = 2 * words * 8 + last.n_out * 4 + map_bytes
    body = [
        *conv_lines,
        *(_bits_code(k, layer, -(-layer.n_in // WORD)) for k, layer in enumerate(hidden)),
    ]
    k = len(hidden)
    if integer_scores:
        score_loop = (
            f"        int32_t acc = 0;\n"
            f"        for (int w = 0; w < {-(-last.n_in // WORD)}; ++w) {{\n"
            f"            acc += popcount64(~(in[w] ^ W{k}[j][w]));\n"
            f"        }}\n"
            f"        score[j] = 2 * acc - {last.n_in};\n"
        )
    else:
        score_loop = (
            f"        float acc = 0.0f;\n"
            f"        for (int i = 0; i < {last.n_in}; ++i) {{\n"
            f"            acc += ((in[i >> 6] >> (i & 63)) & 1u) ? W{k}[j][i] : -W{k}[j][i];\n"
            f"        }}\n"
            f"        score[j] = acc;\n"
        )
    decide = tanh_clamp(model.last_activation, "int32_t" if integer_scores else "float")
    header = c_header(model, flash, ram, "A binary network")
    source = (
        c_prologue(consts, maps) + f"    uint64_t buffer_a[{words}], buffer_b[{words}];\n"
        "    uint64_t *in = buffer_a, *out = buffer_b, *swap;\n"
        f"    {score_type} score[{last.n_out}];\n"
        "    (void)in;\n" + "".join(body) + f"    /* layer {k}: {last.describe()} */\n"
        f"    for (int j = 0; j < {last.n_out}; ++j) {{\n" + score_loop + decide + "    }\n"
        "    int best = 0;\n"
        f"    for (int j = 1; j < {last.n_out}; ++j) if (score[j] > score[best]) best = j;\n"
        "    (void)swap;\n"
        "    return best;\n"
        "}\n"
    )
    return CModel(header, source, flash, ram, integer_scores)
