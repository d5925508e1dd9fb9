"""The network a configuration describes, for examples of a given shape."""

from __future__ import annotations

import numpy as np

from ..nn.kernels import KernelBackend
from ..nn.network import Network, classifier
from .config import TrainConfig


def build_network(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    n_classes: int,
    rng: np.random.Generator | None = None,
    *,
    shape_only: bool = False,
    kernels: KernelBackend | None = None,
) -> Network:
    """The network the model options of ``config`` describe, for examples of ``input_shape``
    (``shape_only``: no memory, for sizes and costs; see
    ``classifier``), computing with ``kernels``."""
    return classifier(
        input_shape,
        config.hidden,
        n_classes,
        conv=config.conv,
        hidden_activation=config.hidden_act,
        last_activation=config.last_act,
        batch_norm=config.bn,
        scale=config.sn,
        binarize=config.binarize,
        binarize_last=config.binarize_last,
        binarize_first=config.binarize_first,
        weight_ste=config.weight_ste,
        rsign=config.rsign,
        rprelu=config.rprelu,
        shortcut=config.shortcut,
        init=config.init,
        dtype=np.dtype(config.dtype),
        rng=rng,
        shape_only=shape_only,
        kernels=kernels,
    )
