"""Keras' moving variance against the running variance that TensorFlow's
fused kernel returns: tf.raw_ops.FusedBatchNormV3 (is_training=True,
exponential_avg_factor = 1 - momentum), which tf-keras uses for 4D and 5D
inputs, on the NHWC parity cases (n values per channel over N, H and W).
It runs on the default device: cuDNN's kernel where a GPU is visible.

Tolerance, 1e-5 relative: the kernel computes in float32; even a sequential
sum of n <= 64 values rounds within n * 2**-24 = 4e-6 relative, and the
update adds a few roundings. The rules differ by >= 1.6e-2 on the batch terms.
"""

import pytest

from conftest import BACKENDS
from parity import COUNTS
from parity import assert_rule
from parity import cases
from parity import fused_running_statistics
from parity import max_relative_difference

RTOL = 1e-5


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("name", BACKENDS)
def test_running_variance_of_fused_batch_norm_v3(
    name, n, statistics, patched, rule, other_rule, record
):
    tf = pytest.importorskip("tensorflow")
    case = f"rank4-n{n}"
    batches = cases()[case][0]
    fused = fused_running_statistics(batches)
    assert_rule(fused, batches, "unbiased", "biased", RTOL)
    keras_stats = statistics(name)[case + ".mean"], statistics(name)[case + ".var"]
    assert_rule(keras_stats, batches, rule, other_rule, RTOL)
    difference = max_relative_difference(keras_stats[1], fused[1])
    assert (difference <= RTOL) == patched, difference
    record(
        scenario="fused-parity",
        backend=name,
        n=n,
        max_relative_difference=difference,
        tensorflow=tf.__version__,
    )
