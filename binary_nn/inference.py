"""The packed inference engine (see ``binary_nn.deploy.engine``)."""

from .deploy.engine import Engine, predict
from .deploy.packed import PackedModel, load_packed

__all__ = ["Engine", "PackedModel", "load_packed", "predict"]
