"""Keras' moving variance against torch.nn.BatchNorm1d/2d/3d's running_var.

The same batches (parity.cases: ranks 2 to 5, n values per channel), the
same update (Keras momentum m, PyTorch momentum 1 - m), both starting from
(0, 1). PyTorch updates running_var with the unbiased batch variance:
patched Keras must give the same numbers on every backend, pristine Keras
the biased rule's.

Tolerance, 1e-6 relative: on the TensorFlow backend both sides compute in
float64 (rounding 2**-53 = 1e-16 per operation). On the JAX and PyTorch
backends Keras computes a float64 layer in float32
(parity.keras_moving_statistics), on inputs that are float32 values: an
update rounds about ten times (mean, deviations, squares, their mean, the
factor, two products, the sum), each by at most 2**-24 = 6e-8 relative to
values of the size of the moving variance (data N(2, 3)), so < 6e-7; the
moving average does not accumulate it (an old step's error is scaled by m
at every step). The measured differences are in docs/analysis.md. The two
rules differ by n / (n - 1) - 1 >= 1.6e-2 on the batch terms, which carry
65% of the final value.
"""

import importlib.util

import numpy as np
import pytest

from bnref import moving_statistics
from conftest import BACKENDS
from parity import COUNTS
from parity import MOMENTUM
from parity import RANKS
from parity import assert_rule
from parity import cases
from parity import fused_running_statistics
from parity import keras_moving_statistics
from parity import max_relative_difference
from parity import shape
from parity import torch_device
from parity import torch_running_statistics

RTOL = 1e-6


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("name", BACKENDS)
def test_running_var_of_pytorch(
    name, rank, n, statistics, patched, rule, other_rule, record
):
    import torch

    case = f"rank{rank}-n{n}"
    batches = cases()[case][0]
    keras_stats = statistics(name)[case + ".mean"], statistics(name)[case + ".var"]
    torch_mean, torch_var = torch_running_statistics(batches)
    # PyTorch follows the unbiased rule of the float64 reference ...
    assert_rule((torch_mean, torch_var), batches, "unbiased", "biased", RTOL)
    # ... and Keras the rule of its build: parity exactly when patched.
    assert_rule(keras_stats, batches, rule, other_rule, RTOL)
    difference = max_relative_difference(keras_stats[1], torch_var)
    assert (difference <= RTOL) == patched, difference
    record(
        scenario="pytorch-parity",
        backend=name,
        rank=rank,
        n=n,
        max_relative_difference=difference,
        torch=torch.__version__,
        device=torch_device(),
    )


@pytest.mark.parametrize("rank", [2, 4])
def test_one_value_per_channel(rank, rule, record):
    # A difference by design: PyTorch refuses to train on one value per
    # channel; Keras normalizes it (to 0) and updates the moving variance
    # with the batch variance, 0, times a factor 1 (no unbiased estimate
    # exists): finite, m * 1 + (1 - m) * 0. Both builds agree here, since
    # 0 times any factor is 0: this test cannot tell them apart.
    batches = [np.full(shape(rank, 1), 2.0)]
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch_running_statistics(batches)
    mean, var = keras_moving_statistics(batches)
    expected = moving_statistics(batches, rule, MOMENTUM)
    np.testing.assert_allclose(var, expected[1], rtol=RTOL)
    np.testing.assert_allclose(var, MOMENTUM, rtol=RTOL)
    figures = {"keras_moving_variance": float(var[0])}
    if rank == 4 and importlib.util.find_spec("tensorflow"):
        # So does TF's fused kernel.
        _, fused_var = fused_running_statistics(batches)
        np.testing.assert_allclose(fused_var, MOMENTUM, rtol=RTOL)
        figures["fused_moving_variance"] = float(fused_var[0])
    record(scenario="one-value-per-channel", rank=rank, pytorch="ValueError", **figures)
