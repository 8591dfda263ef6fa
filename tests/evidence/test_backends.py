"""Keras' TensorFlow, JAX and PyTorch backends give the same moving
statistics for the same inputs, following the rule of the installed build:
every parity case, a channels-first case, a masked case, and `fit` with a
partial last batch (its compiled train step: tf.function, jax.jit, torch).

Tolerance, 1e-6 relative, as in test_pytorch.py: TensorFlow computes these
float64 layers in float64, JAX and PyTorch in float32 (< 6e-7 of rounding).
"""

import numpy as np
import pytest

from conftest import BACKENDS
from parity import assert_rule
from parity import cases
from parity import fit_data
from parity import max_relative_difference

RTOL = 1e-6


def inputs(case):
    """(batches, axis, masks) of a case."""
    return (fit_data()[1], -1, None) if case == "fit" else cases()[case]


@pytest.mark.parametrize("case", [*cases(), "fit"])
def test_backends_agree(case, statistics, rule, other_rule, record):
    batches, axis, masks = inputs(case)
    results = {name: statistics(name) for name in BACKENDS}
    for result in results.values():
        actual = result[case + ".mean"], result[case + ".var"]
        assert_rule(actual, batches, rule, other_rule, RTOL, axis=axis, masks=masks)
    variances = [result[case + ".var"] for result in results.values()]
    difference = max(
        max_relative_difference(a, b) for a in variances for b in variances
    )
    assert difference <= RTOL
    means = np.array([result[case + ".mean"] for result in results.values()])
    assert np.ptp(means, axis=0).max() <= RTOL * 3.0  # the data's sd: 3
    record(
        scenario="backend-agreement",
        backend=",".join(results),
        case=case,
        max_relative_difference=difference,
    )
