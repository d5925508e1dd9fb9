"""Save and load a network's named state and its rule's feedback in one ``.npz``.

The keys are the state names the network and the rule give (``Network.named_state``,
``LearningRule.named_state``): ``linear.{k}.weight`` (in x out; k = 0 .. output block),
``batchnorm.{k}.gamma``, ``.beta``, ``.running_mean``, ``.running_var`` (k = hidden block),
``conv.{k}.weight`` (K x K x C_in x C_out), ``feedback.{k}`` (n_classes x the block's output
size) and ``config`` (JSON text: the run's options, and the network's ``input_shape`` and
``n_classes``, so that ``network_from_checkpoint`` rebuilds it from the file alone).
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..archive import npz_headers, read_npz
from ..data import DATASETS
from ..data.dataset import PIXEL_DIVISOR
from ..errors import ConfigError
from ..files import jsonable, write_bytes_atomic
from ..learning.optim import Optimizer
from ..learning.rules import RULES, LearningRule
from ..nn.kernels import KernelBackend
from ..nn.network import Network
from ..schema import Record
from .architecture import build_network
from .config import TrainConfig
from .probes import Probe
from .progress import Progress

#: what the messages ask for
CHECKPOINT = "a checkpoint .npz written by binary_nn (train --save, or a run's checkpoint.npz)"
#: a weight layer's key: its kind, its block
WEIGHT_KEY = re.compile(r"(linear|conv)\.([0-9]+)\.weight")


def _arrays(model: Network, rule: LearningRule | None) -> dict[str, np.ndarray]:
    """Every array a checkpoint holds, by key, on the host (live references into the model
    and rule on the numpy backends; checkpoints are host numpy whatever the backend)."""
    state = {**model.named_state(), **(rule.named_state() if rule is not None else {})}
    return {key: model.kernels.to_host(array) for key, array in state.items()}


OPTIMIZER_PREFIX = "optimizer."
#: a run directory's checkpoint, written at every epoch end (and every --checkpoint-every
#: iterations, and when the run is stopped): what --resume continues from
RUN_CHECKPOINT = "checkpoint.npz"
#: a run directory's model of its best epoch on val/accuracy, kept by every run with a
#: validation split: what ``evaluate RUN_DIR`` scores
BEST_CHECKPOINT = "best.npz"
PROGRESS_KEY = "progress"
ORDER_KEY = "progress.order"
PROBE_PREFIX = "probe."


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
    extra_prefixes: Sequence[str] = (PROGRESS_KEY, PROBE_PREFIX),
    flag: str = "--load",
) -> dict[str, Any]:
    """Overwrite the model's (and rule's, and with ``optimizer`` the optimizer's) arrays with
    the checkpoint's; return its config. Without ``optimizer``, a stored optimizer state is
    not used (``--load`` starts a new optimization from the weights).

    Every key the model built from the flags needs must be present with the same shape, and
    the checkpoint may hold no other arrays; otherwise a ``ConfigError`` names the key.
    """
    try:
        stored = read_npz(path, CHECKPOINT)
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    saved_config = stored.pop("config", None)
    optimizer_state = {
        key[len(OPTIMIZER_PREFIX) :]: stored.pop(key)
        for key in list(stored)
        if key.startswith(OPTIMIZER_PREFIX)
    }
    for key in list(stored):  # a run checkpoint's progress and probes: not the network's
        if key.startswith(tuple(extra_prefixes)):
            stored.pop(key)
    wanted = _arrays(model, rule)
    for key, target in wanted.items():
        if key not in stored:
            raise ConfigError(
                f"{flag}: checkpoint {path} has no {key!r}, which the model built from the "
                f"flags needs (check --hidden, --bn and --method)"
            )
        if stored[key].shape != target.shape:
            raise ConfigError(
                f"{flag}: {key!r} in {path} has shape {stored[key].shape} but the flags give "
                f"{target.shape} (check --hidden and the dataset)"
            )
    extra = sorted(set(stored) - set(wanted))
    if extra:
        raise ConfigError(
            f"{flag}: checkpoint {path} holds {', '.join(extra)}, which the model built from the "
            f"flags does not have (check --hidden, --bn and --method)"
        )
    text = [key for key in wanted if stored[key].dtype.kind not in "fiub"]
    if text:
        raise ConfigError(
            f"{flag}: {path} holds {stored[text[0]].dtype} values in {text[0]!r}, not numbers: "
            "it is damaged; load another checkpoint"
        )
    bad = [key for key in wanted if not np.isfinite(stored[key]).all()]
    if bad:
        raise ConfigError(
            f"{flag}: {path} holds NaN or infinite values in {', '.join(bad[:3])}: it was "
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
    path: str | Path, dtype: str | None = "float64", kernels: KernelBackend | None = None
) -> tuple[Network, TrainConfig]:
    """The network a checkpoint holds, rebuilt from the configuration stored in it (dense or
    convolutional), in ``dtype`` (None: the dtype it was trained in), with its rule's
    feedback loaded too; computing with ``kernels`` (the default numpy ones when not given,
    whatever backend it was trained on: checkpoints are host arrays)."""
    headers = npz_headers(path, CHECKPOINT)
    saved = stored_config(path)
    shapes = {key: shape for key, (shape, _) in headers.items() if key != "config"}
    try:
        stored = TrainConfig.from_stored(saved)
        config = replace(stored, dtype=dtype or stored.dtype, load=None).resolved()
        input_shape, n_classes = _network_facts(saved, shapes, config)
    except (ValueError, KeyError, TypeError) as exc:
        reason = "it has no stored configuration" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(
            f"{path} is not a checkpoint written by train --save ({reason})"
        ) from None
    # the configuration is checked against the arrays' declared shapes before any memory is
    # taken: a damaged one (hidden sizes of 10**9) is refused, not allocated
    shape_only = build_network(config, input_shape, n_classes, shape_only=True)
    for key, array in shape_only.named_state().items():
        if shapes.get(key) != tuple(array.shape):
            raise ConfigError(
                f"{path}: its configuration gives {key!r} the shape {tuple(array.shape)} but the "
                f"archive holds {shapes.get(key)}; the checkpoint is damaged"
            )
    network = build_network(config, input_shape, n_classes, kernels=kernels)
    rule = RULES.get(config.method)(network, feedback=config.feedback)
    load_checkpoint(path, network, rule, flag="checkpoint")
    return network, config


def pixel_divisor(path: str | Path, config: TrainConfig) -> float:
    """How the checkpoint's network scales integer pixels (``x = p / divisor - 1``): stored
    since release 0.2, else its registered dataset's (release 0.1)."""
    try:
        return float(stored_config(path)["pixel_divisor"])
    except (ConfigError, ValueError, KeyError, TypeError):
        if config.dataset in DATASETS:
            return DATASETS.get(config.dataset).pixel_divisor
        return PIXEL_DIVISOR


