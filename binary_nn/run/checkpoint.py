"""Save and load a network's named state and its rule's feedback in one ``.npz``.

The keys are the state names the network and the rule give (:meth:`Network.named_state`,
:meth:`LearningRule.named_state`): ``linear.{k}.weight`` (in x out; k = 0 .. output block),
``batchnorm.{k}.gamma``, ``.beta``, ``.running_mean``, ``.running_var`` (k = hidden block),
``conv.{k}.weight`` (K x K x C_in x C_out), ``feedback.{k}`` (n_classes x the block's output
size) and ``config`` (JSON text: the run's options, and the network's ``input_shape`` and
``n_classes``, so that :func:`network_from_checkpoint` rebuilds it from the file alone).
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DATASETS
from ..data.dataset import PIXEL_DIVISOR
from ..errors import ConfigError
from ..files import write_bytes_atomic
from ..learning.optim import Optimizer
from ..learning.rules import RULES, LearningRule
from ..nn.network import Network
from .architecture import build_network
from .config import TrainConfig

#: a weight layer's key: its kind, its block
WEIGHT_KEY = re.compile(r"(linear|conv)\.([0-9]+)\.weight")


def _arrays(model: Network, rule: LearningRule | None) -> dict[str, np.ndarray]:
    """Every array a checkpoint holds, by key, as live references into the model and rule."""
    return {**model.named_state(), **(rule.named_state() if rule is not None else {})}


OPTIMIZER_PREFIX = "optimizer."


def save_checkpoint(
    path: str | Path,
    model: Network,
    rule: LearningRule | None,
    config: dict[str, Any],
    optimizer: Optimizer | None = None,
) -> None:
    """Write the checkpoint atomically (a temporary file renamed into place); with
    ``optimizer``, its state too (``optimizer.{parameter}.{state}``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    facts = {"input_shape": list(model.input_shape), "n_classes": model.n_classes}
    arrays: dict[str, Any] = {
        "config": np.array(json.dumps({**config, **facts})),
        **_arrays(model, rule),
    }
    if optimizer is not None:
        arrays.update({OPTIMIZER_PREFIX + k: v for k, v in optimizer.state_dict().items()})
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(
    path: str | Path,
    model: Network,
    rule: LearningRule | None,
    optimizer: Optimizer | None = None,
) -> dict[str, Any]:
    """Overwrite the model's (and rule's, and with ``optimizer`` the optimizer's) arrays with
    the checkpoint's; return its config. Without ``optimizer``, a stored optimizer state is
    not used (``--load`` starts a new optimization from the weights).

    Every key the model built from the flags needs must be present with the same shape, and
    the checkpoint may hold no other arrays; otherwise a :class:`ConfigError` names the key.
    """
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise ConfigError(f"--load: {path} is not a checkpoint .npz (write one with train --save)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise ConfigError(f"--load: checkpoint {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"--load: {path} is not a readable checkpoint .npz ({exc})") from None
    saved_config = stored.pop("config", None)
    optimizer_state = {
        key[len(OPTIMIZER_PREFIX) :]: stored.pop(key)
        for key in list(stored)
        if key.startswith(OPTIMIZER_PREFIX)
    }
    wanted = _arrays(model, rule)
    for key, target in wanted.items():
        if key not in stored:
            raise ConfigError(
                f"--load: checkpoint {path} has no {key!r}, which the model built from the "
                f"flags needs (check --hidden, --bn and --method)"
            )
        if stored[key].shape != target.shape:
            raise ConfigError(
                f"--load: {key!r} in {path} has shape {stored[key].shape} but the flags give "
                f"{target.shape} (check --hidden and the dataset)"
            )
    extra = sorted(set(stored) - set(wanted))
    if extra:
        raise ConfigError(
            f"--load: checkpoint {path} holds {', '.join(extra)}, which the model built from the "
            f"flags does not have (check --hidden, --bn and --method)"
        )
    bad = [key for key in wanted if not np.isfinite(stored[key]).all()]
    if bad:
        raise ConfigError(
            f"--load: {path} holds NaN or infinite values in {', '.join(bad[:3])}: it was "
            "saved from a run that diverged; load an earlier checkpoint"
        )
    model.load_named_state({key: stored[key] for key in model.named_state()})
    if rule is not None:
        rule.load_named_state({key: stored[key] for key in rule.named_state()})
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)
    try:
        return json.loads(str(saved_config)) if saved_config is not None else {}
    except json.JSONDecodeError:
        return {}


def _network_facts(
    saved: dict[str, Any], shapes: dict[str, tuple[int, ...]], config: TrainConfig
) -> tuple[tuple[int, ...], int]:
    """The input shape and the number of classes: stored since release 0.2, else read off the
    weights (release 0.1: the registered dataset's images, or vectors of the first layer's
    input size)."""
    if "input_shape" in saved and "n_classes" in saved:
        return tuple(int(n) for n in saved["input_shape"]), int(saved["n_classes"])
    blocks = sorted(
        (int(m.group(2)), shape)
        for key, shape in shapes.items()
        if (m := WEIGHT_KEY.fullmatch(key))
    )
    if not blocks:
        raise KeyError("no weight layer")
    first, last = blocks[0][1], blocks[-1][1]
    shape: tuple[int, ...] = (first[0],)
    if config.dataset in DATASETS:
        registered = DATASETS.get(config.dataset).input_shape
        if config.conv or math.prod(registered) == first[0]:
            shape = registered
    return shape, int(last[-1])


def network_from_checkpoint(
    path: str | Path, dtype: str = "float64"
) -> tuple[Network, TrainConfig]:
    """The network a checkpoint holds, rebuilt from the configuration stored in it (dense or
    convolutional), in ``dtype``, with its rule's feedback loaded too."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            saved = json.loads(str(archive["config"]))
            shapes = {key: archive[key].shape for key in archive.files if key != "config"}
        config = replace(TrainConfig.from_stored(saved), dtype=dtype, load=None).resolved()
        input_shape, n_classes = _network_facts(saved, shapes, config)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a checkpoint .npz") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        reason = "it has no stored configuration" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(
            f"{path} is not a checkpoint written by train --save ({reason})"
        ) from None
    network = build_network(config, input_shape, n_classes)
    load_checkpoint(path, network, RULES.get(config.method)(network))
    return network, config


def pixel_divisor(path: str | Path, config: TrainConfig) -> float:
    """How the checkpoint's network scales integer pixels (``x = p / divisor - 1``): stored
    since release 0.2, else its registered dataset's (release 0.1)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            saved = json.loads(str(archive["config"]))
        return float(saved["pixel_divisor"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
        if config.dataset in DATASETS:
            return DATASETS.get(config.dataset).pixel_divisor
        return PIXEL_DIVISOR
