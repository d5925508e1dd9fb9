"""The cost of learning: a network's size and operations per layer, and per rule the work and
memory of one training step, counted from what the layers and rules say of themselves.

Counts are per example. MACs are multiply-accumulates of the products (elementwise work such
as activations, batch norm and the update is not counted). Held values are the activations
the backward step needs kept from the forward pass, counted once per distinct array (an
array kept by one layer for its output and by the next for its input is one array):

- GD, DFA and DRTP keep every block's until the step's updates (the error exists only after
  the whole forward pass);
- streaming DRTP updates each hidden block as soon as its forward is done and releases it, so
  it holds one block's input, caches and output at a time (the training loop hands the batch
  over without keeping it, so that it goes once the first block is done).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..nn.block import Block, Path
from ..nn.layers import ActivationLayer, WeightLayer
from ..nn.network import Network
from ..nn.residual import Unit
from .rules import RULES, LearningRule


@dataclass
class LayerCost:
    """One layer's row of the summary."""

    block: int
    kind: str
    output_shape: tuple[int, ...]
    parameters: int
    bits: int | None  # per weight; None for a parameter-free layer
    stored_bytes: int
    packed_bytes: int
    macs: int
    binary_macs: int


def layer_costs(network: Network) -> list[LayerCost]:
    """Per layer: shape, parameters, bits, bytes as stored and packed, forward MACs and the
    MACs whose both operands are +-1 (binary weights fed by a sign activation)."""
    rows: list[LayerCost] = []
    binary_input = False  # the network's input is pixels
    for k, unit in enumerate(network.blocks):
        if isinstance(unit, Block):
            binary_input = _path_costs(unit, k, binary_input, network.dtype.itemsize, rows)
            continue
        # both branches read the unit's input; what follows the sum reads the sum (real)
        for section in (unit.path, unit.shortcut):
            _path_costs(section, k, binary_input, network.dtype.itemsize, rows)
        binary_input = _path_costs(unit.after, k, False, network.dtype.itemsize, rows)
    return rows


