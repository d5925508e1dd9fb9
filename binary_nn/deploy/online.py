"""Learning on the device: a binary MLP's online training step in integers, as the exported
C99 library runs it (``binary_nn.deploy.c_learn``), and the reference it is checked against.

One example per step, nothing but integers, every buffer sized in advance:

- **latent weights** are 16-bit fixed point, ``V = round(W * 2**14)`` clipped to ``[-2**14,
  2**14]`` (weight clipping at 1): 2 bytes per weight instead of float32's 4, and steps as
  small as ``2**-14``; a hidden layer's weights are ``sign(V)`` (``V > 0``: +1), the output
  layer's ``sign(V)`` when the checkpoint binarized it and ``V / 2**14`` otherwise;
- **no batch statistics**: one example has none. A sign only needs each neuron's threshold,
  so batch norm (or ``--sn``) becomes *running* statistics: the pre-activation ``z`` is
  centred on its running mean ``mu`` and the straight-through window of ``signsat`` (``|a| <=
  1`` of the normalised pre-activation) becomes ``|z - mu| <= gate * mad``, ``mad`` the running
  mean absolute deviation; both move by ``2**-momentum_shift`` of the difference per step
  (8 fraction bits);
- **the output** is ``logit_scale * (W h) / n_in``; the error is softmax cross-entropy's
  ``softmax - one_hot`` in Q16, the exponentials read from a table of ``exp(-q / 16)`` (Q15)
  at the logits' differences rounded to sixteenths (``exp(-16)`` and below count as 0);
- **the rules**: BP (the gradient through the layers as they were before the step), DFA
  (``B_l e``), DRTP (``B_l[label]``: no error needed, so *streaming* DRTP updates each hidden
  layer as soon as its forward is done, with the same numbers), output-only; the feedback
  matrices are the checkpoint's, in 8 bits (``round(127 B / max|B|)``; 1-bit and ternary
  ones exactly);
- **the update** of layer ``l`` is ``V -= round(round(delta * M / 2**S) * x / 2**X)`` with the
  rate ``M / 2**S`` chosen per layer so that it equals ``lr / n_in`` in the float units
  (pixels ``x = 2p - 255``, signs +-1), then the clip. Every rounding is half up
  (``floor(v / 2**s + 1/2)``).

``OnlineLearner`` runs exactly this in numpy (``int64``), the C library runs it in
``int16``/``int32``/``int64`` C99, and the two agree bit for bit. The ranges are checked when
the learner is built (``OnlineLearner.check_ranges``), so no sum can overflow in C.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..nn.layers import BatchNorm, Flatten, Linear, Scaler
from ..nn.network import Network

#: latent weights' fraction bits: 1.0 is 2**14 (and int16 holds the clip at +-1 with room)
WEIGHT_BITS = 14
WEIGHT_ONE = 1 << WEIGHT_BITS
#: fraction bits of the running statistics
STAT_BITS = 8
#: the output error's fraction bits (Q16) and the exponential table's (Q15)
ERROR_BITS = 16
EXP_BITS = 15
#: the table of exp(-q / EXP_STEPS) for q = 0 .. EXP_TABLE - 1 (0 beyond: exp(-16))
EXP_STEPS = 16
EXP_TABLE = 16 * EXP_STEPS + 1
#: the rules the device learns with, by --method name
DEVICE_RULES = ("GD", "DFA", "DRTP", "output-only")
#: the largest magnitude a C int32 may hold in a sum or product before it is shifted down
INT32_ROOM = 2**31 - 1


@dataclass(frozen=True)
class OnlineSettings:
    """The device learner's hyper-parameters (``export --learn``'s options).

    Parameters
    ----------
    lr_hidden, lr_output : float
        The learning rates of the hidden layers and of the output layer, in the float units
        of the checkpoint's network (a step of ``lr * delta * x / n_in`` on a latent weight).
    logit_scale : float
        The output is ``logit_scale * (W h) / n_in``: with weights clipped at 1, the logits
        need room beyond +-1 for the softmax to become confident.
    gate : float
        The straight-through window: a hidden neuron learns on an example where its centred
        pre-activation is within ``gate`` running mean absolute deviations (0: always).
    momentum_shift : int
        The running statistics move by ``2**-momentum_shift`` of the difference per example.
    """

    lr_hidden: float = field(default=0.8, metadata={"help": "the hidden layers' learning rate"})
    lr_output: float = field(default=0.1, metadata={"help": "the output layer's learning rate"})
    logit_scale: float = field(
        default=32.0, metadata={"help": "the output is logit_scale * (W h) / n_in"}
    )
    gate: float = field(
        default=1.0,
        metadata={"help": "a hidden neuron learns within this many running mean absolute "
                  "deviations of its running mean (0: always)"},
    )  # fmt: skip
    momentum_shift: int = field(
        default=7, metadata={"help": "running statistics move by 2**-N of the difference"}
    )

    def __post_init__(self) -> None:
        for name in ("lr_hidden", "lr_output", "logit_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1e6):
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a number in (0, 1e6], got {value!r}"
                )
        gate = self.gate
        if not (isinstance(gate, (int, float)) and math.isfinite(gate) and 0 <= gate <= 64):
            raise ConfigError(f"--gate must be a number in [0, 64], got {self.gate!r}")
        if not (isinstance(self.momentum_shift, int) and 1 <= self.momentum_shift <= 16):
            raise ConfigError(
                f"--momentum-shift must be an integer in 1..16, got {self.momentum_shift!r}"
            )

    @property
    def gate_q4(self) -> int:
        """The gate in sixteenths (the C code compares ``16 |c| <= gate_q4 * mad``)."""
        return round(self.gate * 16)


def add_settings_arguments(parser: Any) -> None:
    """The options of ``OnlineSettings`` (``--lr-hidden`` ...), declared once here; an
    option not given is None (``settings_from_arguments`` fills it in)."""
    group = parser.add_argument_group("device learning")
    for item in fields(OnlineSettings):
        group.add_argument(
            "--" + item.name.replace("_", "-"), type=int if item.type == "int" else float,
            default=None, help=f"{item.metadata['help']} (default: {item.default})",
        )  # fmt: skip


def settings_from_arguments(
    args: Any, base: OnlineSettings | None = None, source: str = ""
) -> OnlineSettings:
    """The ``OnlineSettings`` of parsed arguments, those not given from ``base``; with
    ``source`` (an export's), a given option that differs from ``base`` is refused."""
    values = asdict(base if base is not None else OnlineSettings())
    for item in fields(OnlineSettings):
        given = getattr(args, item.name)
        if given is None:
            continue
        if source and given != values[item.name]:
            raise ConfigError(
                f"--{item.name.replace('_', '-')} {given:g} differs from the "
                f"{values[item.name]:g} {source} was exported with: leave it out, or export again"
            )
        values[item.name] = given
    return OnlineSettings(**values)


def settings_from_mapping(data: Any, where: str) -> OnlineSettings:
    """``OnlineSettings`` read back from JSON, refused in one sentence when damaged."""
    names = [item.name for item in fields(OnlineSettings)]
    if not isinstance(data, dict) or sorted(data) != sorted(names):
        raise ConfigError(f"{where} does not hold the device learner's settings: export again")
    try:
        return OnlineSettings(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} holds damaged settings ({exc}): export again") from None


def round_shift(values: Any, shift: int) -> Any:
    """``floor(values / 2**shift + 1/2)`` in integers (``values`` itself for ``shift == 0``)."""
    if shift == 0:
        return values
    return (values + (1 << (shift - 1))) >> shift


@dataclass(frozen=True)
class Rate:
    """A per-layer step ``round(round(delta * mul / 2**shift) * x / 2**x_shift)``."""

    mul: int
    shift: int
    x_shift: int

    @classmethod
    def fit(cls, rate: float, delta_max: int, x_max: int, flag: str = "the rate") -> Rate:
        """The closest ``mul / 2**(shift + x_shift)`` to ``rate`` (15 significant bits) whose
        products stay inside int32 (``d * x``) and int64 (``delta * mul``)."""
        x_shift = 0
        if x_max > 1:  # room for fraction bits in d before d * x reaches int32
            d_max = delta_max * rate
            x_shift = max(0, min(20, math.floor(math.log2(INT32_ROOM / (2 * x_max * d_max)))))
        scaled = rate * 2**x_shift
        shift = max(0, 14 - math.floor(math.log2(scaled)))
        mul = round(scaled * 2**shift)
        # the largest step before the input: it must fit int32 with the input, and not be 0
        d_max = (delta_max * mul + (1 << max(shift - 1, 0))) >> shift if shift else delta_max * mul
        if mul >= 2**31 or delta_max * mul >= 2**62 or d_max * x_max > INT32_ROOM:
            raise ConfigError(
                f"{flag} is too large for the device's fixed point (a step of {rate:g} per unit "
                f"of delta and input overflows 32 bits): lower {flag}"
            )
        if shift > 62 or d_max == 0:
            raise ConfigError(
                f"{flag} is too small for the device's fixed point (a step of {rate:g} per unit "
                f"of delta and input rounds to 0): raise {flag}"
            )
        return cls(mul, shift, x_shift)

    def steps(self, delta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The update ``round(round(delta * mul / 2**shift) * x / 2**x_shift)``, (out, in)."""
        d = round_shift(delta * self.mul, self.shift)
        return np.asarray(round_shift(np.outer(d, x), self.x_shift))


@dataclass
class OnlineLayer:
    """One fully connected layer of the device learner.

    ``latent`` is the (out, in) int16-ranged latent weight matrix (``int64`` here); ``binary``
    whether its weights are ``sign(latent)``; a hidden layer has running statistics ``mu``
    and ``mad`` (Q8) and, under DFA and DRTP, a feedback matrix ``feedback`` (n_classes, out)
    in 8 bits with ``feedback_one`` the integer that stands for 1.0.
    """

    latent: np.ndarray
    binary: bool
    hidden: bool
    pixel_input: bool
    rate: Rate
    mu: np.ndarray | None = None
    mad: np.ndarray | None = None
    feedback: np.ndarray | None = None
    feedback_one: int = 1
    #: BP: the shift that keeps the error sent to the layer below inside int32
    back_shift: int = 0

    @property
    def n_in(self) -> int:
        return int(self.latent.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.latent.shape[0])

    def weights(self) -> np.ndarray:
        """The weights the forward uses: +-1, or the latent Q14 values."""
        if self.binary:
            return np.where(self.latent > 0, 1, -1)
        return self.latent

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """``W x`` exactly (float64 products of integers below 2**53, for BLAS speed)."""
        return np.rint(self.weights().astype(np.float64) @ x.astype(np.float64)).astype(np.int64)


@dataclass
class OnlineLearner:
    """The device's learner: predicts and learns one example at a time, in integers.

    Build one from a checkpoint's network and rule with ``online_learner``; the exported
    C library starts from the same state and takes the same steps.
    """

    layers: list[OnlineLayer]
    method: str
    settings: OnlineSettings
    streaming: bool = False
    #: pixels enter as ``2p - pixel_offset`` (the checkpoint's ``x = p / divisor - 1``, times
    #: ``pixel_offset = 2 divisor``)
    pixel_offset: int = 255
    #: the logits' difference in sixteenths is ``(s_max - s) * q_mul >> q_shift``
    q_mul: int = 1
    q_shift: int = 0
    exp_table: np.ndarray = field(default_factory=lambda: exp_table())
    steps: int = 0

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    # the forward ------------------------------------------------------------------------
    def _hidden(self, layer: OnlineLayer, x: np.ndarray, train: bool) -> tuple[Any, Any, Any]:
        """A hidden layer's output signs, centred pre-activation and open (learning) mask."""
        assert layer.mu is not None and layer.mad is not None
        z = layer.accumulate(x) << STAT_BITS
        shift = self.settings.momentum_shift
        if train:
            layer.mu += round_shift(z - layer.mu, shift)
        centred = z - layer.mu
        if train:
            layer.mad += round_shift(np.abs(centred) - layer.mad, shift)
        signs = np.where(centred > 0, 1, -1)
        gate = self.settings.gate_q4
        open_ = 16 * np.abs(centred) <= gate * layer.mad if gate else np.ones_like(signs, bool)
        return signs, centred, open_

    def _forward(self, pixels: np.ndarray, train: bool) -> tuple[list[Any], list[Any], Any]:
        x = 2 * np.asarray(pixels, dtype=np.int64).reshape(-1) - self.pixel_offset
        inputs, opens = [x], []
        for layer in self.layers[:-1]:
            x, _, open_ = self._hidden(layer, x, train)
            inputs.append(x)
            opens.append(open_)
        return inputs, opens, self.layers[-1].accumulate(x)

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """The output accumulators ``W h`` (the logits times ``n_in / logit_scale``)."""
        return self._forward(pixels, train=False)[2]

    def predict(self, pixels: np.ndarray) -> int:
        """The class of one image of uint8 pixels (the first of tied scores)."""
        return int(np.argmax(self.scores(pixels)))

    def predict_many(self, images: np.ndarray) -> np.ndarray:
        """``predict`` of every image, vectorised (the same numbers)."""
        x = (2 * images.reshape(len(images), -1).astype(np.int64) - self.pixel_offset).T
        for layer in self.layers[:-1]:
            assert layer.mu is not None
            z = layer.accumulate(x) << STAT_BITS
            x = np.where(z - layer.mu[:, None] > 0, 1, -1)
        return np.argmax(self.layers[-1].accumulate(x), axis=0)

    # the error --------------------------------------------------------------------------
    def error(self, scores: np.ndarray, label: int) -> np.ndarray:
        """Softmax cross-entropy's ``softmax - one_hot`` in Q16, from the exponential table."""
        q = np.minimum(((scores.max() - scores) * self.q_mul) >> self.q_shift, EXP_TABLE - 1)
        t = self.exp_table[q]
        e = (t << ERROR_BITS) // t.sum()
        e[label] -= 1 << ERROR_BITS
        return e

    # the step ---------------------------------------------------------------------------
    def learn(self, pixels: np.ndarray, label: int) -> None:
        """One online step on one image and its label."""
        inputs, opens, scores = self._forward(pixels, train=True)
        e = self.error(scores, label)
        deltas = self._deltas(e, label, opens)
        for layer, delta, x in zip(self.layers, deltas, inputs, strict=True):
            if delta is not None:
                layer.latent -= layer.rate.steps(delta, x)
                np.clip(layer.latent, -WEIGHT_ONE, WEIGHT_ONE, out=layer.latent)
        self.steps += 1

    def _deltas(self, e: np.ndarray, label: int, opens: list[Any]) -> list[Any]:
        """Each layer's delta (None: the layer does not learn), from the weights before the
        step."""
        hidden: list[Any] = [None] * (len(self.layers) - 1)
        if self.method in ("DFA", "DRTP"):
            for k, layer in enumerate(self.layers[:-1]):
                assert layer.feedback is not None
                if self.method == "DFA":
                    delta = layer.feedback.T @ e
                else:
                    delta = layer.feedback[label].astype(np.int64) << ERROR_BITS
                hidden[k] = np.where(opens[k], delta, 0)
        elif self.method == "GD":
            delta = e
            for k in range(len(self.layers) - 2, -1, -1):
                above = self.layers[k + 1]
                back = above.weights().T @ delta
                delta = np.where(opens[k], round_shift(back, above.back_shift), 0)
                hidden[k] = delta
        return [*hidden, e]

    # the record stream ------------------------------------------------------------------
    def run_records(self, data: bytes) -> list[str]:
        """Run a record stream as ``learn_example.c`` does and return the lines it prints:
        records of ``2 + n_inputs`` bytes (kind, label, pixels); kind 1 learns, 0 predicts,
        2 prints the state's hash, 3 the whole state."""
        size = 2 + self.n_inputs
        if len(data) % size:
            raise ConfigError(
                f"the record stream has {len(data):,} bytes, not a multiple of {size} (kind, "
                f"label and {self.n_inputs} pixels): it is cut or for another model"
            )
        records = np.frombuffer(data, np.uint8).reshape(-1, size)
        lines: list[str] = []
        for record in records:
            kind, label, pixels = int(record[0]), int(record[1]), record[2:]
            if label >= self.n_classes or kind > 3:
                raise ConfigError(
                    f"a record has kind {kind} and label {label}: kinds are 0 to 3 and labels "
                    f"0 to {self.n_classes - 1}"
                )
            if kind == 1:
                self.learn(pixels, label)
            elif kind == 0:
                lines.append(str(self.predict(pixels)))
            elif kind == 2:
                lines.append(f"state {self.state_hash():016x}")
            else:
                lines.extend(
                    " ".join([name, *(str(int(v)) for v in values)])
                    for name, values in self.state_rows()
                )
        return lines

    # the state --------------------------------------------------------------------------
    def state_rows(self) -> list[tuple[str, np.ndarray]]:
        """The state in the C code's order: each layer's latent rows, then its ``mu`` and
        ``mad``."""
        rows: list[tuple[str, np.ndarray]] = []
        for k, layer in enumerate(self.layers):
            rows.extend((f"layer{k}.latent", row) for row in layer.latent)
            if layer.mu is not None and layer.mad is not None:
                rows += [(f"layer{k}.mu", layer.mu), (f"layer{k}.mad", layer.mad)]
        return rows

    def state_hash(self) -> int:
        """64-bit FNV-1a over every state value as a little-endian int32, in
        ``state_rows`` order (what ``bnn_learn_state_hash`` computes)."""
        data = b"".join(values.astype("<i4").tobytes() for _, values in self.state_rows())
        h = 0xCBF29CE484222325
        for byte in data:
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        return h

    @property
    def pixel_max(self) -> int:
        """The largest ``|2p - pixel_offset|``."""
        return max(self.pixel_offset, 510 - self.pixel_offset)

    def check_ranges(self) -> None:
        """Refuse a learner whose sums could overflow the C code's int32 (one sentence)."""
        for k, layer in enumerate(self.layers):
            x_max = self.pixel_max if layer.pixel_input else 1
            z_max = layer.n_in * x_max * (1 if layer.binary else WEIGHT_ONE)
            if layer.hidden and z_max << (STAT_BITS + 1) > INT32_ROOM:
                raise ConfigError(
                    f"layer {k} has {layer.n_in} inputs: its running statistics would overflow "
                    "the device's 32-bit integers; use fewer inputs per layer"
                )
            if not layer.hidden and z_max > INT32_ROOM:
                raise ConfigError(
                    f"the output layer's sums would overflow 32-bit integers ({layer.n_in} inputs)"
                )


def exp_table() -> np.ndarray:
    """``round(2**15 exp(-q / 16))`` for q = 0 .. 256 (int64)."""
    q = np.arange(EXP_TABLE, dtype=np.float64)
    return np.rint(np.exp(-q / EXP_STEPS) * (1 << EXP_BITS)).astype(np.int64)


def quantize_feedback(matrix: np.ndarray) -> tuple[np.ndarray, int]:
    """A feedback matrix in 8 bits and the integer that stands for 1.0: 1-bit and ternary
    matrices exactly (1), others ``round(127 B / max|B|)`` (``127 / max|B|``)."""
    values = np.asarray(matrix, dtype=np.float64)
    if np.isin(values, (-1.0, 0.0, 1.0)).all():
        return values.astype(np.int64), 1
    top = float(np.abs(values).max())
    if top == 0:
        return np.zeros(values.shape, np.int64), 1
    return np.rint(values * (127 / top)).astype(np.int64), max(1, round(127 / top))


def check_network(network: Network, method: str) -> None:
    """Refuse, in one sentence, a network or rule the device learner does not run."""
    if method not in DEVICE_RULES:
        raise ConfigError(
            f"the device learns with {', '.join(DEVICE_RULES)}, not {method}: train the "
            "checkpoint with one of those (-m)"
        )
    for k, block in enumerate(network.blocks):
        weight = block.weight_layer
        if not isinstance(weight, Linear):
            raise ConfigError(
                "the device learner runs binary MLPs: this checkpoint has convolutions; "
                "export it for inference only (without --learn)"
            )
        others = [
            layer
            for layer in block.layers
            if layer is not weight
            and layer is not block.activation
            and not isinstance(layer, (Scaler, BatchNorm, Flatten))
        ]
        if others:
            raise ConfigError(f"block {k} holds {others[0].kind}, which the device cannot run")
        hidden = block is not network.output_block
        if hidden and not (weight.quantizer.binary and block.activation.activation.binary_output):
            raise ConfigError(
                f"hidden layer {k} must have binary weights and a sign activation (--binarize "
                "with --hidden-act sign, signsat or signtanh) for the device learner"
            )


def online_learner(
    network: Network,
    rule: Any,
    method: str,
    settings: OnlineSettings,
    streaming: bool = False,
    pixel_divisor: float = 127.5,
) -> OnlineLearner:
    """The device learner starting from a checkpoint's network and rule (its latent weights,
    in Q14, and its feedback matrices, in 8 bits); running statistics start at 0. Pixels
    scale as the network's (``x = p / pixel_divisor - 1``)."""
    check_network(network, method)
    offset = 2 * pixel_divisor
    if offset != round(offset) or not 1 <= offset <= 510:
        raise ConfigError(
            f"the device learner takes pixels as 2p - 2 * divisor in integers: the checkpoint's "
            f"pixel divisor {pixel_divisor:g} is not a multiple of 1/2 in [0.5, 255]"
        )
    blocks = network.blocks
    feedback = list(getattr(rule, "feedback", None) or [])
    layers: list[OnlineLayer] = []
    n_classes = network.n_classes
    # the largest |delta| of each layer, for the rates' ranges (BP below)
    e_max = 1 << ERROR_BITS
    for k, block in enumerate(blocks):
        weight = block.weight_layer
        latent = np.asarray(network.kernels.to_host(weight.weight.value), dtype=np.float64).T
        q = np.clip(np.rint(latent * WEIGHT_ONE), -WEIGHT_ONE, WEIGHT_ONE).astype(np.int64)
        hidden = k < len(blocks) - 1
        layer = OnlineLayer(q, bool(weight.quantizer.binary), hidden, k == 0, Rate(1, 0, 0))
        if hidden:
            layer.mu = np.zeros(layer.n_out, np.int64)
            layer.mad = np.zeros(layer.n_out, np.int64)
            if method in ("DFA", "DRTP"):
                matrix = network.kernels.to_host(feedback[k]).reshape(n_classes, -1)
                layer.feedback, layer.feedback_one = quantize_feedback(matrix)
        layers.append(layer)
    learner = OnlineLearner(
        layers, method, settings, streaming=streaming, pixel_offset=round(offset)
    )
    output = layers[-1]
    unit = 1 if output.binary else WEIGHT_ONE
    # q = (s_max - s) * 16 * logit_scale / (n_in * unit), as mul >> shift
    learner.q_mul, learner.q_shift = _ratio(EXP_STEPS * settings.logit_scale / (output.n_in * unit))
    learner.check_ranges()
    # the rates: delta's integer stands for delta_float * scale; x's for x_float * x_scale
    deltas_max, scales = _delta_ranges(layers, method, n_classes, e_max)
    for k, layer in enumerate(layers):
        # x's integer stands for x_float * x_scale: pixels 2p - D for (2p - D) / D
        x_max, x_scale = (learner.pixel_max, offset) if layer.pixel_input else (1, 1.0)
        lr = settings.lr_hidden if layer.hidden else settings.lr_output
        gain = 1.0 if layer.hidden else settings.logit_scale
        per_unit = lr * gain * WEIGHT_ONE / (layer.n_in * scales[k] * x_scale)
        flag = "--lr-hidden" if layer.hidden else "--lr-output"
        layer.rate = Rate.fit(per_unit, max(1, deltas_max[k]), x_max, flag)
    return learner


def _ratio(value: float) -> tuple[int, int]:
    """``value`` as ``mul / 2**shift`` with 15 significant bits."""
    shift = max(0, 14 - math.floor(math.log2(value)))
    return round(value * 2**shift), shift


def _delta_ranges(
    layers: list[OnlineLayer], method: str, n_classes: int, e_max: int
) -> tuple[list[int], list[float]]:
    """Each layer's largest |delta| and the integer that stands for a delta of 1.0; sets the
    BP back shifts that keep every delta inside int32."""
    n = len(layers)
    deltas_max, scales = [0] * n, [1.0] * n
    deltas_max[-1], scales[-1] = e_max, float(e_max)
    if method in ("DFA", "DRTP"):
        for k, layer in enumerate(layers[:-1]):
            assert layer.feedback is not None
            top = int(np.abs(layer.feedback).max())
            deltas_max[k] = top * e_max * (n_classes if method == "DFA" else 1)
            scales[k] = float(layer.feedback_one * e_max)
    elif method == "GD":
        for k in range(n - 2, -1, -1):
            above = layers[k + 1]
            # a real layer's Q14 weights: the sum is shifted back by 14 bits, and by as many
            # more as keep it inside int32; each extra bit halves what a delta of 1.0 is
            unit_bits = 0 if above.binary else WEIGHT_BITS
            back = above.n_out * (1 << unit_bits) * deltas_max[k + 1]
            extra = max(0, math.ceil(math.log2(max(1, back >> unit_bits))) - 28)
            above.back_shift = unit_bits + extra
            deltas_max[k] = -(-back >> above.back_shift)
            scales[k] = scales[k + 1] / 2**extra
    return deltas_max, scales
