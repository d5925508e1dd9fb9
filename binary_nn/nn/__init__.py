"""The network tier: layers, activations, weight quantizers, fused kernels, blocks, networks."""

from .activations import ACTIVATIONS, Activation
from .conv import Conv2d, MaxPool2d
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
from .network import Block, Network, classifier, mlp
from .quantizers import QUANTIZERS, WEIGHT_STES, SignQuantizer, WeightQuantizer, sign

__all__ = [
    "ACTIVATIONS",
    "QUANTIZERS",
    "WEIGHT_STES",
    "Activation",
    "ActivationLayer",
    "BatchNorm",
    "Block",
    "Conv2d",
    "Flatten",
    "Layer",
    "Linear",
    "MaxPool2d",
    "Network",
    "Parameter",
    "Scaler",
    "SignQuantizer",
    "WeightLayer",
    "WeightQuantizer",
    "classifier",
    "mlp",
    "sign",
]
