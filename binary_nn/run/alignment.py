"""Why a rule learns: its updates against the true gradient, layer by layer.

``Alignment`` is a probe. On a fixed batch (the first training examples) it runs one
forward pass in training mode, lets the run's rule fill the gradients from it, then a
backpropagation twin (``GD``) on the very same forward pass,
and compares, for every hidden block ``k``:

- ``align/grad/{k}``: the angle between the rule's weight gradient and backprop's;
- ``align/signal/{k}``, ``align/signal_std/{k}``: mean and standard deviation over examples of
  the angle between what the rule delivers to the block's output and backprop's gradient there;
- ``align/weight/{k}`` (DFA): the angle between ``B_k`` and the transpose of the product of the
  effective weights above block ``k`` (activations and batch norm taken as identity);
- ``flip/{k}`` (binary weights): the fraction of ``sign(W_k)`` that changed since the previous
  measurement.

Angles are in degrees; an angle whose vectors are at the level of rounding noise is ``None``
(``null`` in ``metrics.jsonl``). The measurement works on a copy of the network and the rule
(its training-mode forward would otherwise move batch norm's running statistics) and draws no
random numbers, so a run with the probe is bit-identical to one without.
"""

from __future__ import annotations

import copy
import math
from typing import Any, NamedTuple

import numpy as np

from ..learning.loss import Loss, one_hot
from ..learning.rules import GD, LearningRule
from ..nn.block import Block
from ..nn.layers import Linear
from ..nn.network import Network
from ..nn.quantizers import sign
from ..nn.residual import Unit
from .probes import Probe, ProbeContext

#: how many rounding errors a norm must exceed for its direction to mean anything
NOISE_FACTOR = 1000.0


def angle_degrees(
    u: np.ndarray, v: np.ndarray, floor: float = 0.0, floor_v: float | None = None
) -> float | None:
    """The angle between ``u`` and ``v`` (flattened), or None when ``u``'s norm is ``<=
    floor`` or ``v``'s is ``<= floor_v`` (``floor`` when not given).

    ``2 atan2(|u' - v'|, |u' + v'|)`` of the unit vectors ``u'``, ``v'``: exact for parallel
    vectors (0, not the ``arccos`` of a rounded 1) and accurate at every angle.
    """
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if not (nu > floor and nv > (floor if floor_v is None else floor_v)):
        return None
    u, v = u / nu, v / nv
    return math.degrees(2 * math.atan2(np.linalg.norm(u - v), np.linalg.norm(u + v)))


def row_angles(u: np.ndarray, v: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Per example (row) angles in degrees; NaN where a row's norm is ``<= floor``."""
    u = np.asarray(u, dtype=np.float64).reshape(len(u), -1)
    v = np.asarray(v, dtype=np.float64).reshape(len(v), -1)
    nu = np.linalg.norm(u, axis=1, keepdims=True)
    nv = np.linalg.norm(v, axis=1, keepdims=True)
    valid = ((nu > floor) & (nv > floor)).reshape(-1)
    u, v = u / np.where(nu > 0, nu, 1), v / np.where(nv > 0, nv, 1)
    angles = np.degrees(
        2 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))
    )
    return np.where(valid, angles, np.nan)


def forward_path(network: Network, k: int) -> np.ndarray:
    """The product of the effective weights above hidden block ``k``: (its output size,
    n_classes), the forward path's linearisation with activations and batch norm as identity."""
    path: np.ndarray | None = None
    for block in network.blocks[k + 1 :]:
        w = network.kernels.to_host(block.weight_layer.effective_weight())
        w = w.reshape(-1, w.shape[-1])
        path = w if path is None else path @ w
    assert path is not None
    return path


def _dense(unit: Unit) -> bool:
    """Whether a unit is a dense block reading its whole input (no pooling, no shortcut):
    the units through which a product of weight matrices is the forward path."""
    return (
        isinstance(unit, Block)
        and isinstance(unit.weight_layer, Linear)
        and math.prod(unit.input_shape) == unit.weight_layer.fan_in
    )


class Twin(NamedTuple):
    """A rule's and backpropagation's gradients and signals on one forward pass, per hidden
    block: weight gradients, what reached the block's output, and the block's input."""

    rule_grads: list[np.ndarray]
    rule_signals: list[np.ndarray]
    bp_grads: list[np.ndarray]
    bp_signals: list[np.ndarray]
    inputs: list[np.ndarray]


