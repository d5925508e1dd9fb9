"""Learning rules: how the error reaches each hidden block.

A rule works on a network it does not own, like a ``torch.optim`` optimizer: it fills the
parameters' ``grad`` arrays from the output error; an :class:`~binary_nn.learning.optim.Optimizer`
then applies them. In every rule the output block gets its true gradient. Adding a rule touches
no layer code: subclass :class:`LearningRule` (or :class:`DirectFeedbackRule` for a rule that
projects a signal straight to every hidden block) and register it in :data:`RULES`.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..nn.kernels import Array
from ..nn.network import Network
from ..registry import Registry


class LearningRule:
    """Base class. ``feedback`` holds the rule's fixed random matrices, one per hidden block.

    ``streaming`` rules update each hidden block as soon as its forward is done (see
    :func:`binary_nn.learning.step.train_step`); only a rule whose hidden signal needs no
    error (``supports_streaming``) can.
    """

    name = ""
    supports_streaming = False
    streaming = False

    def __init__(
        self, network: Network, rng: np.random.Generator | None = None, streaming: bool = False
    ) -> None:
        if streaming and not self.supports_streaming:
            raise ConfigError(
                f"--streaming needs a rule whose updates need no output error (DRTP), "
                f"not {self.name}"
            )
        self.network = network
        self.streaming = streaming
        self.feedback: list[Array] = []

    def backward(self, error: Array, target01: Array, keep_signals: bool = True) -> list[Array]:
        """Fill every parameter's gradient; return the signal each hidden block received.

        Parameters
        ----------
        error : ndarray (batch, n_classes)
            ``dLoss/dy_pred`` at the output, ``2 * (y_pred - y)`` summed over the batch.
        target01 : ndarray (batch, n_classes)
            The one-hot target in {0, 1}.
        keep_signals : bool
            False lets the blocks compute in the signals' memory and lets each go once used
            (the training step's case); the list returned is then empty for DFA and DRTP.

        Returns
        -------
        list of ndarray
            For each hidden block, what reached its output (batch x its output shape): the
            backpropagated gradient under GD, the projected signal under DFA and DRTP.
        """
        raise NotImplementedError

    @classmethod
    def backward_macs(cls, network: Network) -> dict[str, int]:
        """Multiply-adds per example of the rule's backward work on ``network``, by kind:
        ``weight_grads``, ``input_grads`` (chained), ``projections`` (feedback)."""
        raise NotImplementedError

    @classmethod
    def feedback_values(cls, network: Network) -> int:
        """Values of the rule's fixed feedback matrices."""
        return 0

    def named_state(self) -> dict[str, Array]:
        """``feedback.{k}`` -> the matrix of hidden block ``k`` (live references)."""
        return {f"feedback.{k}": matrix for k, matrix in enumerate(self.feedback)}

    def load_named_state(self, state: dict[str, Array]) -> None:
        own = self.named_state()
        if set(state) != set(own):
            raise ConfigError(f"{self.name} state needs {sorted(own)}, got {sorted(state)}")
        for key, matrix in own.items():
            matrix[...] = self.network.kernels.asarray(state[key])


class GD(LearningRule):
    """Backpropagation: the true gradient, chained down through every block."""

    name = "GD"

    @classmethod
    def backward_macs(cls, network: Network) -> dict[str, int]:
        # every block's weight gradient; the input gradient of every block but the first
        macs = [block.forward_macs() for block in network.blocks]
        return {"weight_grads": sum(macs), "input_grads": sum(macs[1:]), "projections": 0}

    def backward(self, error: Array, target01: Array, keep_signals: bool = True) -> list[Array]:
        blocks = self.network.blocks
        signals: list[Array] = [error]
        for index in range(len(blocks) - 1, -1, -1):
            grad = blocks[index].backward(signals[0], need_input_grad=index > 0)
            if grad is not None:
                signals.insert(0, grad)
        return signals[:-1]


class DirectFeedbackRule(LearningRule):
    """A rule that sends ``signal @ F_k`` to hidden block ``k`` through fixed ``F_k ~ U(-1, 1)``
    of shape (n_classes, the block's output size), reshaped to the block's output shape.

    Each hidden block then takes one local backward step (activation derivative, batch norm,
    weight gradient); nothing is propagated from one hidden block to the next.
    """

    def __init__(
        self, network: Network, rng: np.random.Generator | None = None, streaming: bool = False
    ) -> None:
        super().__init__(network, rng, streaming)
        rng = rng if rng is not None else np.random.default_rng()
        # drawn on the host, so a seed gives the same matrices on every backend
        self.feedback = [
            network.kernels.asarray(
                rng.uniform(-1, 1, size=(network.n_classes, block.output_size)).astype(
                    network.dtype
                )
            )
            for block in network.hidden_blocks
        ]

    #: whether projecting the signal is a product (DFA's error) or a row lookup (a one-hot
    #: target selects one row of each matrix: DRTP)
    projection_is_lookup = False

    @classmethod
    def backward_macs(cls, network: Network) -> dict[str, int]:
        weight_grads = sum(block.forward_macs() for block in network.blocks)
        projections = 0 if cls.projection_is_lookup else cls.feedback_values(network)
        return {"weight_grads": weight_grads, "input_grads": 0, "projections": projections}

    @classmethod
    def feedback_values(cls, network: Network) -> int:
        return network.n_classes * sum(block.output_size for block in network.hidden_blocks)

    def signal(self, error: Array, target01: Array) -> Array:
        """What is projected to the hidden blocks."""
        raise NotImplementedError

    def project(self, signal: Array, k: int, features: slice | None = None) -> Array:
        """``signal @ F_k``, shaped as hidden block ``k``'s output; with ``features`` (a slice
        of the output's last axis), only those features' part of it."""
        xp = self.network.kernels.xp
        matrix, shape = self.feedback[k], self.network.hidden_blocks[k].output_shape
        rows = matrix.shape[0]
        if features is not None:  # the matrix's columns of those features (a small copy)
            part = xp.reshape(matrix, (rows, *shape))[..., features]
            matrix, shape = xp.reshape(part, (rows, -1)), tuple(part.shape[1:])
        if self.projection_is_lookup:  # one-hot rows: y01 @ P is P's row of each label
            projected = xp.take(matrix, xp.argmax(signal, axis=1), axis=0)
        else:
            projected = signal @ matrix
        return xp.reshape(projected, (signal.shape[0], *shape))

    def backward(self, error: Array, target01: Array, keep_signals: bool = True) -> list[Array]:
        self.network.output_block.backward(error, need_input_grad=False)
        signal = self.signal(error, target01)
        signals = []
        for k, block in enumerate(self.network.hidden_blocks):
            projected = self.project(signal, k)  # the rule's own array
            block.backward(projected, need_input_grad=False, overwrite=not keep_signals)
            if keep_signals:  # else let each go at once: they would add up to all activations
                signals.append(projected)
            del projected  # before the next one is made
        return signals


class DFA(DirectFeedbackRule):
    """Direct feedback alignment: the output error ``e``, projected by ``B_k``."""

    name = "DFA"

    def signal(self, error: Array, target01: Array) -> Array:
        return error


class DRTP(DirectFeedbackRule):
    """Direct random target projection: the target alone, ``y01 @ P_k`` (no error needed).

    ``y01`` is one-hot, so the projection is a row lookup, ``P_k[label]``: no product (and the
    same numbers as the product, exactly).
    """

    name = "DRTP"
    projection_is_lookup = True
    supports_streaming = True

    def signal(self, error: Array, target01: Array) -> Array:
        return target01


RULES: Registry[type[LearningRule]] = Registry("learning rule", "-m/--method")
RULES.add("GD", GD, "BP")
RULES.add("DFA", DFA)
RULES.add("DRTP", DRTP)
