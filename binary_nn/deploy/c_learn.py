"""C99 for learning on a microcontroller: the device learner of ``online`` as a library.

``learn_sources`` writes ``bnn_learn_model.h`` and ``bnn_learn_model.c`` (the network's
sizes, rule and rates, its initial latent weights and its feedback matrices) beside the
model-independent ``bnn_learn.h``, ``bnn_learn.c`` and ``learn_example.c`` (shipped in
``binary_nn/deploy/c``), and, in ``mcu/``, a reset handler, a semihosting main and a linker
script for a Cortex-M4F under QEMU. Integers only (no ``<math.h>``, no floats); static
memory only; the feedback matrices and tables are constants (flash), the latent weights and
running statistics variables (RAM).

``device_memory`` is the RAM the library takes for a learner, by part, as the code lays
it out: what ``summary --device`` prints and ``benchmarks/mcu.py`` measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from .c_code import c_array
from .online import EXP_TABLE, OnlineLearner

#: the library's files, the same for every model
LIBRARY_FILES = ("bnn_learn.h", "bnn_learn.c", "learn_example.c")
MCU_FILES = ("startup.c", "mcu_main.c")
METHOD_CODES = {"GD": 0, "DFA": 1, "DRTP": 2, "output-only": 3}


def library_text(name: str) -> str:
    """One of the model-independent C files."""
    return resources.files("binary_nn.deploy.c").joinpath(name).read_text()


def mcu_text(name: str) -> str:
    """One of the Cortex-M harness files."""
    return resources.files("binary_nn.deploy.c").joinpath("mcu").joinpath(name).read_text()


def linker_script(ram_bytes: int, min_stack: int = 1024) -> str:
    """The Cortex-M4F linker script with ``ram_bytes`` of RAM."""
    text = mcu_text("link.ld.in")
    return text.replace("@RAM_BYTES@", str(ram_bytes)).replace("@MIN_STACK@", str(min_stack))


@dataclass(frozen=True)
class Layout:
    """The sizes the buffers of ``bnn_learn.c`` take for one learner."""

    sizes: tuple[tuple[int, int], ...]  # (inputs, outputs) of each layer
    kept_signs: int  # hidden layers' sign buffers kept by a step
    deltas: int  # error-signal buffers

    @classmethod
    def of(cls, sizes: list[tuple[int, int]], method: str, streaming: bool) -> Layout:
        hidden = len(sizes) - 1
        kept = max(1, min(2, hidden)) if streaming else max(1, hidden)
        deltas = max(1, hidden) if method == "GD" else 0 if method == "output-only" else 1
        return cls(tuple(sizes), kept, deltas)

    @classmethod
    def of_learner(cls, learner: OnlineLearner) -> Layout:
        sizes = [(layer.n_in, layer.n_out) for layer in learner.layers]
        return cls.of(sizes, learner.method, learner.streaming)

    @property
    def classes(self) -> int:
        return self.sizes[-1][1]

    @property
    def width(self) -> int:
        """The widest hidden layer."""
        return max([1, *(n_out for _, n_out in self.sizes[:-1])])

    def memory(self) -> dict[str, int]:
        """RAM bytes by part, as ``bnn_learn.c`` and the model file lay them out (alignment
        padding apart; not the stack, not the caller's image buffer)."""
        return {
            "latent weights (int16)": sum(2 * n_in * n_out for n_in, n_out in self.sizes),
            "running statistics (int32 mean, deviation)": sum(
                8 * n_out for _, n_out in self.sizes[:-1]
            ),
            "kept activations (signs, gates: int8)": 2 * self.kept_signs * self.width,
            "error signals (int32)": 4 * self.deltas * self.width,
            "scores, error, exponentials (int32)": 12 * self.classes,
            "state walk (a name, the hash)": 32 + 8,
        }


def device_memory(learner: OnlineLearner) -> dict[str, int]:
    """RAM bytes of the learning library for ``learner``, by part (``Layout.memory``)."""
    return Layout.of_learner(learner).memory()


def model_header(learner: OnlineLearner) -> str:
    """``bnn_learn_model.h``: the sizes, the rule, the constants and the layer table's type."""
    layout = Layout.of_learner(learner)
    settings = learner.settings
    defines = {
        "BNN_LAYERS": len(layout.sizes),
        "BNN_CLASSES": layout.classes,
        "BNN_INPUTS": layout.sizes[0][0],
        "BNN_WIDTH": layout.width,
        "BNN_KEPT_SIGNS": layout.kept_signs,
        "BNN_DELTAS": layout.deltas,
        "BNN_GD": METHOD_CODES["GD"],
        "BNN_DFA": METHOD_CODES["DFA"],
        "BNN_DRTP": METHOD_CODES["DRTP"],
        "BNN_OUTPUT_ONLY": METHOD_CODES["output-only"],
        "BNN_METHOD": METHOD_CODES[learner.method],
        "BNN_STREAMING": int(learner.streaming),
        "BNN_PIXEL_OFFSET": learner.pixel_offset,
        "BNN_GATE_Q4": settings.gate_q4,
        "BNN_MOMENTUM_SHIFT": settings.momentum_shift,
        "BNN_Q_MUL": learner.q_mul,
        "BNN_Q_SHIFT": learner.q_shift,
        "BNN_EXP_TABLE": EXP_TABLE,
    }
    lines = "\n".join(f"#define {name} {value}" for name, value in defines.items())
    return f"""/* The model of the device learner (written by binary_nn.export --learn). */
#ifndef BNN_LEARN_MODEL_H
#define BNN_LEARN_MODEL_H

#include <stdint.h>

{lines}

/* one fully connected layer: latent weights (out, in) in Q14, +-1 when binary */
typedef struct {{
    int n_in, n_out, binary;
    int16_t *latent;
    int32_t *mu, *mad;         /* running statistics (hidden layers), Q8 */
    const int8_t *feedback;    /* (classes, out): DFA and DRTP's fixed matrix */
    int32_t rate_mul;          /* the step: round(round(delta * mul / 2^shift) * x / 2^x_shift) */
    int rate_shift, x_shift;
    int back_shift;            /* BP: the shift of the error sent below */
}} bnn_layer_t;

extern const bnn_layer_t bnn_layers[BNN_LAYERS];
extern const uint16_t bnn_exp_table[BNN_EXP_TABLE];

#endif
"""


def model_source(learner: OnlineLearner) -> str:
    """``bnn_learn_model.c``: the initial state (variables) and the constants."""
    parts = [
        "/* The device learner's initial state and constants "
        "(written by binary_nn.export --learn). */\n"
        '#include "bnn_learn_model.h"\n'
    ]
    rows = []
    for k, layer in enumerate(learner.layers):
        parts.append(
            c_array("int16_t", f"V{k}", layer.latent.reshape(-1).astype(np.int16)).replace(
                "static const", "static"
            )
        )
        mu = mad = feedback = "0"
        if layer.mu is not None:
            parts.append(
                f"static int32_t MU{k}[{layer.n_out}];\nstatic int32_t MAD{k}[{layer.n_out}];\n"
            )
            mu, mad = f"MU{k}", f"MAD{k}"
        if layer.feedback is not None:
            parts.append(c_array("int8_t", f"B{k}", layer.feedback.reshape(-1).astype(np.int8)))
            feedback = f"B{k}"
        rate = layer.rate
        rows.append(
            f"    {{{layer.n_in}, {layer.n_out}, {int(layer.binary)}, V{k}, {mu}, {mad}, "
            f"{feedback}, {rate.mul}, {rate.shift}, {rate.x_shift}, {layer.back_shift}}}"
        )
    parts.append(c_array("uint16_t", "bnn_exp_table", learner.exp_table).replace("static ", ""))
    parts.append("const bnn_layer_t bnn_layers[BNN_LAYERS] = {\n" + ",\n".join(rows) + "\n};\n")
    return "\n".join(parts)


def learn_sources(learner: OnlineLearner) -> dict[str, str]:
    """Every file of the device library by its path under the export directory."""
    files = {name: library_text(name) for name in LIBRARY_FILES}
    files["bnn_learn_model.h"] = model_header(learner)
    files["bnn_learn_model.c"] = model_source(learner)
    for name in MCU_FILES:
        files[f"mcu/{name}"] = mcu_text(name)
    return files


#: the rules of the device table, with whether they stream
DEVICE_TABLE_RULES = (
    ("GD", False), ("DFA", False), ("DRTP", False), ("DRTP", True), ("output-only", False)
)  # fmt: skip


def device_table(sizes: list[tuple[int, int]]) -> str:
    """Markdown: the RAM the device learner takes per rule for layers of these sizes."""
    lines = [
        "| rule | latent weights | statistics | activations and signals | other | total RAM "
        "| activations share |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, streaming in DEVICE_TABLE_RULES:
        parts = Layout.of(sizes, method, streaming).memory()
        latent = parts["latent weights (int16)"]
        stats = parts["running statistics (int32 mean, deviation)"]
        acts = parts["kept activations (signs, gates: int8)"] + parts["error signals (int32)"]
        total = sum(parts.values())
        name = f"{method} (streaming)" if streaming else method
        lines.append(
            f"| {name} | {latent:,} | {stats:,} | {acts:,} | {total - latent - stats - acts:,} "
            f"| {total:,} | {acts / total:.2%} |"
        )
    return "\n".join(lines) + "\n"
