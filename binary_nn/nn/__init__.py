"""The network tier: layers, activations, weight quantizers, fused kernels, blocks, residual
units, networks."""

from .activations import ACTIVATIONS, Activation
from .block import Block, Path
from .conv import AvgPool2d, Conv2d, GlobalAvgPool, MaxPool2d
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
from .network import Network, classifier, mlp
from .quantizers import QUANTIZERS, WEIGHT_STES, SignQuantizer, WeightQuantizer, sign
from .residual import Residual, Unit

__all__ = [
    "ACTIVATIONS",
    "QUANTIZERS",
    "WEIGHT_STES",
    "Activation",
    "ActivationLayer",
    "AvgPool2d",
    "BatchNorm",
    "Block",
    "Conv2d",
    "Flatten",
    "GlobalAvgPool",
    "Layer",
    "Linear",
    "MaxPool2d",
    "Network",
    "Parameter",
    "Path",
    "Residual",
    "Scaler",
    "SignQuantizer",
    "Unit",
    "WeightLayer",
    "WeightQuantizer",
    "classifier",
    "mlp",
    "sign",
]
