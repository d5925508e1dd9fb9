"""One full-batch training step of every rule x option against the behaviour spec, written out here.

The reference below uses plain numpy and nothing of binary_nn: the forward of the spec's model,
the loss error ``e = 2 (y - t)``, the true output-layer gradient (no weight STE there, binarized
or not), each rule's hidden signal (chained backprop, ``e @ B_l``, ``y01 @ P_l``) through the
activation derivative, batch norm and scaler, the weight STE of hidden layers, and SGD with
clipping. The package's one :func:`~binary_nn.learning.train_step` must give the same numbers.
"""

import numpy as np
import pytest

from binary_nn import RULES, SGD, MSELoss, classifier, train_step

EPS = 1e-3
LR = 0.05

OPTIONS = {
    "tanh": dict(hidden_activation="tanh", init=0.5),
    "signsat+bn+binary+clip": dict(
        hidden_activation="signsat", batch_norm=True, binarize=True, clip=0.3, init=0.5
    ),
    "signtanh+sn+binary+binarize_last+tanh-STE": dict(
        hidden_activation="signtanh",
        scale=True,
        binarize=True,
        binarize_last=True,
        weight_ste="tanh",
        init=1.5,
    ),
    "sign+bn+binary+sat-STE": dict(
        hidden_activation="sign", batch_norm=True, binarize=True, weight_ste="sat", init=1.5
    ),
}


def sign(v):
    return np.where(v > 0, 1.0, -1.0)


ACTIVATION = {  # forward, derivative at the pre-activation
    "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2),
    "sign": (sign, np.ones_like),
    "signsat": (sign, lambda a: (np.abs(a) < 1) * 1.0),
    "signtanh": (sign, lambda a: 1 - np.tanh(a) ** 2),
}
STE = {
    "identity": lambda w: np.ones_like(w),
    "sat": lambda w: (np.abs(w) < 1) * 1.0,
    "tanh": lambda w: 1 - np.tanh(w) ** 2,
}


def error_paths(rule, weights, feedback, q_hidden, q_last):
    """The matrix each layer sends the error down with, per chained rule (None: the layer
    sends nothing down, a direct rule): ``q(W)`` (GD), ``B`` (FA), ``sign(q(W)) * M`` with
    ``M`` the weights' scale (uSF), fixed (frSF) or drawn this step from the rule's generator
    (brSF, seed 2, layer by layer)."""
    q = [q_hidden(w) for w in weights[:-1]] + [q_last(weights[-1])]
    scales = [np.abs(m).max() for m in q]
    if rule == "GD":
        return q
    if rule == "FA":
        return [None, *feedback]
    if rule == "uSF":
        return [sign(m) * s for m, s in zip(q, scales, strict=True)]
    if rule == "frSF":
        return [None, *(sign(m) * f for m, f in zip(q[1:], feedback, strict=True))]
    if rule == "brSF":
        draws = np.random.default_rng(2)
        return [None, *(sign(m) * draws.uniform(0, 1, size=m.shape) * s
                        for m, s in zip(q[1:], scales[1:], strict=True))]  # fmt: skip
    return [None] * len(weights)


