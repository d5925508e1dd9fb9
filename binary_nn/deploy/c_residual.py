"""C99 for residual binary networks: the same ``int bnn_predict(const uint8_t *pixels)`` as
``c_code``, for a packed model whose plain convolutions (the stem) are followed by residual
units (``packed_residual``) and an output layer that reads the last unit's stream, averaged
over positions (``gap``) or flattened.

The stem runs as in ``c_code`` (integers, bit maps). The stream between units is ``double``,
computed as the packed engine computes it: each unit signs it into a bit map, convolves the
signs with XNOR-popcount (integers), max-pools, divides by the scaler's fan-in, applies
batch norm (``a * scale + shift``), and adds the shortcut (the stream, its window means, a
1x1 projection with its batch norm), then RPReLU. Every ``double`` step but the projection's
and the output layer's sums is the float64 network's, in its order; those two add the same
products in a fixed order that a BLAS may not keep (last bits). Compile without
floating-point contraction into FMA (C99 compilers do not contract by default in ISO mode).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..nn.kernels.bits import WORD, pack_bits
from .c_code import CModel, c_array, c_header, c_prologue, conv_code, conv_consts, tanh_clamp
from .packed import PackedModel
from .packed_conv import PackedConv, refuse_c
from .packed_residual import PackedResidual

_SIZES = {"uint64_t": 8, "int32_t": 4, "int8_t": 1, "double": 8}


def has_residual_stages(model: PackedModel) -> bool:
    """Whether ``model`` needs this generator (residual units or ``gap``)."""
    return model.global_pool or any(isinstance(s, PackedResidual) for s in model.convs)


def _split(model: PackedModel) -> tuple[list[PackedConv], list[PackedResidual]]:
    """The stem's plain convolutions and the residual units after them; one sentence for
    any other order or a hidden dense layer."""
    stem: list[PackedConv] = []
    units: list[PackedResidual] = []
    for k, stage in enumerate(model.convs):
        if isinstance(stage, PackedResidual):
            units.append(stage)
        elif units:
            raise ConfigError(
                f"--format c runs plain convolutions before the residual units only; "
                f"convolution {k} follows one: export this network as npz"
            )
        else:
            refuse_c(stage, k)
            stem.append(stage)
    if len(model.layers) > 1:
        raise ConfigError(
            "--format c runs residual networks whose output layer reads the last unit "
            "(--hidden ''): export this network, which has hidden dense layers, as npz"
        )
    if not stem or not units:
        raise ConfigError("--format c: a residual network needs a stem and residual units")
    return stem, units


def _unit_consts(k: int, unit: PackedResidual) -> dict[str, tuple[str, np.ndarray]]:
    """Unit ``k``'s constants: its weights as channel words per tap (padding bits 1, as a
    binary convolution's), thresholds, batch norm, projection and RPReLU."""
    kk, _, c_in, c_out = unit.weights.shape
    per_tap = unit.weights.transpose(3, 0, 1, 2).reshape(c_out * kk * kk, c_in)
    words = pack_bits(per_tap, pad=1).reshape(c_out, kk * kk * -(-c_in // WORD))
    arrays = {
        f"RW{k}": ("uint64_t", words),
        f"RA{k}": ("double", unit.alpha),
        f"RS{k}": ("double", unit.scale),
        f"RH{k}": ("double", unit.shift),
    }
    if unit.project is not None:
        assert unit.project_scale is not None and unit.project_shift is not None
        arrays[f"RP{k}"] = ("double", unit.project)
        arrays[f"RPS{k}"] = ("double", unit.project_scale)
        arrays[f"RPH{k}"] = ("double", unit.project_shift)
    if unit.rprelu is not None:
        arrays[f"RR{k}"] = ("double", unit.rprelu)
    return arrays


def _unit_code(k: int, unit: PackedResidual) -> str:
    """Unit ``k`` from stream ``s`` to stream ``t``, through the sign map ``B``."""
    h, w, c_in = unit.shape_in
    ho, wo, c_out = unit.shape_out
    p, kk, pad = unit.pool, unit.k, unit.k // 2
    wc_in = -(-c_in // WORD)
    shortcut = "avg[co]"
    if unit.pad:  # the zero channels appended
        shortcut = f"co < {c_in} ? avg[co] : 0.0"
    if unit.project is not None:
        shortcut = (
            "0.0;\n"
            f"                for (int ci = 0; ci < {c_in}; ++ci) m += avg[ci] * RP{k}[ci][co];\n"
            f"                m = m * RPS{k}[co] + RPH{k}[co]"
        )
    rprelu = ""
    if unit.rprelu is not None:
        rprelu = (
            f"                double d = out - RR{k}[0][co];\n"
            f"                out = (d > 0 ? d : RR{k}[1][co] * d) + RR{k}[2][co];\n"
        )
    divide = f"                v = v / {unit.divisor}.0;\n" if unit.divisor != 1 else ""
    return (
        f"    /* unit {k}: {unit.describe()} */\n"
        f"    for (int i = 0; i < {h * w * wc_in}; ++i) B[i] = 0;\n"
        f"    for (int pos = 0; pos < {h * w}; ++pos) {{\n"
        f"        for (int c = 0; c < {c_in}; ++c) {{\n"
        f"            if (s[pos * {c_in} + c] - RA{k}[c] > 0)"
        f" B[pos * {wc_in} + (c >> 6)] |= (uint64_t)1 << (c & 63);\n"
        "        }\n"
        "    }\n"
        f"    for (int r = 0; r < {ho}; ++r) {{\n"
        f"        for (int q = 0; q < {wo}; ++q) {{\n"
        f"            double avg[{c_in}];\n"
        f"            for (int c = 0; c < {c_in}; ++c) {{\n"
        "                double sum = 0.0;\n"
        f"                for (int py = 0; py < {p}; ++py) for (int px = 0; px < {p}; ++px)\n"
        f"                    sum += s[((r * {p} + py) * {w} + q * {p} + px) * {c_in} + c];\n"
        f"                avg[c] = sum / {p * p}.0;\n"
        "            }\n"
        f"            for (int co = 0; co < {c_out}; ++co) {{\n"
        "                int32_t best = INT32_MIN;\n"
        f"                for (int py = 0; py < {p}; ++py) for (int px = 0; px < {p}; ++px) {{\n"
        f"                    int y = r * {p} + py, x0 = q * {p} + px;\n"
        "                    int32_t pc = 0, n = 0;\n"
        f"                    for (int dy = 0; dy < {kk}; ++dy) {{\n"
        f"                        int yy = y + dy - {pad};\n"
        f"                        if (yy < 0 || yy >= {h}) continue;\n"
        f"                        for (int dx = 0; dx < {kk}; ++dx) {{\n"
        f"                            int xx = x0 + dx - {pad};\n"
        f"                            if (xx < 0 || xx >= {w}) continue;\n"
        f"                            for (int v = 0; v < {wc_in}; ++v) {{\n"
        f"                                uint64_t x = B[(yy * {w} + xx) * {wc_in} + v];\n"
        f"                                uint64_t m = RW{k}[co][(dy * {kk} + dx) * {wc_in} + v];\n"
        "                                pc += popcount64(~(x ^ m));\n"
        "                            }\n"
        f"                            n += {c_in};\n"
        "                        }\n"
        "                    }\n"
        "                    int32_t a = 2 * pc - n;\n"
        "                    if (a > best) best = a;\n"
        "                }\n"
        "                double v = (double)best;\n"
        + divide
        + f"                v = v * RS{k}[co] + RH{k}[co];\n"
        f"                double m = {shortcut};\n"
        "                double out = v + m;\n"
        + rprelu
        + f"                t[(r * {wo} + q) * {c_out} + co] = out;\n"
        "            }\n"
        "        }\n"
        "    }\n"
        "    swap = s; s = t; t = swap;\n"
    )


def residual_c_model(model: PackedModel) -> CModel:
    """The C source of a residual ``model`` (see the module docstring)."""
    stem, units = _split(model)
    (last,) = model.layers
    assert last.scale is not None and last.shift is not None
    arrays: dict[str, tuple[str, np.ndarray]] = {}
    for k, conv in enumerate(stem):
        arrays.update(conv_consts(k, conv))
    for k, unit in enumerate(units, start=len(stem)):
        arrays.update(_unit_consts(k, unit))
    weights = np.asarray(last.weights, np.float64)  # (n_in, n_out); +-1 when binary
    if last.packed:
        raise ConfigError("--format c: the output layer of a residual net reads real values")
    arrays["OW"] = ("double", np.ascontiguousarray(weights.T))
    arrays["OS"] = ("double", last.scale)
    arrays["OH"] = ("double", last.shift)
    consts = [c_array(ctype, name, values) for name, (ctype, values) in arrays.items()]
    flash = sum(values.size * _SIZES[ctype] for ctype, values in arrays.values())
    stream = max(max(u.n_out for u in units), max(math.prod(u.shape_in) for u in units))
    sign_words = max(u.shape_in[0] * u.shape_in[1] * -(-u.shape_in[2] // WORD) for u in units)
    maps = [
        f"    static uint64_t M{k}[{c.shape_out[0] * c.shape_out[1] * -(-c.c_out // WORD)}];\n"
        for k, c in enumerate(stem)
    ]
    map_bytes = sum(c.shape_out[0] * c.shape_out[1] * -(-c.c_out // WORD) * 8 for c in stem)
    ram = map_bytes + 2 * stream * 8 + sign_words * 8 + last.n_in * 8 + last.n_out * 8
    top = stem[-1]
    ho, wo, c_top = top.shape_out
    body = [conv_code(k, conv, f"M{k - 1}" if k else "pixels") for k, conv in enumerate(stem)]
    body.append(
        f"    /* the stem's signs as the stream */\n"
        f"    for (int pos = 0; pos < {ho * wo}; ++pos) for (int c = 0; c < {c_top}; ++c)\n"
        f"        s[pos * {c_top} + c] = ((M{len(stem) - 1}[pos * {-(-c_top // WORD)} + (c >> 6)]"
        " >> (c & 63)) & 1u) ? 1.0 : -1.0;\n"
    )
    body += [_unit_code(k, unit) for k, unit in enumerate(units, start=len(stem))]
    fh, fw, fc = units[-1].shape_out
    if model.global_pool:
        body.append(
            "    /* each channel's mean over the positions (gap) */\n"
            f"    for (int c = 0; c < {fc}; ++c) {{\n"
            "        double sum = 0.0;\n"
            f"        for (int pos = 0; pos < {fh * fw}; ++pos) sum += s[pos * {fc} + c];\n"
            f"        feature[c] = sum / {fh * fw}.0;\n"
            "    }\n"
        )
    else:
        body.append(f"    for (int i = 0; i < {fh * fw * fc}; ++i) feature[i] = s[i];\n")
    decide = tanh_clamp(model.last_activation, "double")
    source = (
        c_prologue(consts, maps) + f"    static double stream_a[{stream}], stream_b[{stream}];\n"
        f"    static uint64_t B[{sign_words}];\n"
        f"    double feature[{last.n_in}], score[{last.n_out}];\n"
        "    double *s = stream_a, *t = stream_b, *swap;\n"
        + "".join(body)
        + f"    /* output layer: {last.describe()} */\n"
        f"    for (int j = 0; j < {last.n_out}; ++j) {{\n"
        "        double acc = 0.0;\n"
        f"        for (int i = 0; i < {last.n_in}; ++i) acc += feature[i] * OW[j][i];\n"
        "        score[j] = acc * OS[j] + OH[j];\n" + decide + "    }\n"
        "    int best = 0;\n"
        f"    for (int j = 1; j < {last.n_out}; ++j) if (score[j] > score[best]) best = j;\n"
        "    (void)t;\n"
        "    return best;\n"
        "}\n"
    )
    header = c_header(model, flash, ram, "A residual binary network")
    return CModel(header, source, flash, ram, False)
