"""Save and load a model, its batch-norm statistics and its rule's feedback in one ``.npz``.

Keys: ``linear.{k}.weight`` (in x out; k = 0 .. output layer), ``batchnorm.{k}.gamma``,
``.beta``, ``.running_mean``, ``.running_var`` (k = hidden layer), ``feedback.{k}``
(n_classes x h_k) and ``config`` (JSON text).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .model import MLP
from .rules import LearningRule


def _arrays(model: MLP, rule: LearningRule | None) -> dict[str, np.ndarray]:
    """Every array a checkpoint holds, by key, as live references into the model and rule."""
    arrays = {f"linear.{k}.weight": lin.weight.value for k, lin in enumerate(model.linears)}
    for k, bn in enumerate(model.batchnorms):
        arrays[f"batchnorm.{k}.gamma"] = bn.gamma.value
        arrays[f"batchnorm.{k}.beta"] = bn.beta.value
        arrays[f"batchnorm.{k}.running_mean"] = bn.running_mean
        arrays[f"batchnorm.{k}.running_var"] = bn.running_var
    if rule is not None:
        arrays.update({f"feedback.{k}": m for k, m in enumerate(rule.feedback)})
    return arrays


def save_checkpoint(path: str | Path, model: MLP, rule: LearningRule | None, config: dict) -> None:
    """Write the checkpoint atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, config=np.array(json.dumps(config)), **_arrays(model, rule))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, model: MLP, rule: LearningRule | None) -> dict:
    """Overwrite the model's (and rule's) arrays with the checkpoint's; return its config.

    Every key the model built from the flags needs must be present with the same shape, and
    the checkpoint may hold no other arrays; otherwise a :class:`ConfigError` names the key.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise ConfigError(f"--load: checkpoint {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"--load: {path} is not a readable checkpoint .npz ({exc})") from None
    saved_config = stored.pop("config", None)
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
    for key, target in wanted.items():
        target[...] = stored[key]
    for bn in model.batchnorms:
        bn.running_initialised = True
    try:
        return json.loads(str(saved_config)) if saved_config is not None else {}
    except json.JSONDecodeError:
        return {}
