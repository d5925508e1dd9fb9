"""binary_nn: train real or binary neural networks with backpropagation, DFA and DRTP.

The package is layered; each tier imports only the ones before it in this list (the modules
at the package top — errors, registry, files, cli, options, version — come first):

- ``binary_nn.nn``: layers, activations, weight quantizers, fused kernels, blocks, networks;
- ``binary_nn.data``: datasets with their image shape, downloads, verification;
- ``binary_nn.learning``: learning rules, the loss, the optimizer, the training step, costs;
- ``binary_nn.deploy``: trained networks bit-packed for inference, and C;
- ``binary_nn.run``: one run's config, build, loop, probes, metrics, checkpoints, trackers;
- ``binary_nn.experiments``: campaigns of runs, sweeps, reports, the runs listing.

The command-line entry points (``python -m binary_nn.train``, ``repeat``, ``sweep``, ...) are
thin modules at the package top.
"""

from .data import Dataset, load_dataset
from .learning import DFA, DRTP, GD, RULES, SGD, LearningRule, MSELoss, train_step
from .nn import Network, classifier, mlp
from .run.config import TrainConfig
from .version import __version__

#: the run-level API, imported when first used (it brings the whole run tier); named apart
#: from the subpackage ``run`` and the command modules ``train``, ``evaluate``, ``predict``
_LAZY = {
    "train_run": ("binary_nn.run.loop", "run"),
    "load_network": ("binary_nn.run.checkpoint", "network_from_checkpoint"),
    "score_checkpoint": ("binary_nn.evaluate", "evaluate"),
    "predict_classes": ("binary_nn.run.probes", "predict"),
    "run_dataset": ("binary_nn.run.build", "run_dataset"),
    "device_learner": ("binary_nn.device", "learner_from_checkpoint"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'binary_nn' has no attribute {name!r}")


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
    "device_learner",
    "load_dataset",
    "load_network",
    "mlp",
    "predict_classes",
    "run_dataset",
    "score_checkpoint",
    "train_run",
    "train_step",
]
