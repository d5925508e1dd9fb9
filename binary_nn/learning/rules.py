"""Learning rules: how the error reaches each hidden block.

Two families. *Chained* rules send the error down block by block, each block's weight layer
carrying it to the one below through a matrix the rule chooses (its ``error_weight``, the
seam of the error path): backpropagation the forward's weights (``GD``), feedback
alignment fixed random ones (``FA``), sign symmetry the signs of the forward's weights
with unit, batch-wise random or fixed random magnitudes (``USF``, ``BRSF``,
``FRSF``). *Direct* rules project a signal straight to every hidden block through fixed
random matrices (``DFA``, ``DRTP``). ``OutputOnly`` trains the output block
alone: the control every rule must beat.

A rule works on a network it does not own, like a ``torch.optim`` optimizer: it fills the
parameters' ``grad`` arrays from the output error; an ``Optimizer``
then applies them. In every rule the output block gets its true gradient. Adding a rule touches
no layer code: subclass ``LearningRule`` (or ``DirectFeedbackRule`` for a rule that
projects a signal straight to every hidden block) and register it in ``RULES``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..nn.activations import sign
from ..nn.kernels import Array
from ..nn.network import Network
from ..registry import Registry


class LearningRule:
    """Base class. ``feedback`` holds the rule's fixed random matrices, one per hidden block.

    ``streaming`` rules update each hidden block as soon as its forward is done (see
    ``binary_nn.learning.step.train_step``); only a rule whose hidden signal needs no
    error (``supports_streaming``) can.
    """

    name = ""
    supports_streaming = False
    streaming = False
    #: whether the rule draws fixed random feedback matrices (``--feedback`` chooses how)
    draws_feedback = False
    #: whether the rule projects the output error straight to each hidden block, so that the
    #: alignment probe compares its matrix with the forward path (DFA)
    projects_error = False
    #: the rule's place in the report's tables (the published layout: DFA, DRTP, GD)
    table_order = 9

    def __init__(
        self,
        network: Network,
        rng: np.random.Generator | None = None,
        streaming: bool = False,
        feedback: str = "uniform",
        feedback_positions: str = "each",
    ) -> None:
        if streaming and not self.supports_streaming:
            raise ConfigError(
                f"--streaming needs a rule whose updates need no output error (DRTP), "
                f"not {self.name}"
            )
        if feedback not in FEEDBACK:
            raise ConfigError(f"--feedback must be one of {', '.join(FEEDBACK)}, got {feedback!r}")
        if feedback_positions not in FEEDBACK_POSITIONS:
            raise ConfigError(
                f"--feedback-positions must be one of {', '.join(FEEDBACK_POSITIONS)}, got "
                f"{feedback_positions!r}"
            )
        self.network = network
        self.streaming = streaming
        self.feedback_kind = feedback
        self.feedback_positions = feedback_positions
        self.feedback: list[Array] = []
        self.setup(rng if rng is not None else np.random.default_rng())

    def setup(self, rng: np.random.Generator) -> None:
        """Draw what the rule keeps (its feedback matrices), from ``rng``: a rule's one hook
        for its construction."""

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


def draw_feedback(
    rng: np.random.Generator, shape: tuple[int, ...], kind: str, dtype: Any
) -> np.ndarray:
    """A fixed feedback matrix: ``uniform`` U(-1, 1) (the published draw), ``gaussian``
    N(0, 1/3) (the same variance), ``binary`` -1 or +1, ``ternary`` -1, 0 or +1 (each a
    third). Binary and ternary entries are kept as they are, not rescaled, so that the backward
    path is 1- or 2-bit; their signals are sqrt(3) and sqrt(2) times larger than uniform's
    (variance 1 and 2/3 against 1/3), which the learning rate absorbs."""
    if kind == "uniform":
        values = rng.uniform(-1, 1, size=shape)
    elif kind == "gaussian":
        values = rng.normal(0.0, np.sqrt(1 / 3), size=shape)
    elif kind == "binary":
        values = rng.choice(np.array([-1.0, 1.0]), size=shape)
    else:
        values = rng.choice(np.array([-1.0, 0.0, 1.0]), size=shape)
    return values.astype(dtype)


#: the distributions of fixed feedback matrices (``--feedback``)
FEEDBACK = ("uniform", "gaussian", "binary", "ternary")
#: how a direct rule's matrix covers an image-shaped block output (``--feedback-positions``):
#: ``each`` value its own column (the published draw), or one column per channel ``shared``
#: by every position
FEEDBACK_POSITIONS = ("each", "shared")


class GD(LearningRule):
    """Backpropagation: the true gradient, chained down through every block.

    The chain is shared by the rules that only change the matrix a block's weight layer sends
    the error down with (``error_weights``): each sets it, then the same chain runs.
    """

    name = "GD"
    table_order = 2

    @classmethod
    def backward_macs(cls, network: Network) -> dict[str, int]:
        # every block's weight gradient; the input gradient of every block but the first
        macs = [block.forward_macs() for block in network.blocks]
        return {"weight_grads": sum(macs), "input_grads": sum(macs[1:]), "projections": 0}

    def error_weights(self) -> list[Array | None]:
        """The matrix each of ``Network.error_layers`` sends the error down with (None: its
        forward weights); the first unit's send nothing down."""
        return [None] * len(self.network.error_layers())

    def backward(self, error: Array, target01: Array, keep_signals: bool = True) -> list[Array]:
        blocks = self.network.blocks
        for layer, matrix in zip(self.network.error_layers(), self.error_weights(), strict=True):
            layer.error_weight = matrix
        signals: list[Array] = [error]
        for index in range(len(blocks) - 1, -1, -1):
            grad = blocks[index].backward(signals[0], need_input_grad=index > 0)
            if grad is not None:
                signals.insert(0, grad)
        return signals[:-1]