def rule_and_backprop(
    network: Network, rule: LearningRule, loss: Loss, x: np.ndarray, labels: np.ndarray
) -> Twin:
    """One training-mode forward of ``x``; the rule's backward, then a backpropagation twin's
    on the same forward. Overwrites the network's gradients and moves batch norm's running
    statistics: give it a copy of a network that trains."""
    host = network.kernels.to_host
    target = one_hot(labels, network.n_classes, network.dtype)
    inputs, h = [x], x
    for h in network.each_block_output(x, train=True):  # inputs kept: the units' own
        inputs.append(h)
    _, error = loss.value_and_error(h, target)
    target01 = (target + 1) / 2
    weights = [block.weight_layer.weight for block in network.hidden_blocks]
    xp = network.kernels.xp
    rule_signals = rule.backward(xp.asarray(error, copy=True), target01)
    rule_grads = [np.array(host(w.grad)) for w in weights]  # host copies
    with network.true_error_path():  # the true gradient, whatever path the rule set
        bp_signals = GD(network).backward(xp.asarray(error, copy=True), target01)
    bp_grads = [np.array(host(w.grad)) for w in weights]
    return Twin(
        rule_grads,
        [host(s) for s in rule_signals],
        bp_grads,
        [host(s) for s in bp_signals],
        [host(i) for i in inputs[: len(weights)]],
    )


class Alignment(Probe):
    """The alignment of a rule with backpropagation (see the module docstring).

    Parameters
    ----------
    n_examples : int
        The probe batch: the first ``n_examples`` training examples.
    every : int
        Measure every ``every`` iterations; 0 measures at epoch ends. It always measures
        before training (epoch 0).
    """

    at_start = True

    def __init__(self, n_examples: int = 512, every: int = 0) -> None:
        self.n_examples = n_examples
        self.every = every
        self._signs: list[np.ndarray | None] | None = None

    def __call__(self, context: ProbeContext) -> dict[str, Any]:
        x = next(context.data.chunks("train", self.n_examples, self.n_examples))
        labels = context.data.labels("train", x.shape[0])
        # measured on a copy of the network and rule: nothing of it can reach the run
        network, rule = copy.deepcopy((context.network, context.rule))
        metrics: dict[str, Any] = self._measure(network, rule, context.loss, x, labels)
        metrics.update(self._flips(context.network))
        return metrics

    @staticmethod
    def _measure(
        network: Network, rule: LearningRule, loss: Loss, x: np.ndarray, labels: np.ndarray
    ) -> dict[str, Any]:
        twin = rule_and_backprop(network, rule, loss, x, labels)
        eps = float(np.finfo(network.dtype).eps)
        metrics: dict[str, float | None] = {}
        for k in range(len(network.hidden_blocks)):
            bp_signal = twin.bp_signals[k]
            # a gradient is a sum of products of the block's inputs and its signal: its
            # rounding noise is about eps times the product of their norms (each gradient
            # against its own signal: a rule's may be far smaller than backprop's and exact,
            # FA's fixed matrices keeping the scale the weights had at the start)
            inputs = float(np.linalg.norm(twin.inputs[k]))
            rule_scale = inputs * float(np.linalg.norm(twin.rule_signals[k]))
            bp_scale = inputs * float(np.linalg.norm(bp_signal))
            metrics[f"align/grad/{k}"] = angle_degrees(
                twin.rule_grads[k], twin.bp_grads[k], NOISE_FACTOR * eps * rule_scale,
                NOISE_FACTOR * eps * bp_scale,
            )  # fmt: skip
            floor = NOISE_FACTOR * eps * np.abs(bp_signal).max(initial=0.0)
            angles = row_angles(twin.rule_signals[k], bp_signal, floor)
            valid = angles[np.isfinite(angles)]
            metrics[f"align/signal/{k}"] = float(valid.mean()) if len(valid) else None
            metrics[f"align/signal_std/{k}"] = float(valid.std()) if len(valid) else None
            if rule.projects_error and all(_dense(b) for b in network.blocks[k + 1 :]):
                metrics[f"align/weight/{k}"] = angle_degrees(
                    network.kernels.to_host(rule.feedback[k]), forward_path(network, k).T
                )
        return metrics

    def state_dict(self) -> dict[str, np.ndarray]:
        """The signs of the last measurement (``flip/*`` compares with them)."""
        if self._signs is None:
            return {}
        state = {f"signs.{k}": s for k, s in enumerate(self._signs) if s is not None}
        return {**state, "blocks": np.array(len(self._signs))}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if "blocks" not in state:
            self._signs = None
            return
        self._signs = [state.get(f"signs.{k}") for k in range(int(state["blocks"]))]

    def _flips(self, network: Network) -> dict[str, float | None]:
        host = network.kernels.to_host
        signs = [
            host(sign(b.weight_layer.weight.value, kernels=b.kernels))
            if b.weight_layer.quantizer.binary
            else None
            for b in network.hidden_blocks
        ]
        flips: dict[str, float | None] = {}
        if self._signs is not None:
            for k, (before, now) in enumerate(zip(self._signs, signs, strict=True)):
                if before is not None and now is not None:
                    flips[f"flip/{k}"] = float(np.mean(before != now))
        self._signs = signs
        return flips
