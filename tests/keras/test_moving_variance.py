"""Regression tests: Keras 3 BatchNormalization's moving variance.

Every test compares the installed keras with the float64 reference of
`bnref` under the rule the environment expects (`rule`: biased pristine,
unbiased patched) and, where the two rules differ, checks that the other
rule does not match, so each test fails in the wrong environment.

Tolerances: the layer computes in float32, whose rounding (about 6e-8
relative per operation) stays below 1e-5 relative over these recursions,
while the two rules differ by a factor n / (n - 1) >= 1.03 here.
"""

import keras
import numpy as np
import pytest
from keras import layers

from bnref import batch_moments
from bnref import converged_expectation
from bnref import convergence_tolerance
from bnref import moving_statistics

RTOL = 1e-5


def numpy(value):
    return keras.ops.convert_to_numpy(value)


def check(layer, batches, rule, other_rule, momentum, axis=-1, masks=None):
    """Asserts the layer's moving statistics follow `rule`, not the other."""
    mean, var = moving_statistics(batches, rule, momentum, axis, masks)
    np.testing.assert_allclose(numpy(layer.moving_mean), mean, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(numpy(layer.moving_variance), var, rtol=RTOL, atol=1e-6)
    _, other = moving_statistics(batches, other_rule, momentum, axis, masks)
    assert not np.allclose(numpy(layer.moving_variance), other, rtol=RTOL, atol=1e-6)
    return var


def test_issue_8982_reporter_script(rule, other_rule, record):
    # keras-team/keras#8982's script, ported to Keras 3: one feature of
    # N(0, 1) data, batch_size=2, 2 epochs of 10000 samples, momentum 0.99.
    x = np.random.default_rng(8982).normal(size=(10000, 1)).astype("float32")
    norm = layers.BatchNormalization(epsilon=1e-5)
    model = keras.Sequential([keras.Input((1,)), norm])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x, batch_size=2, epochs=2, shuffle=False, verbose=0)
    batches = [x[i : i + 2] for i in range(0, len(x), 2)] * 2
    check(norm, batches, rule, other_rule, momentum=0.99)
    record(
        scenario="issue-8982",
        moving_variance=float(numpy(norm.moving_variance)[0]),
        data_variance=float(np.var(x, ddof=1)),
        biased_reference=float(moving_statistics(batches, "biased")[1][0]),
        unbiased_reference=float(moving_statistics(batches, "unbiased")[1][0]),
    )


@pytest.mark.parametrize("n", [2, 3, 4, 8, 32])
def test_converges_to_the_rule_s_expectation(n, rule, other_rule, record):
    # Batches of n N(0, 1) values in each of 1024 channels. The moving
    # variance converges to E[var(batch) * c]: (n - 1) / n for the biased
    # rule, 1 for the unbiased one.
    momentum, channels, steps = 0.9, 1024, 200
    rng = np.random.default_rng(n)
    batches = [rng.normal(size=(n, channels)).astype("float32") for _ in range(steps)]
    layer = layers.BatchNormalization(momentum=momentum)
    for batch in batches:
        layer(batch, training=True)
    check(layer, batches, rule, other_rule, momentum)
    # The channels are independent: the mean over channels of the moving
    # variance has sd = ema_stationary_sd / sqrt(channels) (the initial 1 is
    # forgotten: 0.9**200 = 7e-10). 5 sd separates the rules for every n.
    converged = float(np.mean(numpy(layer.moving_variance)))
    expected = converged_expectation(n, rule)
    tolerance = convergence_tolerance(n, rule, momentum, channels)
    assert abs(converged - expected) < tolerance
    assert tolerance < 1.0 / n  # the other rule is further than 5 sd away
    record(
        scenario="convergence",
        n=n,
        converged=converged,
        expected=expected,
        tolerance=tolerance,
    )