def _weight_scale(layer: Any) -> float:
    """The magnitude of the weights a layer's forward uses (1 for binary ones): what a
    feedback matrix that stands in for them is scaled to."""
    weights = np.abs(np.asarray(layer.kernels.to_host(layer.effective_weight())))
    return float(weights.max(initial=0.0)) or 1.0


class FA(GD):
    """Feedback alignment (Lillicrap et al. 2016): the error chained down through a fixed
    random matrix ``B_l`` in place of each block's weights, drawn once (``--feedback``) and
    scaled to the magnitude of the weights it stands in for (their largest absolute value at
    the start: 1 for binary weights, ``--init`` for real ones)."""

    name = "FA"
    draws_feedback = True
    table_order = 3

    def setup(self, rng: np.random.Generator) -> None:
        network = self.network
        self.feedback = [
            network.kernels.asarray(
                draw_feedback(rng, tuple(layer.weight.value.shape), self.feedback_kind,
                              network.dtype) * network.dtype.type(_weight_scale(layer))
            )
            for layer in network.error_layers()
        ]  # fmt: skip

    @classmethod
    def feedback_values(cls, network: Network) -> int:
        return sum(layer.weight.size for layer in network.error_layers())

    def error_weights(self) -> list[Array | None]:
        return list(self.feedback)


