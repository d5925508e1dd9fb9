"""float64 convnet training gives the numbers it gave before the convolution speed work: a few
steps of every rule on a small real and binary convnet, against the weights that commit
ad45f9d's code computed (tests/data/conv_steps_float64_ad45f9d.npz), with the numpy and the
numba kernels (numba's binary convolution now counts bits).

The reference was computed on another machine, whose BLAS sums in another order: the weights
agree within :data:`ULPS` units in the last place of each array's largest value (measured: 4 at
most between an AVX-512 and an AVX2 machine), not bit for bit. Bit-for-bit checks compare two
paths computed in the same test (``test_backends``, ``test_spec_step``, ``test_lifecycle``).

Recompute the reference (after a change that is meant to change the numbers)::

    python tests/test_conv_reference.py --write
"""

from pathlib import Path

import numpy as np
import pytest

from binary_nn import RULES, SGD, MSELoss, classifier, train_step
from binary_nn.nn import kernels

REFERENCE = Path(__file__).parent / "data" / "conv_steps_float64_ad45f9d.npz"
#: how far a weight may be from the reference, in units in the last place of the array's
#: largest value (float64: 2**-52 of it)
ULPS = 64
RULE_NAMES = ("GD", "DFA", "DRTP")
VARIANTS = {
    "tanh-real": {},
    "signsat-binary-bn": {"batch_norm": True, "binarize": True, "hidden_activation": "signsat"},
}


def trained(kernel_name, variant, rule_name, steps=4):
    """The state of the small convnet after ``steps`` float64 steps (as the reference's)."""
    network = classifier(
        (12, 12, 1), [16], 10, conv="6c5,mp2,8c3,mp2", dtype=np.float64,
        rng=np.random.default_rng(7), kernels=kernels.kernels_named(kernel_name),
        **VARIANTS[variant],
    )  # fmt: skip
    rule = RULES.get(rule_name)(network, np.random.default_rng(8))
    optimizer = SGD(network.parameters(), 1e-3)
    data = np.random.default_rng(9)
    for _ in range(steps):
        x = data.uniform(0, 1, (16, 12, 12, 1))
        train_step(network, rule, optimizer, MSELoss(), x, data.integers(0, 10, 16))
    return {key: np.asarray(value) for key, value in network.named_state().items()}


@pytest.mark.parametrize("rule_name", RULE_NAMES)
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("kernel_name", ["numpy", "numba"])
def test_float64_conv_steps_equal_the_reference_within_rounding(kernel_name, variant, rule_name):
    if kernel_name == "numba" and kernels.NUMBA is None:
        pytest.skip("numba is not installed (pip install -e '.[fast]')")
    state = trained(kernel_name, variant, rule_name)
    with np.load(REFERENCE) as reference:
        prefix = f"{kernel_name}/{variant}/{rule_name}/"
        expected = {k[len(prefix) :]: reference[k] for k in reference.files if k.startswith(prefix)}
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        tolerance = ULPS * np.spacing(np.abs(value).max())
        np.testing.assert_allclose(state[key], value, rtol=0, atol=tolerance, err_msg=key)
    untrained = trained(kernel_name, variant, rule_name, steps=0)
    assert any(not np.array_equal(untrained[k], v) for k, v in state.items())  # it trained


def write_reference(path: Path = REFERENCE) -> None:
    """Compute every case on this machine and store it as the reference."""
    arrays = {}
    for kernel_name in ("numpy", "numba"):
        for variant in VARIANTS:
            for rule_name in RULE_NAMES:
                state = trained(kernel_name, variant, rule_name)
                arrays.update(
                    {f"{kernel_name}/{variant}/{rule_name}/{k}": v for k, v in state.items()}
                )
    np.savez(path, **arrays)
    print(f"wrote {len(arrays)} arrays to {path}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_conv_reference.py --write")
    if kernels.NUMBA is None:
        sys.exit("numba is needed to compute the numba cases: pip install -e '.[fast]'")
    write_reference()
