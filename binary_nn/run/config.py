"""The run configuration: one validated dataclass shared by the CLI, the API and the sweeps.

Every field is an option declared once (``binary_nn.options.option``): its flags, help,
group, check and role. The parser, the validation, ``TrainConfig.command_line``, the
sweeps' parameter check, a campaign's identity and the report's sections derive from them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from .. import options as opts
from ..errors import ConfigError
from ..learning.loss import LOSSES
from ..learning.optim import (
    OPTIMIZERS,
    OTHER_OPTIMIZERS,
    SCHEDULES,
    OptimizerSettings,
    Schedule,
    default_rate,
)
from ..learning.rules import FEEDBACK, FEEDBACK_POSITIONS, RULES, DirectFeedbackRule
from ..nn.activations import ACTIVATIONS
from ..nn.kernels import BACKENDS
from ..nn.network import SHORTCUTS, parse_conv
from ..nn.quantizers import WEIGHT_STES
from ..options import Needs, option

DTYPES = ("float32", "float64")
PROG = "binary_nn.train"
PROGRAM = ("python", "-m", PROG)
DESCRIPTION = (
    "Train a network, real or binary, with backpropagation (GD, alias BP), DFA or DRTP. "
    "Gradients are sums over the batch, so the learning rates that work are small "
    "(the published runs use 1e-6 .. 1e-4)."
)


def parse_hidden(
    text: str | list[Any] | tuple[Any, ...], flag: str = "--hidden"
) -> tuple[int, ...]:
    """``"700,500"`` -> ``(700, 500)``; ``""`` -> ``()`` (no hidden dense layer: the output
    layer reads the convolutions); anything else is a ``ConfigError``."""
    if text in ("", [], ()):
        return ()
    return opts.int_list(text, flag)


def _conv(value: Any, flag: str) -> str:
    """A convolution spec, checked (see ``parse_conv``)."""
    spec = "" if value is None else str(value) if isinstance(value, str) else ",".join(value)
    parse_conv(spec)
    return spec


def _streams(config: TrainConfig) -> bool:
    return RULES.get(config.method).supports_streaming


def _loss_fits(config: TrainConfig) -> bool:
    wanted = LOSSES.get(config.loss).output_activation
    return wanted is None or config.last_act == wanted


def _device(value: Any, flag: str = "") -> str:
    """``cpu``, ``cuda`` or ``cuda:N``."""
    text = str(value).strip().lower()
    kind, _, index = text.partition(":")
    if (kind == "cpu" and not index) or (kind == "cuda" and (not index or index.isdigit())):
        return text
    raise ConfigError(f"{flag} must be cpu, cuda or cuda:N (a GPU's number), got {value!r}")


def _on_gpu_backend(config: TrainConfig) -> bool:
    return config.device == "cpu" or config.array_backend != "numpy"


def _bop_fits(config: TrainConfig) -> bool:
    return config.optimizer != "bop" or config.binarize or config.binarize_last


def _uses(config: TrainConfig, *names: str) -> bool:
    """Whether the run's optimizer is one of ``names``, or Bop with one of them beside it."""
    return config.optimizer in names or (config.optimizer == "bop" and config.bop_other in names)


SGD_USED = Needs("--optimizer sgd (or bop with --bop-other sgd)", lambda c: _uses(c, "sgd"))
ADAM_USED = Needs(
    "--optimizer adam or adamw (or bop with --bop-other adam)", lambda c: _uses(c, "adam", "adamw")
)
BOP_USED = Needs("--optimizer bop", lambda c: c.optimizer == "bop")
BN = Needs("--bn", lambda c: c.bn)
RESIDUAL_UNITS = Needs(
    "a residual unit in --conv (r{C}c{K})",
    lambda c: any(kind == "residual" for kind, _, _ in parse_conv(c.conv)),
)
BINARY_WEIGHTS = Needs("--binarize", lambda c: c.binarize)
ALIGNMENT_ON = Needs("--alignment-every other than 0", lambda c: c.alignment_every != 0)