@pytest.mark.parametrize(
    "shape,axis",
    [
        ((6, 3), -1),
        ((2, 4, 3), -1),
        ((2, 4, 3), 1),
        ((2, 3, 3, 4), -1),
        ((2, 4, 3, 3), 1),
        ((2, 3, 4, 3), 2),
        ((2, 2, 2, 2, 3), -1),
        ((2, 3, 2, 2, 2), 1),
    ],
)
def test_any_rank_and_axis(shape, axis, rule, other_rule):
    rng = np.random.default_rng(len(shape) * 10 + axis)
    batches = [rng.normal(2.0, 3.0, size=shape).astype("float32") for _ in range(3)]
    layer = layers.BatchNormalization(axis=axis, momentum=0.5)
    for batch in batches:
        out = layer(batch, training=True)
    # The batch itself is normalized with its biased variance, in both.
    mean, var, _ = batch_moments(batch, axis)
    expand = [1] * len(shape)
    expand[axis] = shape[axis]
    expected = (batch - mean.reshape(expand)) / np.sqrt(var.reshape(expand) + 1e-3)
    np.testing.assert_allclose(numpy(out), expected, rtol=1e-4, atol=1e-4)
    check(layer, batches, rule, other_rule, 0.5, axis=axis)


def test_mask_counts_unmasked_values(rule, other_rule):
    rng = np.random.default_rng(7)
    batches, masks = [], []
    for _ in range(5):
        batches.append(rng.normal(size=(4, 6, 3)).astype("float32"))
        lengths = rng.integers(1, 7, size=4)
        masks.append(np.arange(6)[None, :] < lengths[:, None])
    layer = layers.BatchNormalization(momentum=0.8)
    for batch, mask in zip(batches, masks, strict=True):
        layer(batch, mask=mask, training=True)
    check(layer, batches, rule, other_rule, 0.8, masks=masks)


def test_partial_last_batch_in_fit(rule, other_rule):
    # 10 samples, batch_size=4: batches of 4, 4 and 2 samples (n = 12, 12, 6)
    # in the compiled train function.
    x = np.random.default_rng(3).normal(size=(10, 3, 4)).astype("float32")
    norm = layers.BatchNormalization(momentum=0.5)
    model = keras.Sequential([keras.Input((3, 4)), norm])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x, batch_size=4, epochs=1, shuffle=False, verbose=0)
    check(norm, [x[0:4], x[4:8], x[8:10]], rule, other_rule, 0.5)


def test_unknown_batch_size_in_tf_function(backend, rule, other_rule):
    if backend != "tensorflow":
        pytest.skip("tf.function with an unknown batch size: TensorFlow only")
    import tensorflow as tf

    layer = layers.BatchNormalization(momentum=0.5)
    layer.build((None, 5))
    step = tf.function(
        lambda x: layer(x, training=True),
        input_signature=[tf.TensorSpec([None, 5], tf.float32)],
    )
    rng = np.random.default_rng(5)
    batches = [rng.normal(size=(size, 5)).astype("float32") for size in (3, 2, 7)]
    for batch in batches:
        step(batch)
    assert len(step._list_all_concrete_functions()) == 1  # one trace, None
    check(layer, batches, rule, other_rule, 0.5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy, backend, rule, other_rule):
    import ml_dtypes

    low = {"mixed_float16": np.float16, "mixed_bfloat16": ml_dtypes.bfloat16}
    rng = np.random.default_rng(11)
    batches = [rng.normal(2.0, 3.0, size=(4, 8)).astype(low[policy]) for _ in range(3)]
    keras.config.set_dtype_policy(policy)
    try:
        layer = layers.BatchNormalization(momentum=0.5)
        for batch in batches:
            out = layer(batch, training=True)
    finally:
        keras.config.set_dtype_policy("float32")
    assert keras.backend.standardize_dtype(out.dtype) == policy[6:]
    assert keras.backend.standardize_dtype(layer.moving_variance.dtype) == "float32"
    # The layer upcasts the low-precision inputs to float32: the reference
    # uses the same rounded inputs, so the float32 tolerance applies.
    check(layer, [b.astype(np.float64) for b in batches], rule, other_rule, 0.5)


