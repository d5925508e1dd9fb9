"""The deploy tier: trained networks bit-packed for inference, the packed engine, C export."""

from .c_code import CModel, c_model
from .engine import Engine, predict
from .packed import PackedLayer, PackedModel, load_packed, pack_network

__all__ = [
    "CModel",
    "Engine",
    "PackedLayer",
    "PackedModel",
    "c_model",
    "load_packed",
    "pack_network",
    "predict",
]
