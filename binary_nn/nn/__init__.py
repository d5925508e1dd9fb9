"""The network tier: layers, activations, weight quantizers, fused kernels, blocks, networks."""

from .activations import ACTIVATIONS, Activation
from .layers import (
    ActivationLayer,
    BatchNorm,
    Flatten,
    Layer,
    Linear,
    Parameter,
    Scaler,
    WeightLayer,
)
from .network import Block, Network, mlp
from .quantizers import QUANTIZERS, WEIGHT_STES, SignQuantizer, WeightQuantizer, sign

__all__ = [
    "ACTIVATIONS",
    "QUANTIZERS",
    "WEIGHT_STES",
    "Activation",
    "ActivationLayer",
    "BatchNorm",
    "Block",
    "Flatten",
    "Layer",
    "Linear",
    "Network",
    "Parameter",
    "Scaler",
    "SignQuantizer",
    "WeightLayer",
    "WeightQuantizer",
    "mlp",
    "sign",
]