#: what to do with a run whose checkpoint cannot be used
DAMAGED_RUN = (
    "the checkpoint is damaged: start the run again with --overwrite (or resume from a copy "
    "of the run directory taken before the damage)"
)


def save_run_state(
    path: str | Path,
    model: Network,
    rule: LearningRule,
    optimizer: Optimizer,
    config: dict[str, Any],
    progress: Progress,
    probes: Sequence[Probe],
) -> None:
    """A checkpoint a run continues from exactly: the network, the feedback, the optimizer's
    state, the progress (epoch, iteration, the shuffle and its generator's state, the best
    epoch, how much of the metrics it covers) and the probes' state; written atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    facts = {"input_shape": list(model.input_shape), "n_classes": model.n_classes}
    arrays: dict[str, Any] = {
        "config": np.array(json.dumps({**config, **facts})),
        PROGRESS_KEY: np.array(json.dumps(jsonable(progress.to_json()))),
        **_arrays(model, rule),
        **{OPTIMIZER_PREFIX + k: v for k, v in optimizer.state_dict().items()},
    }
    if progress.order is not None:
        arrays[ORDER_KEY] = progress.order
    for k, probe in enumerate(probes):
        arrays.update({f"{PROBE_PREFIX}{k}.{name}": a for name, a in probe.state_dict().items()})
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def restore_run_state(
    path: str | Path,
    model: Network,
    rule: LearningRule,
    optimizer: Optimizer,
    probes: Sequence[Probe],
) -> tuple[Progress, Record]:
    """Load what ``save_run_state`` wrote into a run built from the same configuration;
    return the progress to continue from (checked field by field), and the record it was
    read from (for the checks that need the run: ``Progress.check_against``)."""
    load_checkpoint(path, model, rule, optimizer, extra_prefixes=(PROGRESS_KEY, PROBE_PREFIX))
    arrays = read_npz(path, CHECKPOINT)
    try:
        data = json.loads(str(arrays[PROGRESS_KEY]))
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{path} holds no run progress to resume from ({exc})") from None
    order = arrays.get(ORDER_KEY)
    stored = {k: a for k, a in arrays.items() if k.startswith(PROBE_PREFIX)}
    record = Record(data, f"{path} (its progress)", DAMAGED_RUN)
    progress = Progress.from_json(record, order)
    for k, probe in enumerate(probes):
        prefix = f"{PROBE_PREFIX}{k}."
        probe.load_state_dict(
            {n[len(prefix) :]: a for n, a in stored.items() if n.startswith(prefix)}
        )
    return progress, record


def stored_config(path: str | Path, flag: str = "checkpoint") -> dict[str, Any]:
    """The configuration stored in a checkpoint (its options and facts), or a one-sentence
    ``ConfigError``, naming ``flag``, when the file is not a checkpoint."""
    path = Path(path)
    if not path.exists() or path.is_dir():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"{flag}: {path} {what}; give a .npz written by train --save")
    try:
        headers = npz_headers(path, CHECKPOINT)
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    shape, dtype = headers.get("config", ((-1,), np.dtype(object)))
    if shape != () or dtype.kind != "U":
        raise ConfigError(
            f"{flag}: {path} is not a checkpoint written by binary_nn (train --save or a run "
            "directory's checkpoint.npz)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = json.loads(str(archive["config"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        raise ConfigError(
            f"{flag}: {path} is not a checkpoint written by binary_nn (its configuration does "
            "not read)"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{flag}: {path} holds a configuration of the wrong shape")
    return data
