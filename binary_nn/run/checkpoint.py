"""Save and load a network's named state and its rule's feedback in one ``.npz``.

The keys are the state names the network and the rule give (:meth:`Network.named_state`,
:meth:`LearningRule.named_state`): ``linear.{k}.weight`` (in x out; k = 0 .. output block),
``batchnorm.{k}.gamma``, ``.beta``, ``.running_mean``, ``.running_var`` (k = hidden block),
``feedback.{k}`` (n_classes x the block's output size) and ``config`` (JSON text).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..files import write_bytes_atomic
from ..learning.rules import LearningRule
from ..nn.network import Network


def _arrays(model: Network, rule: LearningRule | None) -> dict[str, np.ndarray]:
    """Every array a checkpoint holds, by key, as live references into the model and rule."""
    return {**model.named_state(), **(rule.named_state() if rule is not None else {})}


def save_checkpoint(
    path: str | Path, model: Network, rule: LearningRule | None, config: dict
) -> None:
    """Write the checkpoint atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    arrays: dict = {"config": np.array(json.dumps(config)), **_arrays(model, rule)}
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | Path, model: Network, rule: LearningRule | None) -> dict:
    """Overwrite the model's (and rule's) arrays with the checkpoint's; return its config.

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
    try:
        return json.loads(str(saved_config)) if saved_config is not None else {}
    except json.JSONDecodeError:
        return {}
