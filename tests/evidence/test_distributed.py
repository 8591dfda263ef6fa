"""Moving statistics under distribution.

TensorFlow, tf.distribute.MirroredStrategy over two replicas (two GPUs where
there are two, else two logical CPUs, see conftest.py), in `fit` and in a
custom `strategy.run` loop, with global batches that split unevenly:

- synchronized=True: ops.moments all-reduces the batch statistics, and the
  correction uses the global count: every replica's copy of the moving
  variance follows the rule on the global batches.
- synchronized=False: each replica normalizes with its own batch, and in
  Keras 3 the moving variables have aggregation NONE: each replica's copy
  (`.values`) keeps its own value, following the rule on its own batches,
  with its own count.

JAX, keras.distribution.DataParallel over two devices (XLA's host devices
where there are no two accelerators): the moving statistics equal those of
one device on the same global batches.

Tolerance, 1e-5 relative: float32 layers (2**-24 = 6e-8 per rounding);
an all-reduce or a sharded reduction sums in another order than one device,
and a few roundings per update stay well below it. The rules differ by
n / (n - 1) - 1 >= 1/7 on the batch terms here.
"""

import numpy as np
import pytest

from bnref import batch_moments
from bnref import moving_statistics
from parity import MOMENTUM
from parity import as_float32_values
from parity import assert_rule
from parity import max_relative_difference

RTOL = 1e-5


def split(batch):
    """Two replicas' shares of a global batch: the first replica gets the
    extra sample, as tf.data does when `fit` distributes a batch."""
    half = -(-len(batch) // 2)
    return batch[:half], batch[half:]


@pytest.fixture(scope="module")
def strategy():
    """One MirroredStrategy for all tests: with a second one in the same
    process, `fit` failed here in its collective ops (CollectiveReduceV2:
    shape mismatch between the replicas)."""
    tf = pytest.importorskip("tensorflow")
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus if len(gpus) >= 2 else tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "conftest.py makes two logical CPUs"
    return tf.distribute.MirroredStrategy([device.name for device in devices[:2]])


def local_count_variance(batches, replica, momentum=MOMENTUM):
    """The moving variance if the correction of the all-reduced variance
    used a replica's own count instead of the global one."""
    var = 1.0
    for batch in batches:
        _, batch_var, _ = batch_moments(batch)
        local = batch_moments(split(batch)[replica])[2]
        var = momentum * var + (1 - momentum) * batch_var * local / (local - 1)
    return var


def check_replicas(layer, batches, synchronized, rule, other_rule, record, loop):
    """Asserts each replica's copy of the moving statistics; records them."""
    from keras import ops

    shares = list(zip(*(split(batch) for batch in batches), strict=True))
    means = [v.numpy() for v in layer.moving_mean.value.values]
    variances = [v.numpy() for v in layer.moving_variance.value.values]
    assert len(variances) == 2
    # Outside the replicas, the variable reads as the first replica's copy.
    np.testing.assert_array_equal(
        ops.convert_to_numpy(layer.moving_variance), variances[0]
    )
    figures = []
    for replica in range(2):
        own = batches if synchronized else shares[replica]
        actual = means[replica], variances[replica]
        assert_rule(actual, own, rule, other_rule, RTOL, scale=2.0)
        # Nor does it follow the other kind of update: with synchronized=True,
        # the global variance corrected with the replica's own count; with
        # synchronized=False, the rule on the global batches.
        if not synchronized:
            alternative = moving_statistics(batches, rule, MOMENTUM)[1]
        elif rule == "unbiased":
            alternative = local_count_variance(batches, replica)
        else:
            alternative = None  # the biased rule involves no count
        if alternative is not None:
            assert max_relative_difference(variances[replica], alternative) > RTOL
        expected = moving_statistics(own, rule, MOMENTUM)[1]
        figures.append(
            {
                "moving_variance": variances[replica].tolist(),
                "count": [int(batch_moments(b)[2]) for b in own],
                "max_relative_error": max_relative_difference(
                    variances[replica], expected
                ),
            }
        )
    record(scenario="mirrored", loop=loop, synchronized=synchronized, replicas=figures)


@pytest.mark.parametrize("synchronized", [True, False])
def test_mirrored_strategy_custom_loop(
    synchronized, strategy, rule, other_rule, record
):
    import tensorflow as tf
    from keras import layers

    # Global batches of 8, 8 and 5 samples: replicas get 4 + 4, 4 + 4, 3 + 2.
    rng = np.random.default_rng(47)
    sizes = (8, 8, 5)
    batches = [as_float32_values(rng.normal(1.0, 2.0, (b, 2, 3))) for b in sizes]
    with strategy.scope():
        layer = layers.BatchNormalization(momentum=MOMENTUM, synchronized=synchronized)
        layer.build((None, 2, 3))
    step = tf.function(lambda x: layer(x, training=True))
    for batch in batches:
        shares = [share.astype("float32") for share in split(batch)]
        inputs = strategy.experimental_distribute_values_from_function(
            lambda context, shares=shares: shares[context.replica_id_in_sync_group]
        )
        strategy.run(step, args=(inputs,))
    check_replicas(layer, batches, synchronized, rule, other_rule, record, "custom")


@pytest.mark.parametrize("synchronized", [True, False])
def test_mirrored_strategy_fit(synchronized, strategy, rule, other_rule, record):
    import keras
    from keras import layers

    # 11 samples, batch_size=6: global batches of 6 and 5 samples, which
    # tf.data splits into 3 + 3 and 3 + 2.
    x = as_float32_values(np.random.default_rng(53).normal(1.0, 2.0, (11, 2, 3)))
    with strategy.scope():
        norm = layers.BatchNormalization(momentum=MOMENTUM, synchronized=synchronized)
        model = keras.Sequential([keras.Input((2, 3)), norm])
        model.compile(optimizer="sgd", loss="mse")
    x32 = x.astype("float32")
    model.fit(x32, x32, batch_size=6, epochs=1, shuffle=False, verbose=0)
    batches = [x[0:6], x[6:11]]
    check_replicas(norm, batches, synchronized, rule, other_rule, record, "fit")


def test_jax_data_parallel(worker, tmp_path, rule, other_rule, record):
    pytest.importorskip("jax")
    # XLA reads its flags once, at the first import of jax: a fresh process.
    flags = "--xla_force_host_platform_device_count=2"
    path = tmp_path / "data-parallel.npz"
    worker("data-parallel", path, backend="jax", XLA_FLAGS=flags)
    with np.load(path) as saved:
        saved = dict(saved)
    # One device, then two: the moving variance is replicated on both.
    assert (saved["single.devices"], saved["distributed.devices"]) == (1, 2)
    x = saved["x"]
    batches = [x[0:8], x[8:16], x[16:20]]
    single = saved["single.mean"], saved["single.var"]
    distributed = saved["distributed.mean"], saved["distributed.var"]
    assert_rule(single, batches, rule, other_rule, RTOL, scale=2.0)
    assert_rule(distributed, batches, rule, other_rule, RTOL, scale=2.0)
    difference = max_relative_difference(distributed[1], single[1])
    assert difference <= RTOL
    _, expected = moving_statistics(batches, rule, MOMENTUM)
    record(
        scenario="jax-data-parallel",
        backend="jax",
        devices=2,
        single=single[1].tolist(),
        distributed=distributed[1].tolist(),
        max_relative_difference=difference,
        max_relative_error=max_relative_difference(distributed[1], expected),
    )
