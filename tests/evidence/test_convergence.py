"""The convergence scenario of tests/keras, measured on PyTorch and TF's
fused kernel for the comparison table of docs/analysis.md: batches of n
N(0, 1) values in 1024 channels, momentum 0.9, 200 steps, the same seeds
and float32 values as tests/keras (as NHWC images of 1 x 1 pixel for
torch.nn.BatchNorm2d and FusedBatchNormV3). Keras runs on the same batches:
the same numbers as PyTorch exactly when patched.

Tolerances: these float32 computations round within 1e-5 relative over the
recursion (a few roundings of 2**-24 = 6e-8 per update, n <= 32 values per
reduction); the convergence bound is sampling error, as in tests/keras.
"""

import importlib.util

import numpy as np
import pytest

from bnref import convergence_tolerance
from bnref import moving_statistics
from parity import keras_moving_statistics
from parity import max_relative_difference
from parity import torch_device
from parity import torch_running_statistics

RTOL = 1e-5
MOMENTUM, CHANNELS, STEPS = 0.9, 1024, 200


@pytest.mark.parametrize("n", [2, 3, 4, 8, 32])
def test_convergence(n, patched, rule, other_rule, record):
    import torch

    rng = np.random.default_rng(n)  # tests/keras' batches
    batches = [rng.normal(size=(n, CHANNELS)).astype("float32") for _ in range(STEPS)]
    # float64 references of both rules, on the same float32 values.
    _, unbiased = moving_statistics(batches, "unbiased", MOMENTUM)
    _, expected = moving_statistics(batches, rule, MOMENTUM)
    _, other = moving_statistics(batches, other_rule, MOMENTUM)

    # NHWC for both: BatchNorm2d runs cuDNN's kernel where a GPU is visible.
    nhwc = [batch.reshape(n, 1, 1, CHANNELS) for batch in batches]
    measured = {"pytorch": torch_running_statistics(nhwc, MOMENTUM, "float32")[1]}
    if importlib.util.find_spec("tensorflow"):
        from parity import fused_running_statistics

        measured["tf-fusedbatchnormv3"] = fused_running_statistics(nhwc, MOMENTUM)[1]
    for variance in measured.values():
        np.testing.assert_allclose(variance, unbiased, rtol=RTOL)

    _, keras_var = keras_moving_statistics(batches, MOMENTUM, dtype="float32")
    np.testing.assert_allclose(keras_var, expected, rtol=RTOL)
    assert max_relative_difference(keras_var, other) > RTOL
    difference = max_relative_difference(keras_var, measured["pytorch"])
    assert (difference <= RTOL) == patched, difference

    # The mean over channels converges to E[unbiased variance] = 1, within
    # 5 standard deviations of its sampling error (see tests/keras).
    tolerance = convergence_tolerance(n, "unbiased", MOMENTUM, CHANNELS)
    for implementation, variance in measured.items():
        converged = float(np.mean(variance))
        assert abs(converged - 1.0) < tolerance
        record(
            implementation=implementation,
            backend=None,
            scenario="convergence",
            n=n,
            converged=converged,
            expected=1.0,
            tolerance=tolerance,
            version=torch.__version__ if implementation == "pytorch" else tf_version(),
            device=torch_device() if implementation == "pytorch" else "default",
        )
    record(
        scenario="keras-pytorch-convergence",
        n=n,
        converged=float(np.mean(keras_var)),
        max_relative_difference=difference,
    )


def tf_version():
    import tensorflow as tf

    return tf.__version__