def test_synchronized_counts_all_replicas(backend, rule, other_rule):
    if backend != "tensorflow":
        pytest.skip("synchronized=True is TensorFlow only")
    import tensorflow as tf

    # Replicas with 3 and 2 samples: the global batch has n = 5. The
    # per-replica counts (3 or 2) would give another moving variance.
    x = np.random.default_rng(13).normal(size=(5, 3)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    with strategy.scope():
        layer = layers.BatchNormalization(momentum=0.0, synchronized=True)
        layer.build((None, 3))
    inputs = strategy.experimental_distribute_values_from_function(
        lambda ctx: x[:3] if ctx.replica_id_in_sync_group == 0 else x[3:]
    )
    strategy.run(tf.function(lambda v: layer(v, training=True)), args=(inputs,))
    check(layer, [x], rule, other_rule, 0.0)
    biased = np.var(x, axis=0)
    for local_count in (3, 2):
        per_replica = biased * local_count / (local_count - 1)
        assert not np.allclose(numpy(layer.moving_variance), per_replica, rtol=RTOL)


def test_single_value_per_channel_stays_finite(rule):
    # n = 1: no unbiased estimate exists; the batch variance (0) is used as
    # is (factor 1), in both environments.
    layer = layers.BatchNormalization(momentum=0.5)
    batches = [np.full((1, 3), 2.0, dtype="float32")]
    layer(batches[0], training=True)
    _, var = moving_statistics(batches, rule, 0.5)
    np.testing.assert_allclose(numpy(layer.moving_variance), var)
    np.testing.assert_allclose(var, 0.5)


def test_fully_masked_batch_stays_finite(rule):
    layer = layers.BatchNormalization(momentum=0.5)
    x = np.ones((2, 4, 3), dtype="float32")
    out = layer(x, mask=np.zeros((2, 4), dtype=bool), training=True)
    assert np.all(np.isfinite(numpy(out)))
    np.testing.assert_allclose(numpy(layer.moving_mean), 0.0)
    np.testing.assert_allclose(numpy(layer.moving_variance), 0.5)


def test_renorm_keeps_the_batch_renormalization_rule():
    # Decision: renorm=True keeps the Batch Renormalization paper's moving
    # standard deviation (an average of sqrt(var(batch) + eps), without the
    # n / (n - 1) factor), so this holds in both environments.
    momentum, epsilon = 0.5, 1e-3
    rng = np.random.default_rng(17)
    batches = [rng.normal(size=(4, 3)).astype("float32") for _ in range(3)]
    layer = layers.BatchNormalization(momentum=momentum, epsilon=epsilon, renorm=True)
    stddev = np.ones(3)
    for batch in batches:
        layer(batch, training=True)
        _, var, _ = batch_moments(batch)
        stddev = momentum * stddev + (1 - momentum) * np.sqrt(var + epsilon)
    np.testing.assert_allclose(numpy(layer.moving_stddev), stddev, rtol=RTOL)
    np.testing.assert_allclose(
        numpy(layer.moving_variance), np.maximum(stddev**2 - epsilon, 0), rtol=1e-4
    )


def test_inference_uses_the_moving_statistics_unchanged():
    # Inference reads the moving statistics as before: a checkpoint trained
    # with either rule predicts the same in both environments.
    layer = layers.BatchNormalization(epsilon=1e-3)
    layer.build((None, 3))
    layer.moving_mean.assign([1.0, 2.0, 3.0])
    layer.moving_variance.assign([0.5, 2.0, 4.0])
    x = np.random.default_rng(19).normal(size=(4, 3)).astype("float32")
    expected = (x - [1.0, 2.0, 3.0]) / np.sqrt(np.array([0.5, 2.0, 4.0]) + 1e-3)
    np.testing.assert_allclose(numpy(layer(x, training=False)), expected, rtol=1e-5)
