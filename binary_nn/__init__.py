"""binary_nn: train (binary) feed-forward networks with backpropagation, DFA and DRTP."""

__version__ = "0.1.0"

from .config import TrainConfig
from .data import Dataset, load_dataset
from .model import MLP
from .optim import SGD
from .rules import DFA, DRTP, GD, RULES, LearningRule

__all__ = [
    "DFA",
    "DRTP",
    "GD",
    "MLP",
    "RULES",
    "SGD",
    "Dataset",
    "LearningRule",
    "TrainConfig",
    "__version__",
    "load_dataset",
]