@dataclass
class TrainConfig:
    """Everything that defines a training run; field names follow the CLI flags.

    Defaults reproduce the published code (see the behaviour spec in the docs). Call
    ``resolved`` to validate and canonicalise it (``BP`` -> ``GD``, a seed drawn when none
    is given).
    """

    # --- data
    dataset: str = option(
        "digits", "-d", "--dataset", group="data", check=opts.text,
        help="a registered dataset (digits, MNIST, FASHION_MNIST, CIFAR10; case-insensitive) "
        "or a PATH.npz holding x_train, y_train, x_test, y_test",
    )  # fmt: skip
    data_dir: str | None = option(
        None, "--data-dir", group="data", check=opts.text, effect="io",
        help="where dataset files are looked for and cached "
        "(default: $BINARY_NN_DATA, else the user cache directory)",
    )  # fmt: skip
    val_split: float = option(
        0.0, "--val-split", group="data", check=opts.number(0, above=False, high=1),
        metavar="F",
        help="hold out a stratified, seeded fraction F of the training set for validation "
        "(val/* metrics; the best epoch is then chosen on val/accuracy, not on the test set); "
        "0: none, as published",
    )  # fmt: skip
    # --- model
    hidden: tuple[int, ...] = option(
        (700, 500), "--hidden", group="model", check=parse_hidden,
        help="comma-separated hidden layer sizes (empty after --conv: the output layer reads "
        "the convolutions)",
    )  # fmt: skip
    conv: str = option(
        "", "--conv", group="model", check=_conv, metavar="SPEC",
        help="convolutional layers before --hidden, e.g. 32c5,mp2,64c5,mp2: {C}c{K} is a KxK "
        "convolution with C channels (stride 1, zero padding K//2), mp{P} a PxP max-pool, "
        "r{C}c{K} a residual unit (a sign-first convolution with a shortcut around it), gap "
        "global average pooling (last)",
    )  # fmt: skip
    init: float = option(
        0.1, "--init", group="model", check=opts.number(0, high=1e6, below=False),
        help="weights are drawn from U(-init, init), 0 < init <= 1e6",
    )  # fmt: skip
    bn: bool = option(
        False, "--bn", group="model", kind="flag",
        help="batch normalisation in every hidden layer",
    )  # fmt: skip
    sn: bool = option(
        False, "--sn", group="model", kind="flag",
        help="divide each hidden pre-activation by its fan-in",
    )  # fmt: skip
    rsign: bool = option(
        False, "--rsign", group="model", kind="flag", needs=(RESIDUAL_UNITS,),
        help="ReActNet's RSign in residual units: a learnable threshold per channel before "
        "the sign",
    )  # fmt: skip
    shortcut: str = option(
        "conv", "--shortcut", group="model", check=opts.one_of(*SHORTCUTS),
        needs=(RESIDUAL_UNITS,),
        help="a residual unit's shortcut where the channels grow: conv, a real-valued 1x1 "
        "convolution (Bi-Real Net's), or pad, zero channels appended (parameter-free)",
    )  # fmt: skip
    rprelu: bool = option(
        False, "--rprelu", group="model", kind="flag", needs=(RESIDUAL_UNITS,),
        help="ReActNet's RPReLU after each residual unit's sum (learnable shifts and slope "
        "per channel)",
    )  # fmt: skip
    hidden_act: str = option(
        "tanh", "--hidden-act", group="model", check=opts.registered(ACTIVATIONS),
        help=f"hidden activation: {', '.join(ACTIVATIONS.names())}",
    )  # fmt: skip
    last_act: str = option(
        "tanh", "--last-act", group="model", check=opts.registered(ACTIVATIONS),
        help=f"output activation: {', '.join(ACTIVATIONS.names())}",
    )  # fmt: skip
    binarize: bool = option(
        False, "--binarize", group="model", kind="flag",
        help="binary (sign) weights in the hidden layers; their real latent weights learn",
    )  # fmt: skip
    binarize_last: bool = option(
        False, "--binarize_last", "--binarize-last", group="model", kind="flag",
        help="binary weights in the output layer (independent of --binarize, as published: "
        "alone, only the output layer is binary; --run-name auto still says 'continuous')",
    )  # fmt: skip
    binarize_first: bool = option(
        True, "--binarize-first", group="model", kind="switch", needs=[BINARY_WEIGHTS],
        help="with --binarize, whether the first layer (the one that reads pixels) is binary "
        "too; --no-binarize-first keeps it real, as BNN recipes do",
    )  # fmt: skip
    weight_ste: str = option(
        "identity", "--weight-ste", group="model", check=opts.registered(WEIGHT_STES),
        needs=[BINARY_WEIGHTS],
        help=f"gradient estimator of binary weights: {', '.join(WEIGHT_STES.names())}",
    )  # fmt: skip
    dtype: str = option(
        "float32", "--dtype", group="model", check=opts.one_of(*DTYPES),
        help=f"computation precision: {', '.join(DTYPES)}",
    )  # fmt: skip
    # --- learning
    method: str = option(
        "GD", "-m", "--method", group="learning", check=opts.registered(RULES),
        help=f"learning rule: {', '.join(RULES.names())} (BP is an alias of GD)",
    )  # fmt: skip
    feedback: str = option(
        "uniform", "--feedback", group="learning", check=opts.one_of(*FEEDBACK),
        needs=[Needs("-m DFA, DRTP or FA (a rule with fixed random feedback matrices)",
                     lambda c: RULES.get(c.method).draws_feedback)],
        help="the fixed feedback matrices' entries: uniform U(-1, 1) (published), gaussian "
        "(the same variance), binary (+-1: a 1-bit backward path) or ternary (-1, 0, +1)",
    )  # fmt: skip
    feedback_positions: str = option(
        "each", "--feedback-positions", group="learning",
        check=opts.one_of(*FEEDBACK_POSITIONS),
        needs=[Needs("-m DFA or DRTP (a rule that projects to every hidden block)",
                     lambda c: issubclass(RULES.get(c.method), DirectFeedbackRule))],
        help="how DFA's and DRTP's matrices cover a convolution's or residual unit's output: "
        "each value its own column (published), or one column per channel shared by every "
        "position (what a global average pool's true gradient is)",
    )  # fmt: skip
    lr: float | None = option(
        None, "--lr", group="learning", check=opts.optional(opts.number(0)),
        help="learning rate (default: the optimizer's own, 1e-4 for sgd and 1e-3 for adam "
        "and adamw); SGD's gradients are sums over the batch, not means, so its rates that "
        "work are small (the published runs use 1e-6 .. 1e-4; the published default was 1e-3)",
    )  # fmt: skip
    batchsize: int = option(
        128, "-b", "--batchsize", group="learning", check=opts.integer(1), help="batch size",
    )  # fmt: skip
    weight_clipping: float = option(
        0.0, "--weight-clipping", group="learning", check=opts.number(),
        help="clip every weight to [-c, c] after each update; off when <= 0",
    )  # fmt: skip
    loss: str = option(
        "mse", "--loss", group="learning", check=opts.registered(LOSSES),
        needs=[Needs("--last-act id (the loss takes the softmax itself)", _loss_fits)],
        help="mse (the published loss, on the output activation) or cross-entropy (softmax "
        "cross-entropy on the output layer, with --last-act id)",
    )  # fmt: skip
    optimizer: str = option(
        "sgd", "--optimizer", group="learning", check=opts.registered(OPTIMIZERS),
        needs=[Needs("--binarize (Bop flips binary weights)", _bop_fits)],
        help=f"{', '.join(OPTIMIZERS.names())}: plain SGD is the published update; bop flips "
        "binary weights and trains the rest with --bop-other",
    )  # fmt: skip
    momentum: float = option(
        0.0, "--momentum", group="learning", check=opts.number(0, above=False, high=1),
        needs=[SGD_USED], help="SGD's momentum, in [0, 1)",
    )  # fmt: skip
    nesterov: bool = option(
        False, "--nesterov", group="learning", kind="flag",
        needs=[SGD_USED, Needs("--momentum above 0", lambda c: c.momentum > 0)],
        help="Nesterov momentum",
    )  # fmt: skip
    beta1: float = option(
        0.9, "--beta1", group="learning", check=opts.number(0, above=False, high=1),
        needs=[ADAM_USED], help="Adam's first-moment decay, in [0, 1)",
    )  # fmt: skip
    beta2: float = option(
        0.999, "--beta2", group="learning", check=opts.number(0, above=False, high=1),
        needs=[ADAM_USED], help="Adam's second-moment decay, in [0, 1)",
    )  # fmt: skip
    eps: float = option(
        1e-8, "--eps", group="learning", check=opts.number(0), needs=[ADAM_USED],
        help="Adam's epsilon, > 0",
    )  # fmt: skip
    weight_decay: float = option(
        0.0, "--weight-decay", group="learning", check=opts.number(0, above=False),
        help="weight decay on weights (not batch norm's): decoupled with adamw, an L2 term "
        "in the gradient with sgd and adam",
    )  # fmt: skip
    bop_threshold: float = option(
        1e-8, "--bop-threshold", group="learning", check=opts.number(0), needs=[BOP_USED],
        help="Bop's threshold tau: a binary weight flips when its gradient momentum exceeds it",
    )  # fmt: skip
    bop_gamma: float = option(
        1e-4, "--bop-gamma", group="learning", check=opts.number(0, high=1, below=False),
        needs=[BOP_USED], help="Bop's adaptivity gamma (the momentum's rate), in (0, 1]",
    )  # fmt: skip
    bop_other: str = option(
        "adam", "--bop-other", group="learning", check=opts.one_of(*OTHER_OPTIMIZERS),
        needs=[BOP_USED], help="with --optimizer bop, the optimizer of every parameter that "
        "is not a binary weight (with --lr and that optimizer's options)",
    )  # fmt: skip
    lr_schedule: str = option(
        "constant", "--lr-schedule", group="learning", check=opts.registered(SCHEDULES),
        help=f"the rate per epoch: {', '.join(SCHEDULES.names())}",
    )  # fmt: skip
    warmup_epochs: int = option(
        0, "--warmup-epochs", group="learning", check=opts.integer(0),
        needs=[Needs("-e/--epochs above it", lambda c: c.warmup_epochs < c.epochs)],
        help="epochs of linear warm-up: the first N epochs run at 1/N, 2/N, ... of the "
        "schedule's rate",
    )  # fmt: skip
    lr_min: float = option(
        0.0, "--lr-min", group="learning", check=opts.number(0, above=False),
        needs=[Needs("--lr-schedule cosine", lambda c: c.lr_schedule == "cosine")],
        help="where the cosine schedule ends",
    )  # fmt: skip
    lr_step: int = option(
        1, "--lr-step", group="learning", check=opts.integer(1), metavar="EPOCHS",
        needs=[Needs("--lr-schedule step", lambda c: c.lr_schedule == "step")],
        help="the step schedule multiplies the rate by --lr-factor every EPOCHS epochs",
    )  # fmt: skip
    lr_factor: float = option(
        0.1, "--lr-factor", group="learning", check=opts.number(0),
        needs=[Needs("--lr-schedule step or exponential",
                     lambda c: c.lr_schedule in ("step", "exponential"))],
        help="the step schedule's factor, or the exponential one's per epoch",
    )  # fmt: skip
    streaming: bool = option(
        False, "--streaming", group="learning", kind="flag", effect="measurement",
        needs=[Needs("-m DRTP (a rule whose updates need no output error)", _streams)],
        help="DRTP only: each hidden layer updates as soon as its forward is done and "
        "releases its activations (same results, less memory)",
    )  # fmt: skip
    # --- run
    epochs: int = option(
        20, "-e", "--epochs", group="run", check=opts.integer(0),
        help="number of epochs (the published default was 5; 0 writes an untrained network)",
    )  # fmt: skip
    seed: int | None = option(
        None, "--seed", group="run",
        check=opts.optional(opts.integer(0, 2**32 - 1, allowed="an integer in 0..2**32-1")),
        help="seed of every random draw; drawn and reported when not given",
    )  # fmt: skip
    early_stopping: int = option(
        0, "--early-stopping", group="run", check=opts.integer(0), metavar="N",
        needs=[Needs("--val-split (it stops on validation, not on test data)",
                     lambda c: c.val_split > 0)],
        help="stop after N epochs without a better val/accuracy; 0: never",
    )  # fmt: skip
    checkpoint_every: int = option(
        0, "--checkpoint-every", group="run", check=opts.integer(0), effect="io",
        metavar="N",
        help="also write the run directory's checkpoint every N iterations (it is written at "
        "every epoch end, and when the run is stopped); 0: epoch ends only",
    )  # fmt: skip
    save_best: str | None = option(
        None, "--save-best", group="run", check=opts.text, effect="io", metavar="PATH",
        needs=[Needs("--val-split", lambda c: c.val_split > 0)],
        help="write the model of the best epoch on val/accuracy to this .npz",
    )  # fmt: skip
    out: str | None = option(
        None, "--out", group="run", check=opts.text, effect="io",
        help="run directory (default: runs/<timestamp>-<name>)",
    )  # fmt: skip
    overwrite: bool = option(
        False, "--overwrite", group="run", kind="flag", effect="io",
        help="replace the run that --out already holds (refused otherwise)",
    )  # fmt: skip
    save: str | None = option(
        None, "--save", group="run", check=opts.text, effect="io", metavar="PATH",
        help="write the trained model, its feedback matrices and optimizer state to this .npz "
        "(also when the run is stopped, marked so)",
    )  # fmt: skip
    load: str | None = option(
        None, "--load", group="run", check=opts.text, metavar="PATH",
        help="start from this checkpoint's weights and feedback (a new optimization); the "
        "model options not given are the checkpoint's",
    )  # fmt: skip
    # where it computes: "io" like --out, since the numbers agree to rounding on every backend
    # (a campaign may go on on a GPU, or a checkpoint move between them)
    backend: str | None = option(
        None, "--backend", group="run", check=opts.optional(opts.one_of(*BACKENDS)),
        effect="io",
        help="the array library the engine computes with: numpy (with numba when installed), "
        "torch or cupy; default: numpy, or torch with --device cuda",
    )  # fmt: skip
    device: str = option(
        "cpu", "--device", group="run", check=_device, effect="io",
        needs=[Needs("--backend torch or cupy (numpy computes on the CPU)", _on_gpu_backend)],
        help="cpu, cuda or cuda:N: where torch or CuPy computes",
    )  # fmt: skip
    # --- logging and measurements
    verbose: int = option(
        0, "-v", "--verbose", group="logging", kind="count", effect="io",
        help="-v: configuration and HSIC per epoch; -vv: every iteration",
    )  # fmt: skip
    wandb: bool = option(
        False, "--wandb", group="logging", kind="flag", effect="io",
        help="log to Weights & Biases (project '{dataset} custom')",
    )  # fmt: skip
    run_name: str | None = option(
        None, "--run-name", group="logging", check=opts.text, effect="io",
        help="run name; 'auto' gives '{METHOD} {binarised|continuous} {hidden_act}'",
    )  # fmt: skip
    log_every: int = option(
        1, "--log-every", group="logging", check=opts.integer(1), effect="measurement",
        help="record the per-iteration statistics every N iterations",
    )  # fmt: skip
    alignment_every: int | None = option(
        None, "--alignment-every", group="logging", check=opts.optional(opts.integer(0)),
        effect="measurement", metavar="N",
        help="measure the alignment with backpropagation (align/*, flip/*) every N iterations; "
        "0 turns it off (default: at every epoch end)",
    )  # fmt: skip
    alignment_examples: int = option(
        512, "--alignment-examples", group="logging", check=opts.integer(1),
        effect="measurement", metavar="N", needs=[ALIGNMENT_ON],
        help="the alignment's probe batch: the first N training examples",
    )  # fmt: skip
    bn_recalibrate: int = option(
        0, "--bn-recalibrate", group="logging", check=opts.integer(0), effect="measurement",
        metavar="N", needs=[BN],
        help="with --bn: before each evaluation, set batch norm's running statistics to the "
        "average over the first N training batches under the current weights (no update; "
        "0: the running averages of training, as the study has it)",
    )  # fmt: skip
    argv: list[str] = field(default_factory=list)

    def resolved(self) -> TrainConfig:
        """A validated copy with canonical names and a concrete seed."""
        values = opts.validate(self)
        values["lr"] = replace(self, **values).rate
        if values["seed"] is None:
            values["seed"] = int(np.random.SeedSequence().generate_state(1)[0])
        return replace(self, **values)

    @property
    def array_backend(self) -> str:
        """The backend the run computes with: ``--backend``, else numpy on the CPU and torch
        on a GPU."""
        if self.backend is not None:
            return self.backend
        return "numpy" if self.device == "cpu" else "torch"

    @property
    def rate(self) -> float:
        """``--lr``, or the optimizer's own default rate when it is not given."""
        return self.lr if self.lr is not None else default_rate(self.optimizer, self.bop_other)

    @property
    def auto_name(self) -> str:
        """The name ``--run-name auto`` gives: "{METHOD} {binarised|continuous} {hidden_act}"
        (the published spelling of binary and real weights, which run names keep)."""
        weights = "binarised" if self.binarize else "continuous"
        return f"{self.method.upper()} {weights} {self.hidden_act}"

    @property
    def name(self) -> str | None:
        """The run name: ``--run-name``, with ``auto`` expanded; None when not given."""
        return self.auto_name if self.run_name == "auto" else self.run_name

    def command_line(self) -> str:
        """The ``python -m binary_nn.train`` command that runs this configuration (flags that
        differ from the defaults)."""
        return opts.command_line(self, PROGRAM)

    def optimizer_settings(self) -> OptimizerSettings:
        """The hyperparameters of ``optimizer`` (see ``binary_nn.learning.optim``)."""
        return OptimizerSettings(
            lr=self.rate,
            weight_clipping=self.weight_clipping,
            momentum=self.momentum,
            nesterov=self.nesterov,
            beta1=self.beta1,
            beta2=self.beta2,
            eps=self.eps,
            weight_decay=self.weight_decay,
            bop_threshold=self.bop_threshold,
            bop_gamma=self.bop_gamma,
            bop_other=self.bop_other,
        )

    def schedule(self) -> Schedule:
        """The learning rate of each epoch."""
        return Schedule(
            self.lr_schedule, self.rate, self.epochs, self.warmup_epochs, self.lr_min,
            self.lr_step, self.lr_factor,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A configuration from a mapping of field names (a settings file, ``config.json``
        without its facts); an unknown key is refused, naming it."""
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be a mapping of options, got {data!r}")
        known = {f.name for f in fields(cls)}
        # a key may be spelt as the flag is (hidden-act), as in sweep files
        data = {str(k).replace("-", "_") if str(k).replace("-", "_") in known else k: v
                for k, v in data.items()}  # fmt: skip
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(map(str, unknown))}")
        values = dict(data)
        if "hidden" in values:
            values["hidden"] = parse_hidden(values["hidden"])
        return cls(**values)

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> TrainConfig:
        """The configuration a run directory's ``config.json`` (or a checkpoint) holds: its
        option keys, without the facts about the model stored beside them."""
        if not isinstance(data, dict):
            raise ConfigError(f"a stored configuration must be a JSON object, got {data!r}")
        known = {f.name for f in fields(cls)}
        return cls.from_dict({k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def build_parser(given_only: bool = False) -> argparse.ArgumentParser:
    """The parser of ``python -m binary_nn.train``: every ``TrainConfig`` option, grouped,
    and ``--resume`` (``given_only``: see ``binary_nn.options.build_parser``)."""
    parser = opts.build_parser(TrainConfig, PROG, DESCRIPTION, given_only=given_only)
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=argparse.SUPPRESS if given_only else None,
        help="continue the run in RUN_DIR from its checkpoint, with its configuration (other "
        "options only to raise --epochs, or change where things go and what is printed)",
    )
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse a command line into a (not yet validated) ``TrainConfig`` (``--resume``
    aside: see ``binary_nn.run.command``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    values = opts.parsed_values(build_parser(), argv)
    values.pop("resume", None)
    return TrainConfig(**values, argv=argv)


def given_options(argv: Sequence[str]) -> dict[str, Any]:
    """The options a command line sets itself (not left to their defaults)."""
    values = opts.parsed_values(build_parser(given_only=True), argv)
    values.pop("resume", None)
    return values


def resume_config(stored: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    """The configuration a resumed run continues with: the stored one, with the options
    given again on the command line. An option that changes what the run computes must not
    differ (one sentence names it), but ``epochs`` may grow; where things go and how much is
    printed may change."""
    options = opts.options_of(TrainConfig)
    stored = stored.resolved()
    wanted = replace(stored, **given).resolved()
    for name, opt in options.items():
        if name not in given or opt.effect == "io" or name == "epochs":
            continue
        if getattr(wanted, name) != getattr(stored, name):
            raise ConfigError(
                f"{opt.label} {getattr(wanted, name)!r} contradicts the run's "
                f"{getattr(stored, name)!r}; a resumed run keeps its configuration (leave "
                f"{opt.flag} out, or start a new run)"
            )
    if wanted.epochs < stored.epochs:
        raise ConfigError(
            f"-e/--epochs {wanted.epochs} is fewer than the run's {stored.epochs}; a resumed "
            "run may only be extended"
        )
    return wanted
