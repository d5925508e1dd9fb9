"""Learning rules: how the error reaches each hidden layer.

A rule works on a model it does not own, like a ``torch.optim`` optimizer: it fills the
parameters' ``grad`` arrays from the output error; an :class:`~binary_nn.optim.SGD` then
applies them. In every rule the output layer gets its true gradient. Adding a rule touches no
layer code: subclass :class:`LearningRule` (or :class:`DirectFeedbackRule` for a rule that
projects a signal straight to every hidden layer) and register it in :data:`RULES`.
"""

from __future__ import annotations

import numpy as np

from .model import MLP
from .registry import Registry


class LearningRule:
    """Base class. ``feedback`` holds the rule's fixed random matrices, one per hidden layer."""

    name = ""

    def __init__(self, model: MLP, rng: np.random.Generator | None = None) -> None:
        self.model = model
        self.feedback: list[np.ndarray] = []

    def backward(self, error: np.ndarray, target01: np.ndarray) -> None:
        """Fill every parameter's gradient.

        Parameters
        ----------
        error : ndarray (batch, n_classes)
            ``dLoss/dy_pred`` at the output, ``2 * (y_pred - y)`` summed over the batch.
        target01 : ndarray (batch, n_classes)
            The one-hot target in {0, 1}.
        """
        raise NotImplementedError


class GD(LearningRule):
    """Backpropagation: the true gradient, chained down through every layer."""

    name = "GD"

    def backward(self, error: np.ndarray, target01: np.ndarray) -> None:
        grad = error
        blocks = self.model.blocks
        for index in range(len(blocks) - 1, -1, -1):
            grad = blocks[index].backward(grad, need_input_grad=index > 0)


class DirectFeedbackRule(LearningRule):
    """A rule that sends ``signal @ F_l`` to hidden layer ``l`` through fixed ``F_l ~ U(-1, 1)``.

    Each hidden layer then takes one local backward step (activation derivative, batch norm,
    weight gradient); nothing is propagated from one hidden layer to the next.
    """

    def __init__(self, model: MLP, rng: np.random.Generator | None = None) -> None:
        super().__init__(model)
        rng = rng if rng is not None else np.random.default_rng()
        self.feedback = [
            rng.uniform(-1, 1, size=(model.n_classes, size)).astype(model.dtype)
            for size in model.hidden_sizes
        ]

    def signal(self, error: np.ndarray, target01: np.ndarray) -> np.ndarray:
        """What is projected to the hidden layers."""
        raise NotImplementedError

    def backward(self, error: np.ndarray, target01: np.ndarray) -> None:
        self.model.output_block.backward(error, need_input_grad=False)
        signal = self.signal(error, target01)
        for block, matrix in zip(self.model.hidden_blocks, self.feedback, strict=True):
            block.backward(signal @ matrix, need_input_grad=False)


class DFA(DirectFeedbackRule):
    """Direct feedback alignment: the output error ``e``, projected by ``B_l``."""

    name = "DFA"

    def signal(self, error: np.ndarray, target01: np.ndarray) -> np.ndarray:
        return error


class DRTP(DirectFeedbackRule):
    """Direct random target projection: the target alone, ``y01 @ P_l`` (no error needed)."""

    name = "DRTP"

    def signal(self, error: np.ndarray, target01: np.ndarray) -> np.ndarray:
        return target01


RULES: Registry[type[LearningRule]] = Registry("learning rule", "-m/--method")
RULES.add("GD", GD, "BP")
RULES.add("DFA", DFA)
RULES.add("DRTP", DRTP)