def _path_costs(
    path: Path, k: int, binary_input: bool, itemsize: int, rows: list[LayerCost]
) -> bool:
    """Appends the rows of ``path``'s layers (of unit ``k``); whether its output is +-1."""
    for layer, shape in path.walk():
        out = layer.output_shape(shape)
        params = layer.parameters()
        n_params = sum(p.size for p in params)
        stored = n_params * itemsize
        bits: int | None = None
        packed = stored
        if params:
            bits = 8 * itemsize
        if isinstance(layer, WeightLayer) and layer.quantizer.bits is not None:
            bits = layer.quantizer.bits
            weight = layer.weight.size
            packed = stored - weight * itemsize + -(-weight * bits // 8)
        macs = layer.forward_macs(shape)
        binary = isinstance(layer, WeightLayer) and layer.quantizer.binary and binary_input
        rows.append(
            LayerCost(k, layer.kind, out, n_params, bits, stored, packed, macs,
                      macs if binary else 0)
        )  # fmt: skip
        if isinstance(layer, ActivationLayer):
            binary_input = layer.activation.binary_output
        elif not layer.aliases_input:
            binary_input = False
    return binary_input


def largest_activation(network: Network) -> int:
    """Values per example of the largest array between two layers (the input included)."""
    largest = math.prod(network.input_shape)
    for unit in network.blocks:
        for layer, shape in unit.walk():
            largest = max(largest, math.prod(layer.output_shape(shape)))
    return largest


def _path_arrays(path: Path) -> tuple[int, int, int, bool, bool]:
    """(input size, values kept inside the path, output size, whether the path keeps its
    input, whether it keeps its output) per example."""
    shape = path.input_shape
    sizes = [math.prod(shape)]  # the arrays between layers, input first
    kept = [False] * (len(path.layers) + 1)
    extra = 0
    for i, layer in enumerate(path.layers):
        out = layer.output_shape(shape)
        extra += layer.extra_values(shape)
        kept[i] = kept[i] or layer.keeps_input
        kept[i + 1] = kept[i + 1] or layer.keeps_output
        if layer.aliases_input:  # a view: the same array as its input
            kept[i + 1] = kept[i + 1] or kept[i]
            sizes.append(0)
        else:
            sizes.append(math.prod(out))
        shape = out
    # an aliasing layer's output is kept when the array it views is
    for i in range(len(path.layers) - 1, -1, -1):
        if path.layers[i].aliases_input and kept[i + 1]:
            kept[i] = True
    if not path.layers:  # the identity: its output is its input
        return sizes[0], 0, sizes[0], False, False
    inner = sum(size for size, keep in zip(sizes[1:-1], kept[1:-1], strict=True) if keep)
    return sizes[0], inner + extra, sizes[-1], kept[0], kept[-1]


def _unit_arrays(unit: Unit) -> tuple[int, int, int, bool, bool]:
    """``_path_arrays`` of a unit: a residual unit's inner values are its sections', the
    branches' outputs where a layer keeps them, and the sum where what follows keeps it."""
    if isinstance(unit, Block):
        return _path_arrays(unit)
    path, shortcut, after = (_path_arrays(s) for _, s in unit.sections())
    inner = path[1] + shortcut[1] + after[1]
    inner += path[2] if path[4] else 0
    inner += shortcut[2] if shortcut[4] else 0
    if not unit.after.layers:  # the sum is the output, made by the unit: nothing keeps it
        return path[0], inner, path[2], path[3] or shortcut[3], False
    inner += after[0] if after[3] else 0
    return path[0], inner, after[2], path[3] or shortcut[3], after[4]


def block_held_values(block: Unit) -> int:
    """Values per example a unit holds at its update when it is the only one (streaming):
    its input, caches and output."""
    inp, inner, out, _, _ = _unit_arrays(block)
    return inp + inner + out


def held_values(network: Network, streaming: bool = False) -> int:
    """Values per example held between the forward pass and the updates (see the module)."""
    if streaming:  # one block at a time
        return max(block_held_values(block) for block in network.blocks)
    arrays = [_unit_arrays(block) for block in network.blocks]
    total = 0
    for k, (inp, inner, _, keeps_in, _) in enumerate(arrays):
        below_keeps_out = k > 0 and arrays[k - 1][4]
        total += inp if (keeps_in or below_keeps_out) else 0
        total += inner
    *_, out, _, keeps_out = arrays[-1]
    return total + (out if keeps_out else 0)


def rule_costs(network: Network, optimizer_state: int = 0) -> list[dict[str, Any]]:
    """Per rule (and streaming DRTP), per example: forward and backward MACs, held values and
    bytes, feedback bytes, totals and the ratio to GD; and the optimizer's ``optimizer_state``
    values (for the whole network: they depend on neither the rule nor the batch)."""
    forward = sum(row.macs for row in layer_costs(network))
    itemsize = network.dtype.itemsize
    optimizer_bytes = optimizer_state * itemsize
    rows: list[dict[str, Any]] = []
    variants: list[tuple[str, type[LearningRule], bool]] = [
        (name, RULES.get(name), False) for name in RULES.names()
    ]
    variants.append(("DRTP (streaming)", RULES.get("DRTP"), True))
    for name, rule, streaming in variants:
        backward = rule.backward_macs(network)
        held = held_values(network, streaming)
        feedback = rule.feedback_values(network) * itemsize
        rows.append(
            {
                "rule": name,
                "forward_macs": forward,
                **{f"backward_macs/{k}": v for k, v in backward.items()},
                "backward_macs": sum(backward.values()),
                "total_macs": forward + sum(backward.values()),
                "held_values": held,
                "held_bytes": held * itemsize,
                "feedback_bytes": feedback,
                "optimizer_state_bytes": optimizer_bytes,
            }
        )
    gd = rows[0]
    for row in rows:
        row["macs_vs_gd"] = row["total_macs"] / gd["total_macs"]
        row["held_vs_gd"] = row["held_values"] / gd["held_values"]
    return rows


def cost_summary(network: Network, optimizer_state: int = 0) -> dict[str, Any]:
    """Both tables as plain data (what ``config.json`` holds under ``cost``); the
    optimizer keeps ``optimizer_state`` values (see ``rule_costs``)."""
    layers = layer_costs(network)
    stored = sum(r.stored_bytes for r in layers)
    packed = sum(r.packed_bytes for r in layers)
    macs = sum(r.macs for r in layers)
    return {
        "layers": [asdict(r) for r in layers],
        "rules": rule_costs(network, optimizer_state),
        "totals": {
            "parameters": sum(r.parameters for r in layers),
            "stored_bytes": stored,
            "packed_bytes": packed,
            "forward_macs": macs,
            "binary_macs_share": sum(r.binary_macs for r in layers) / macs if macs else 0.0,
        },
    }


def _n(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.3f}"


def render(summary: dict[str, Any], architecture: str) -> str:
    """Both tables as markdown."""
    lines = [
        f"# {architecture}",
        "",
        "| block | layer | output shape | parameters | bits/weight | stored bytes | packed bytes "
        "| MACs/example | binary MACs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["layers"]:
        shape = "x".join(map(str, row["output_shape"]))
        bits = "-" if row["bits"] is None else str(row["bits"])
        lines.append(
            f"| {row['block']} | {row['kind']} | {shape} | {_n(row['parameters'])} | {bits} "
            f"| {_n(row['stored_bytes'])} | {_n(row['packed_bytes'])} | {_n(row['macs'])} "
            f"| {_n(row['binary_macs'])} |"
        )
    t = summary["totals"]
    lines += [
        f"| total | | | {_n(t['parameters'])} | | {_n(t['stored_bytes'])} "
        f"| {_n(t['packed_bytes'])} | {_n(t['forward_macs'])} "
        f"| {t['binary_macs_share']:.1%} of MACs |",
        "",
        "Per training example: MACs of the forward pass and of the backward work (chained input "
        "gradients, feedback projections, weight gradients); activations held between the "
        "forward pass and the update; the fixed feedback matrices; the optimizer's state (for "
        "the whole network, not per example).",
        "",
        "| rule | forward MACs | input grads | projections | weight grads | total MACs | vs GD "
        "| held values | held bytes | vs GD | feedback bytes | optimizer state bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rules"]:
        lines.append(
            f"| {r['rule']} | {_n(r['forward_macs'])} | {_n(r['backward_macs/input_grads'])} "
            f"| {_n(r['backward_macs/projections'])} | {_n(r['backward_macs/weight_grads'])} "
            f"| {_n(r['total_macs'])} | {r['macs_vs_gd']:.3f} | {_n(r['held_values'])} "
            f"| {_n(r['held_bytes'])} | {r['held_vs_gd']:.3f} | {_n(r['feedback_bytes'])} "
            f"| {_n(r.get('optimizer_state_bytes', 0))} |"
        )
    return "\n".join(lines) + "\n"
