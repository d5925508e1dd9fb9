"""What a run reports: classification scores, the HSIC information plane, batch statistics."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from array_api_compat import array_namespace

from ..nn.kernels import Array, ArrayStatistics
from ..nn.layers import Parameter
from ..nn.network import Network
from ..nn.residual import Unit


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, prefix: str) -> dict[str, float]:
    """``{prefix}/accuracy``, ``/precision`` and ``/f1`` (macro averages over the classes)."""
    from sklearn.metrics import precision_recall_fscore_support

    # like sklearn's default: averaged over the classes that occur in y_true or y_pred
    precision, _, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    return {
        f"{prefix}/accuracy": float(np.mean(y_true == y_pred)),
        f"{prefix}/precision": float(precision),
        f"{prefix}/f1": float(f1),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """The confusion matrix (rows: true class, columns: predicted) as nested lists."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).tolist()


def _centred_unit_rows(x: Array) -> Array:
    xp = array_namespace(x)
    x = xp.reshape(xp.astype(x, xp.float64), (x.shape[0], -1))
    norms = xp.sqrt(xp.sum(x * x, axis=1, keepdims=True))
    x = x / xp.where(norms > 0, norms, xp.ones_like(norms))
    return x - xp.mean(x, axis=0)


def _sum_of_squares(x: Array) -> float:
    return float(array_namespace(x).sum(x * x))


class CosineKernel:
    """A representation as its cosine-similarity kernel, ready to be aligned with others.

    With ``K = Xn Xn^T`` for row-normalised ``Xn``, centring ``K`` equals centring the columns
    of ``Xn``, so ``HSIC(K, L) = ||Xc^T Yc||_F^2``. The centred features and ``HSIC(K, K)``
    are computed once here, so a representation compared with several others (the input with
    every hidden layer, a hidden layer with the input and the targets) costs them once. The
    arithmetic runs where ``x`` is (a GPU's arrays stay there); only the numbers come back.
    """

    def __init__(self, x: Array) -> None:
        self.centred = _centred_unit_rows(x)
        c = self.centred
        # unit rows sum to n in squares; what centring leaves below 1e-12 of that is rounding
        self.constant = _sum_of_squares(c) < 1e-12 * c.shape[0]
        self.self_hsic = 0.0 if self.constant else _sum_of_squares(c.T @ c)

    def alignment(self, other: CosineKernel) -> float:
        """``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` (centered kernel alignment); 0 when
        either kernel is constant."""
        if self.constant or other.constant:
            return 0.0
        cross = _sum_of_squares(self.centred.T @ other.centred)
        norm = float(np.sqrt(self.self_hsic * other.self_hsic))
        return cross / norm if norm > 0 else 0.0


def cosine_cka(x: Array, y: Array) -> float:
    """Normalised HSIC of ``x`` and ``y`` (rows are examples) with cosine-similarity kernels."""
    return CosineKernel(x).alignment(CosineKernel(y))


def information_plane(network: Network, x: Array, targets: np.ndarray) -> dict[str, float]:
    """``hsic/xz/{k}`` and ``hsic/zy/{k}`` for the output ``Z`` of every block ``k``: each
    hidden block, and the output block last (``k`` = the number of hidden blocks), computed
    on the network's device.

    Batch norm runs in evaluation mode (running statistics), so the probe changes nothing.
    """
    out: dict[str, float] = {}
    inputs, labels = CosineKernel(x), CosineKernel(network.kernels.asarray(targets))
    for k, z in enumerate(network.each_block_output(x)):  # one block's output at a time
        hidden = CosineKernel(z)
        out[f"hsic/xz/{k}"] = inputs.alignment(hidden)
        out[f"hsic/zy/{k}"] = hidden.alignment(labels)
    return out


class BatchStatistics:
    """Per-iteration statistics after a backward step, cheap enough to take every iteration.

    For every hidden block ``k``: ``batch/saturation/{k}`` (fraction of pre-activations with
    ``|a|`` above the activation's threshold: 2 for tanh, 1 for the sign family) and
    ``batch/preact_var/{k}``; for every block's weights ``k`` (the output block last):
    ``batch/grad_var/{k}`` and ``batch/grad_absmax/{k}`` of its weight gradient.

    ``summaries`` may bring the gradients' summaries from
    ``binary_nn.learning.optim.Optimizer.step`` (``summarize_grads=True``), which takes them in
    the same pass as the update; the gradients are summarised here otherwise.
    """

    def __call__(
        self, network: Network, summaries: Mapping[Parameter, ArrayStatistics] | None = None
    ) -> dict[str, float]:
        stats: dict[str, float] = {}
        for k, block in enumerate(network.blocks):
            hidden = k < len(network.blocks) - 1
            stats.update(self.of_block(k, block, summaries, hidden))
        return stats

    def of_block(
        self,
        k: int,
        block: Unit,
        summaries: Mapping[Parameter, ArrayStatistics] | None,
        hidden: bool,
    ) -> dict[str, float]:
        """Block ``k``'s statistics (its pre-activations' only for a hidden block)."""
        stats: dict[str, float] = {}
        if hidden:
            act = block.activation
            assert act.input is not None, "statistics need the pre-activations kept"
            summary = act.kernels.summarize(act.input, act.activation.saturation_threshold)
            stats[f"batch/saturation/{k}"] = summary.fraction_above
            stats[f"batch/preact_var/{k}"] = summary.variance
        weight = block.weight_layer.weight
        summary = (summaries or {}).get(weight) or block.weight_layer.kernels.summarize(weight.grad)
        stats[f"batch/grad_var/{k}"] = summary.variance
        stats[f"batch/grad_absmax/{k}"] = summary.abs_max
        return stats