def reference_step(weights, feedback, x, labels, rule, opt):
    """The behaviour spec, one step: the new weights, gammas, betas and running statistics."""
    n_classes = weights[-1].shape[1]
    t = -np.ones((len(x), n_classes))
    t[np.arange(len(x)), labels] = 1
    y01 = (t + 1) / 2
    f, df = ACTIVATION[opt.get("hidden_activation", "tanh")]
    bn, sn = opt.get("batch_norm", False), opt.get("scale", False)
    q_hidden = sign if opt.get("binarize") else (lambda w: w)
    q_last = sign if opt.get("binarize_last") else (lambda w: w)
    ste = STE[opt.get("weight_ste", "identity")] if opt.get("binarize") else STE["identity"]

    # forward, keeping what the backward steps need
    h, cache = x, []
    for w in weights[:-1]:
        a = h @ q_hidden(w)
        if sn:
            a = a / w.shape[0]
        if bn:
            mean, var = a.mean(0), a.var(0)
            x_hat = (a - mean) / np.sqrt(var + EPS)
            z = x_hat  # gamma = 1, beta = 0 at initialisation
        else:
            mean = var = x_hat = None
            z = a
        cache.append(dict(h_in=h, w=w, z=z, x_hat=x_hat, var=var, mean=mean))
        h = f(z)
    y = np.tanh(h @ q_last(weights[-1]))
    e = 2 * (y - t)

    # the output layer: its true gradient, with no weight STE (the behaviour spec)
    delta = e * (1 - y**2)
    grads = [None] * len(weights)
    grads[-1] = h.T @ delta
    paths = error_paths(rule, weights, feedback, q_hidden, q_last)
    chained = delta @ paths[-1].T if paths[-1] is not None else None  # to the last hidden
    gammas, betas = [], []
    for k in range(len(weights) - 2, -1, -1):
        c = cache[k]
        if rule in ("GD", "FA", "uSF", "brSF", "frSF"):
            signal = chained
        elif rule == "output-only":
            signal = np.zeros_like(c["z"])
        elif rule == "DFA":
            signal = e @ feedback[k]
        else:
            signal = y01 @ feedback[k]
        dz = signal * df(c["z"])
        if bn:
            gammas.insert(0, np.sum(dz * c["x_hat"], axis=0))
            betas.insert(0, np.sum(dz, axis=0))
            dx_hat = dz  # gamma = 1
            n = len(x)
            da = (n * dx_hat - dx_hat.sum(0) - c["x_hat"] * np.sum(dx_hat * c["x_hat"], 0)) / (
                n * np.sqrt(c["var"] + EPS)
            )
        else:
            da = dz
        if sn:
            da = da / c["w"].shape[0]
        grads[k] = (c["h_in"].T @ da) * ste(c["w"])
        chained = da @ paths[k].T if paths[k] is not None else None

    clip = opt.get("clip", 0.0)
    new_weights = []
    for w, g in zip(weights, grads, strict=True):
        updated = w - LR * g
        new_weights.append(np.clip(updated, -clip, clip) if clip > 0 else updated)
    state = {f"linear.{k}.weight": w for k, w in enumerate(new_weights)}
    if bn:
        for k, (g_gamma, g_beta) in enumerate(zip(gammas, betas, strict=True)):
            state[f"batchnorm.{k}.gamma"] = 1 - LR * g_gamma
            state[f"batchnorm.{k}.beta"] = -LR * g_beta
            state[f"batchnorm.{k}.running_mean"] = cache[k]["mean"]  # the first batch sets them
            state[f"batchnorm.{k}.running_var"] = cache[k]["var"]
    return state


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize(
    "rule_name", ["GD", "DFA", "DRTP", "FA", "uSF", "brSF", "frSF", "output-only"]
)
def test_one_full_batch_step_follows_spec(rule_name, option, array_backend):
    opt = OPTIONS[option]
    rng = np.random.default_rng(11)
    network_options = {k: v for k, v in opt.items() if k != "clip"}
    network = classifier(
        5, [6, 4], 3, last_activation="tanh", dtype=np.float64, rng=rng,
        kernels=array_backend, **network_options,
    )  # fmt: skip
    rule = RULES.get(rule_name)(network, np.random.default_rng(2))
    host = array_backend.to_host
    weights = [np.array(host(block.weight_layer.weight.value)) for block in network.blocks]
    feedback = [np.array(host(m)) for m in rule.feedback]
    x = rng.normal(size=(16, 5))
    labels = rng.integers(0, 3, size=16)
    expected = reference_step(weights, feedback, x, labels, rule_name, opt)

    optimizer = SGD(network.parameters(), LR, opt.get("clip", 0.0), kernels=array_backend)
    batch, targets = array_backend.asarray(x), array_backend.asarray(labels)
    train_step(network, rule, optimizer, MSELoss(), batch, targets)

    state = {key: host(value) for key, value in network.named_state().items()}
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(state[key], value, rtol=1e-10, atol=1e-12, err_msg=key)
    # the step changed every weight matrix it trains (a test that could not fail would not)
    for k, w in enumerate(weights):
        learns = rule_name != "output-only" or k == len(weights) - 1
        if learns or not opt.get("clip"):  # clipping moves even a layer that does not learn
            assert np.array_equal(state[f"linear.{k}.weight"], w) != learns


def test_output_layer_takes_the_plain_gradient_even_with_a_weight_ste():
    """--binarize_last --weight-ste tanh: the hidden layers' gradients are shaped, the output
    layer's are not (as the published code does)."""
    network = classifier(
        4, [3], 2, binarize=True, binarize_last=True, weight_ste="tanh", init=1.5,
        dtype=np.float64, rng=np.random.default_rng(0),
    )  # fmt: skip
    hidden, output = (block.weight_layer for block in network.blocks)
    assert hidden.quantizer.ste.name == "tanh" and output.quantizer.ste.name == "identity"