class SignSymmetry(GD):
    """Sign symmetry (the family BioTorch names uSF, brSF, frSF): the error chained down
    through ``sign(W_l) * M_l``, the signs of the weights the forward uses and a magnitude
    ``M_l`` — see the subclasses — in the weights' scale (1 for binary weights). On a layer
    of binary weights ``sign(W_b) = W_b``: uSF there is backpropagation exactly."""

    table_order = 4

    def setup(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.scales = [_weight_scale(layer) for layer in self.network.error_layers()]

    def magnitudes(self, k: int, shape: tuple[int, ...]) -> Any:
        """``M_k`` for the weights of ``Network.error_layers()[k]``."""
        raise NotImplementedError

    def error_weights(self) -> list[Array | None]:
        kernels = self.network.kernels
        matrices: list[Array | None] = []
        for k, layer in enumerate(self.network.error_layers()):
            weights = layer.effective_weight()
            signs = sign(weights, kernels=kernels)  # +1 if v > 0 else -1, in the weights' dtype
            matrices.append(signs * self.magnitudes(k, tuple(weights.shape)))
        return matrices


class USF(SignSymmetry):
    """Uniform sign-concordant feedback: ``M`` is the weights' scale (``sign(W)`` itself on
    binary weights, where it is backpropagation)."""

    name = "uSF"

    def magnitudes(self, k: int, shape: tuple[int, ...]) -> Any:
        return self.scales[k]


class BRSF(SignSymmetry):
    """Batch-wise random magnitude sign-concordant feedback: ``M ~ U(0, 1)`` times the
    weights' scale, drawn again at every step (from the rule's own generator)."""

    name = "brSF"
    #: the generator's state in checkpoints: a resumed run draws what the uninterrupted one did
    STATE_KEY = "rule.generator"

    def magnitudes(self, k: int, shape: tuple[int, ...]) -> Any:
        drawn = self.rng.uniform(0, 1, size=shape) * self.scales[k]
        return self.network.kernels.asarray(drawn.astype(self.network.dtype))

    def named_state(self) -> dict[str, Array]:
        state = self.rng.bit_generator.state
        if state.get("bit_generator") != "PCG64":
            raise ConfigError("brSF keeps its generator's state for PCG64 generators only")
        words = [state["state"]["state"], state["state"]["inc"]]
        halves = [w >> 64 for w in words] + [w & (2**64 - 1) for w in words]
        extra = [state["has_uint32"], state["uinteger"]]
        return {self.STATE_KEY: np.array([*halves, *extra], dtype=np.uint64)}

    def load_named_state(self, state: dict[str, Array]) -> None:
        if set(state) != {self.STATE_KEY}:
            raise ConfigError(f"brSF state needs {self.STATE_KEY!r}, got {sorted(state)}")
        v = [int(n) for n in np.asarray(state[self.STATE_KEY])]
        if len(v) != 6:
            raise ConfigError(f"brSF's {self.STATE_KEY} holds {len(v)} values, not 6")
        self.rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": (v[0] << 64) | v[2], "inc": (v[1] << 64) | v[3]},
            "has_uint32": v[4],
            "uinteger": v[5],
        }


class FRSF(SignSymmetry):
    """Fixed random magnitude sign-concordant feedback: ``M ~ U(0, 1)`` times the weights'
    scale, drawn once (kept in checkpoints as the rule's feedback)."""

    name = "frSF"

    def setup(self, rng: np.random.Generator) -> None:
        super().setup(rng)
        network = self.network
        self.feedback = [
            network.kernels.asarray(
                (rng.uniform(0, 1, size=tuple(layer.weight.value.shape))
                 * scale).astype(network.dtype)
            )
            for layer, scale in zip(network.error_layers(), self.scales, strict=True)
        ]  # fmt: skip

    @classmethod
    def feedback_values(cls, network: Network) -> int:
        return sum(layer.weight.size for layer in network.error_layers())

    def magnitudes(self, k: int, shape: tuple[int, ...]) -> Any:
        return self.feedback[k]


class OutputOnly(LearningRule):
    """The control: only the output block learns (its true gradient); the hidden blocks keep
    their random initial weights, a fixed random feature map. Every rule must beat it."""

    name = "output-only"
    table_order = 5

    @classmethod
    def backward_macs(cls, network: Network) -> dict[str, int]:
        return {"weight_grads": network.output_block.forward_macs(), "input_grads": 0,
                "projections": 0}  # fmt: skip

    def backward(self, error: Array, target01: Array, keep_signals: bool = True) -> list[Array]:
        self.network.output_block.backward(error, need_input_grad=False)
        for block in self.network.hidden_blocks:  # no learning: a zero gradient
            for parameter in block.parameters():
                parameter.grad[...] = 0
        if not keep_signals:
            return []
        xp, n = self.network.kernels.xp, error.shape[0]
        return [
            xp.zeros((n, *b.output_shape), dtype=error.dtype) for b in self.network.hidden_blocks
        ]


