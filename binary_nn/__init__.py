"""binary_nn: train (binary) neural networks with backpropagation, DFA and DRTP.

The package is layered; each tier imports only the ones above it in this list:

- :mod:`binary_nn.nn`: layers, activations, weight quantizers, fused kernels, blocks, networks;
- :mod:`binary_nn.learning`: learning rules, the loss, the optimizer, the training step;
- :mod:`binary_nn.data`: datasets with their image shape, downloads, verification;
- :mod:`binary_nn.run`: one run's config, loop, probes, metrics, checkpoints, tracking;
- :mod:`binary_nn.experiments`: repeated runs, sweeps, reports.
"""

__version__ = "0.1.0"

from .data import Dataset, load_dataset
from .learning import DFA, DRTP, GD, RULES, SGD, LearningRule, MSELoss, train_step
from .nn import Network, classifier, mlp
from .run.config import TrainConfig

__all__ = [
    "DFA",
    "DRTP",
    "GD",
    "RULES",
    "SGD",
    "Dataset",
    "LearningRule",
    "MSELoss",
    "Network",
    "TrainConfig",
    "__version__",
    "classifier",
    "load_dataset",
    "mlp",
    "train_step",
]
