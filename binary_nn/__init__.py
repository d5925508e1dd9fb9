"""binary_nn: train real or binary neural networks with backpropagation, DFA and DRTP.

The package is layered; each tier imports only the ones before it in this list (the modules
at the package top — errors, registry, files, cli, options, version — come first):

- :mod:`binary_nn.nn`: layers, activations, weight quantizers, fused kernels, blocks, networks;
- :mod:`binary_nn.data`: datasets with their image shape, downloads, verification;
- :mod:`binary_nn.learning`: learning rules, the loss, the optimizer, the training step, costs;
- :mod:`binary_nn.deploy`: trained networks bit-packed for inference, and C;
- :mod:`binary_nn.run`: one run's config, build, loop, probes, metrics, checkpoints, trackers;
- :mod:`binary_nn.experiments`: campaigns of runs, sweeps, reports, the runs listing.

The command-line entry points (``python -m binary_nn.train``, ``repeat``, ``sweep``, ...) are
thin modules at the package top.
"""

from .data import Dataset, load_dataset
from .learning import DFA, DRTP, GD, RULES, SGD, LearningRule, MSELoss, train_step
from .nn import Network, classifier, mlp
from .run.config import TrainConfig
from .version import __version__

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