class DirectFeedbackRule(LearningRule):
    """A rule that sends ``signal @ F_k`` to hidden block ``k`` through fixed ``F_k ~ U(-1, 1)``
    of shape (n_classes, the block's output size), reshaped to the block's output shape.

    Each hidden block then takes one local backward step (activation derivative, batch norm,
    weight gradient); nothing is propagated from one hidden block to the next.

    With ``feedback_positions="shared"`` an image-shaped output (a convolution's, a residual
    unit's) gets one column per channel, (n_classes, C), the same signal at every position:
    what the true gradient is where a global average pool follows, which no per-position
    matrix can align with.
    """

    draws_feedback = True

    def setup(self, rng: np.random.Generator) -> None:
        network = self.network
        # drawn on the host, so a seed gives the same matrices on every backend
        self.feedback = [
            network.kernels.asarray(
                draw_feedback(
                    rng, (network.n_classes, self._columns(block.output_shape)),
                    self.feedback_kind, network.dtype,
                )
            )
            for block in network.hidden_blocks
        ]  # fmt: skip

    def _columns(self, shape: tuple[int, ...]) -> int:
        """The columns of a hidden block's matrix: its output size, or its channels when
        they are shared by the positions."""
        return shape[-1] if self.feedback_positions == "shared" else math.prod(shape)

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
        rows, n = matrix.shape[0], signal.shape[0]
        covered = shape[-1:] if self.feedback_positions == "shared" else shape
        if features is not None:  # the matrix's columns of those features (a small copy)
            part = xp.reshape(matrix, (rows, *covered))[..., features]
            matrix = xp.reshape(part, (rows, -1))
            shape = (*shape[:-1], part.shape[-1])
        if self.projection_is_lookup:  # one-hot rows: y01 @ P is P's row of each label
            projected = xp.take(matrix, xp.argmax(signal, axis=1), axis=0)
        else:
            projected = signal @ matrix
        if len(covered) < len(shape):  # each channel's signal at every position: a new array
            spread = (n, *([1] * (len(shape) - 1)), shape[-1])
            at_every = xp.broadcast_to(xp.reshape(projected, spread), (n, *shape))
            return xp.asarray(at_every, copy=True)
        return xp.reshape(projected, (n, *shape))

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
    projects_error = True
    table_order = 0

    def signal(self, error: Array, target01: Array) -> Array:
        return error


class DRTP(DirectFeedbackRule):
    """Direct random target projection: the target alone, ``y01 @ P_k`` (no error needed).

    ``y01`` is one-hot, so the projection is a row lookup, ``P_k[label]``: no product (and the
    same numbers as the product, exactly).
    """

    name = "DRTP"
    table_order = 1
    projection_is_lookup = True
    supports_streaming = True

    def signal(self, error: Array, target01: Array) -> Array:
        return target01


#: every rule by its ``--method`` name; another package adds one through the entry-point group
#: ``binary_nn.rules`` (the entry's name is the ``--method`` name; its object a subclass of
#: ``LearningRule``)
RULES: Registry[type[LearningRule]] = Registry(
    "learning rule", "-m/--method", entry_points="binary_nn.rules",
    check=lambda obj: isinstance(obj, type) and issubclass(obj, LearningRule),
)  # fmt: skip
RULES.add("GD", GD, "BP")
RULES.add("DFA", DFA)
RULES.add("DRTP", DRTP)
RULES.add("FA", FA)
RULES.add("uSF", USF)
RULES.add("brSF", BRSF)
RULES.add("frSF", FRSF)
RULES.add("output-only", OutputOnly)
