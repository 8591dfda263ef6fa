"""Regression tests: tf-keras BatchNormalization's moving variance.

tf-keras has two implementations: the fused kernel (FusedBatchNormV3, the
default for 4D and 5D inputs) updates the moving variance with the unbiased
batch variance, in both environments; the non-fused one (any other rank,
`fused=False`, virtual batches, `synchronized=True`, the TF1 layers) follows
`rule`: biased pristine, unbiased patched. Every test compares the installed
tf-keras with the float64 reference of `bnref` and, where the rules differ,
checks that the other rule does not match, so each test fails in the wrong
environment.

Tolerances: the layer computes in float32, whose rounding (about 6e-8
relative per operation) stays below 1e-5 relative over these recursions,
while the two rules differ by a factor n / (n - 1) >= 1.05 here.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from bnref import batch_moments
from bnref import converged_expectation
from bnref import convergence_tolerance
from bnref import correction
from bnref import moving_statistics

RTOL = 1e-5
BatchNormalization = tf_keras.layers.BatchNormalization


def check(layer, batches, rule, other_rule, momentum, axis=-1, masks=None):
    """Asserts the layer's moving statistics follow `rule`, not the other."""
    mean, var = moving_statistics(batches, rule, momentum, axis, masks)
    moving_mean = np.reshape(layer.moving_mean.numpy(), np.shape(mean))
    moving_var = np.reshape(layer.moving_variance.numpy(), np.shape(var))
    np.testing.assert_allclose(moving_mean, mean, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(moving_var, var, rtol=RTOL, atol=1e-6)
    _, other = moving_statistics(batches, other_rule, momentum, axis, masks)
    assert not np.allclose(moving_var, other, rtol=RTOL, atol=1e-6)


def normal(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_tf_keras_is_tf_keras():
    # TF_USE_LEGACY_KERAS=1: tf.keras is the installed tf-keras.
    assert tf.keras.layers.BatchNormalization is BatchNormalization
    assert tf.compat.v1.layers.BatchNormalization.__module__.startswith("tf_keras")


@pytest.mark.parametrize("shape", [(2, 1, 1, 8), (2, 1, 1, 1, 8)])
def test_fused_and_non_fused_agree_after_the_fix(shape, rule, other_rule):
    # The same batches of n = 2 values per channel through both
    # implementations: the fused kernel is unbiased in both environments,
    # the non-fused one follows `rule`; they agree exactly when patched.
    batches = [normal(seed, *shape) for seed in range(5)]
    fused = BatchNormalization(momentum=0.5)
    non_fused = BatchNormalization(momentum=0.5, fused=False)
    for batch in batches:
        fused(batch, training=True)
        non_fused(batch, training=True)
    assert fused.fused and not non_fused.fused
    check(fused, batches, "unbiased", "biased", 0.5)
    check(non_fused, batches, rule, other_rule, 0.5)
    agree = np.allclose(
        fused.moving_variance.numpy(), non_fused.moving_variance.numpy(), RTOL
    )
    assert agree == (rule == "unbiased")


def test_issue_8982_reporter_script_on_dense_input(rule, other_rule, record):
    # keras-team/keras#8982's script with tf.keras: one feature of N(0, 1)
    # data (2D input: the non-fused implementation), batch_size=2, 2 epochs
    # of 10000 samples, momentum 0.99.
    x = normal(8982, 10000, 1)
    norm = BatchNormalization(epsilon=1e-5)
    model = tf.keras.Sequential([tf.keras.Input((1,)), norm])
    # 100 steps per call of the train function, each updating the layer.
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=100)
    model.fit(x, x, batch_size=2, epochs=2, shuffle=False, verbose=0)
    batches = [x[i : i + 2] for i in range(0, len(x), 2)] * 2
    check(norm, batches, rule, other_rule, momentum=0.99)
    record(
        "tf-keras-nonfused",
        scenario="issue-8982",
        moving_variance=float(norm.moving_variance.numpy()[0]),
        data_variance=float(np.var(x, ddof=1)),
        biased_reference=float(moving_statistics(batches, "biased")[1][0]),
        unbiased_reference=float(moving_statistics(batches, "unbiased")[1][0]),
    )


@pytest.mark.parametrize("implementation", ["tf-keras-fused", "tf-keras-nonfused"])
@pytest.mark.parametrize("n", [2, 3, 4, 8, 32])
def test_converges_to_the_rule_s_expectation(
    implementation, n, rule, other_rule, record
):
    # Batches of n N(0, 1) values in each of 1024 channels: (n, 1, 1, 1024)
    # NHWC for the fused kernel, (n, 1024) for the non-fused implementation.
    # The moving variance converges to E[var(batch) * c]: (n - 1) / n for the
    # biased rule, 1 for the unbiased one.
    momentum, channels, steps = 0.9, 1024, 200
    fused = implementation == "tf-keras-fused"
    rule = "unbiased" if fused else rule
    other_rule = "biased" if fused else other_rule
    shape = (n, 1, 1, channels) if fused else (n, channels)
    rng = np.random.default_rng(n)
    batches = [rng.normal(size=shape).astype("float32") for _ in range(steps)]
    layer = BatchNormalization(momentum=momentum)
    step = tf.function(lambda x: layer(x, training=True))
    for batch in batches:
        step(batch)
    assert layer.fused == fused
    check(layer, batches, rule, other_rule, momentum)
    # The channels are independent: the mean over channels of the moving
    # variance has sd = ema_stationary_sd / sqrt(channels) (the initial 1 is
    # forgotten: 0.9**200 = 7e-10). 5 sd separates the rules for every n.
    converged = float(np.mean(layer.moving_variance.numpy()))
    expected = converged_expectation(n, rule)
    tolerance = convergence_tolerance(n, rule, momentum, channels)
    assert abs(converged - expected) < tolerance
    assert tolerance < 1.0 / n  # the other rule is further than 5 sd away
    record(
        implementation,
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
    ],
)
def test_non_fused_any_rank_and_axis(shape, axis, rule, other_rule):
    batches = [normal(seed, *shape) * 3 + 2 for seed in range(3)]
    layer = BatchNormalization(axis=axis, momentum=0.5, fused=False)
    for batch in batches:
        out = layer(batch, training=True)
    # The batch itself is normalized with its biased variance, in both.
    mean, var, _ = batch_moments(batch, axis)
    expand = [1] * len(shape)
    expand[axis] = shape[axis]
    expected = (batch - mean.reshape(expand)) / np.sqrt(var.reshape(expand) + 1e-3)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)
    check(layer, batches, rule, other_rule, 0.5, axis=axis)


def test_mask_counts_unmasked_values(rule, other_rule):
    rng = np.random.default_rng(7)
    batches, masks = [], []
    for _ in range(5):
        batches.append(rng.normal(size=(4, 6, 3)).astype("float32"))
        lengths = rng.integers(1, 7, size=4)
        masks.append(np.arange(6)[None, :] < lengths[:, None])
    layer = BatchNormalization(momentum=0.8)
    for batch, mask in zip(batches, masks, strict=True):
        layer(batch, mask=mask, training=True)
    check(layer, batches, rule, other_rule, 0.8, masks=masks)


def virtual_batch_statistics(batches, rule, momentum, virtual_batch_size):
    """The reference for `virtual_batch_size`: the layer reshapes each batch
    to (virtual_batch_size, -1, ...), so virtual batch j holds samples j,
    j + k, j + 2k, ...; each one is corrected with its own count, and the
    moving averages take the mean of their statistics."""
    mean, var = 0.0, 1.0
    for x in batches:
        groups = x.reshape(virtual_batch_size, -1, *x.shape[1:])
        moments = [batch_moments(groups[:, j]) for j in range(groups.shape[1])]
        batch_mean = np.mean([m for m, _, _ in moments], axis=0)
        batch_var = np.mean([v * correction(c, rule) for _, v, c in moments], 0)
        mean = momentum * mean + (1 - momentum) * batch_mean
        var = momentum * var + (1 - momentum) * batch_var
    return mean, var


@pytest.mark.parametrize("shape,virtual_batch_size", [((6, 3), 3), ((4, 2, 2, 3), 2)])
def test_virtual_batches_count_their_own_values(
    shape, virtual_batch_size, rule, other_rule
):
    batches = [normal(seed, *shape) for seed in range(3)]
    layer = BatchNormalization(momentum=0.5, virtual_batch_size=virtual_batch_size)
    for batch in batches:
        layer(batch, training=True)
    assert not layer.fused
    moving_var = layer.moving_variance.numpy().reshape(-1)
    _, var = virtual_batch_statistics(batches, rule, 0.5, virtual_batch_size)
    np.testing.assert_allclose(moving_var, var, rtol=RTOL)
    _, other = virtual_batch_statistics(batches, other_rule, 0.5, virtual_batch_size)
    assert not np.allclose(moving_var, other, rtol=RTOL)


@pytest.fixture(scope="module")
def mirrored():
    # One strategy for all tests: collectives of strategies made one after
    # the other in a process can clash ("Shape mismatch in the collective").
    return tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])


def mirrored_run(strategy, layer, replicas):
    """Runs `layer(**replicas[i], training=True)` on replica i."""
    inputs = strategy.experimental_distribute_values_from_function(
        lambda ctx: replicas[ctx.replica_id_in_sync_group]
    )
    strategy.run(tf.function(lambda kw: layer(**kw, training=True)), args=(inputs,))


class OverridesTheMoments(BatchNormalization):
    """A subclass that overrides how the moments are computed, as some do:
    the layer cannot take the count from its synchronized moments then."""

    def _calculate_mean_and_var(self, *args, **kwargs):
        return super()._calculate_mean_and_var(*args, **kwargs)


@pytest.mark.parametrize("layer_class", [BatchNormalization, OverridesTheMoments])
@pytest.mark.parametrize("with_mask", [False, True])
def test_synchronized_counts_all_replicas(
    with_mask, layer_class, mirrored, rule, other_rule
):
    # MirroredStrategy on two CPUs, replicas with 3 and 2 samples of 4
    # steps, momentum 0: the moving variance is that of the global batch,
    # with the global count (n = 20, or the unmasked values of both).
    x = normal(13, 5, 4, 3)
    mask = np.arange(4)[None, :] < np.array([4, 1, 3, 2, 2])[:, None]
    replicas = [{"inputs": x[:3]}, {"inputs": x[3:]}]
    if with_mask:
        replicas[0]["mask"], replicas[1]["mask"] = mask[:3], mask[3:]
    with mirrored.scope():
        layer = layer_class(momentum=0.0, synchronized=True)
    mirrored_run(mirrored, layer, replicas)
    masks = [mask] if with_mask else None
    check(layer, [x], rule, other_rule, 0.0, masks=masks)
    # Correcting with the count of one replica would give another value.
    _, biased, _ = batch_moments(x, mask=masks[0] if with_mask else None)
    for part in (slice(0, 3), slice(3, 5)):
        count = mask[part].sum() if with_mask else x[part].size / 3
        local = biased * correction(count, "unbiased")
        assert not np.allclose(layer.moving_variance.numpy(), local, rtol=RTOL)


@pytest.mark.parametrize("with_mask", [False, True])
def test_synchronized_adds_no_collective(with_mask, mirrored, monkeypatch, record):
    # The synchronized moments all-reduce the sum, the sum of squares and
    # the count of each channel: the fix takes the count from there, so each
    # call of the layer in training makes these three all-reduces, as
    # before, and no other. (tf.function traces the call twice: once more
    # after creating the variables.)
    all_reduces, calls = [], []
    all_reduce = tf.distribute.ReplicaContext.all_reduce
    training_value = BatchNormalization._get_training_value  # once per call

    def counted_all_reduce(self, reduce_op, *args, **kwargs):
        all_reduces.append(reduce_op)
        return all_reduce(self, reduce_op, *args, **kwargs)

    def counted_training_value(self, *args, **kwargs):
        calls.append(self)
        return training_value(self, *args, **kwargs)

    monkeypatch.setattr(tf.distribute.ReplicaContext, "all_reduce", counted_all_reduce)
    monkeypatch.setattr(
        BatchNormalization, "_get_training_value", counted_training_value
    )
    x = normal(16, 4, 4, 3)
    replicas = [{"inputs": x[:2]}, {"inputs": x[2:]}]
    if with_mask:
        mask = np.arange(4)[None, :] < np.array([4, 1, 3, 2])[:, None]
        replicas[0]["mask"], replicas[1]["mask"] = mask[:2], mask[2:]
    with mirrored.scope():
        layer = BatchNormalization(momentum=0.0, synchronized=True)
    mirrored_run(mirrored, layer, replicas)
    assert calls and set(all_reduces) == {tf.distribute.ReduceOp.SUM}
    assert len(all_reduces) == 3 * len(calls)
    record(
        "tf-keras-nonfused",
        scenario="synchronized-all-reduces",
        mask=with_mask,
        all_reduces_per_call=len(all_reduces) / len(calls),
    )


def test_not_synchronized_each_replica_counts_its_own(mirrored, rule, other_rule):
    # Without synchronized=True each replica updates the moving variance
    # with its own batch (3 and 2 samples); reading it averages the replicas.
    x = normal(14, 5, 3)
    with mirrored.scope():
        layer = BatchNormalization(momentum=0.0)
    mirrored_run(mirrored, layer, [{"inputs": x[:3]}, {"inputs": x[3:]}])
    for expect, assertion in ((rule, True), (other_rule, False)):
        per_replica = [moving_statistics([x[:3]], expect, 0.0)[1]]
        per_replica.append(moving_statistics([x[3:]], expect, 0.0)[1])
        matches = np.allclose(
            layer.moving_variance.numpy(), np.mean(per_replica, axis=0), RTOL
        )
        assert matches == assertion


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("synchronized", [False, True])
def test_dtensor_strategy(synchronized, with_mask, rule, other_rule):
    # A DTensor-backed MirroredStrategy on two CPUs (global tensors): each
    # local replica (4 samples of 3 steps, masked differently or not) counts
    # its own values, or all of them with synchronized=True.
    # Not a public API yet: tf-keras' own DTensor test imports it so too.
    from tensorflow.python.distribute.experimental import mirrored_strategy

    mesh = tf.experimental.dtensor.create_mesh([("batch", 2)], device_type="CPU")
    strategy = mirrored_strategy.MirroredStrategy(mesh=mesh)
    x = normal(15, 2, 4, 3, 5)
    mask = np.ones((2, 4, 3), bool)
    if with_mask:
        mask[0, :, 2] = False
        mask[1, :3, 1:] = False
    layer = BatchNormalization(momentum=0.0, synchronized=synchronized)
    replicas = [{"inputs": x[i]} for i in (0, 1)]
    if with_mask:
        replicas = [{"inputs": x[i], "mask": mask[i]} for i in (0, 1)]
    mirrored_run(strategy, layer, replicas)
    moving_var = layer.moving_variance.numpy()
    for expect, assertion in ((rule, True), (other_rule, False)):
        if synchronized:
            batch, batch_mask = x.reshape(8, 3, 5), mask.reshape(8, 3)
            _, var = moving_statistics([batch], expect, 0.0, masks=[batch_mask])
        else:
            var = np.mean(
                [
                    moving_statistics([x[i]], expect, 0.0, masks=[mask[i]])[1]
                    for i in (0, 1)
                ],
                axis=0,
            )
        assert np.allclose(moving_var, var, RTOL) == assertion


def test_tf1_layers_batch_normalization(rule, other_rule):
    # tf.compat.v1.layers.BatchNormalization (tf-keras' legacy_tf_layers),
    # eagerly, on 2D input: the non-fused implementation.
    batches = [normal(seed, 4, 3) for seed in range(3)]
    layer = tf.compat.v1.layers.BatchNormalization(momentum=0.5)
    for batch in batches:
        layer(batch, training=True)
    assert not layer.fused
    check(layer, batches, rule, other_rule, 0.5)


def test_unknown_batch_size_in_tf_function(rule, other_rule):
    layer = BatchNormalization(momentum=0.5)
    layer.build((None, 5))
    step = tf.function(
        lambda x: layer(x, training=True),
        input_signature=[tf.TensorSpec([None, 5], tf.float32)],
    )
    batches = [normal(size, size, 5) for size in (3, 2, 7)]
    for batch in batches:
        step(batch)
    assert len(step._list_all_concrete_functions()) == 1  # one trace, None
    check(layer, batches, rule, other_rule, 0.5)


def test_mixed_float16(rule, other_rule):
    batches = [(normal(seed, 4, 8) * 3 + 2).astype(np.float16) for seed in range(3)]
    layer = BatchNormalization(momentum=0.5, dtype="mixed_float16")
    for batch in batches:
        out = layer(batch, training=True)
    assert out.dtype == tf.float16
    assert layer.moving_variance.dtype == tf.float32
    # The layer computes the statistics in float32 from the float16 inputs.
    check(layer, [b.astype(np.float64) for b in batches], rule, other_rule, 0.5)


def test_renorm_keeps_the_batch_renormalization_rule():
    # Decision: renorm=True keeps the Batch Renormalization paper's moving
    # standard deviation (an average of sqrt(var(batch) + eps), without the
    # n / (n - 1) factor), so this holds in both environments.
    momentum, epsilon = 0.5, 1e-3
    batches = [normal(seed, 4, 3) for seed in range(3)]
    layer = BatchNormalization(momentum=momentum, epsilon=epsilon, renorm=True)
    stddev = np.ones(3)
    for batch in batches:
        layer(batch, training=True)
        _, var, _ = batch_moments(batch)
        stddev = momentum * stddev + (1 - momentum) * np.sqrt(var + epsilon)
    np.testing.assert_allclose(layer.moving_stddev.numpy(), stddev, rtol=RTOL)
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), np.maximum(stddev**2 - epsilon, 0), rtol=1e-4
    )


@pytest.mark.parametrize("shape", [(1, 3), (1, 1, 1, 3)])
def test_single_value_per_channel_stays_finite(shape):
    # n = 1: no unbiased estimate exists; both implementations use the batch
    # variance (0) as is (factor 1), in both environments.
    layer = BatchNormalization(momentum=0.5)
    layer(np.full(shape, 2.0, dtype="float32"), training=True)
    assert layer.fused == (len(shape) == 4)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 1.0)


def test_inference_uses_the_moving_statistics_unchanged():
    # Inference reads the moving statistics as before: a checkpoint trained
    # with either rule predicts the same in both environments.
    layer = BatchNormalization(epsilon=1e-3)
    layer.build((None, 3))
    layer.moving_mean.assign([1.0, 2.0, 3.0])
    layer.moving_variance.assign([0.5, 2.0, 4.0])
    x = normal(19, 4, 3)
    expected = (x - [1.0, 2.0, 3.0]) / np.sqrt(np.array([0.5, 2.0, 4.0]) + 1e-3)
    np.testing.assert_allclose(layer(x, training=False).numpy(), expected, rtol=1e-5)


class OldNonFusedRule(BatchNormalization):
    """The pull request's recipe to reproduce an old training run: the old,
    biased update of the non-fused implementation (a sample size of 1 makes
    the factor n / max(n - 1, 1) exactly 1)."""

    def _moments_and_sample_size(self, *args, **kwargs):
        mean, variance, _ = super()._moments_and_sample_size(*args, **kwargs)
        return mean, variance, tf.ones_like(variance)


@pytest.mark.parametrize("synchronized", [False, True])
def test_old_rule_recipe_reproduces_the_biased_update(synchronized, mirrored, rule):
    # The recipe exists with the fix only: pristine has the biased rule
    # without it (and no such method to override).
    if rule == "biased":
        assert not hasattr(BatchNormalization, "_moments_and_sample_size")
        return
    batches = [normal(seed, 4, 3) for seed in range(3)]
    if synchronized:
        with mirrored.scope():
            layer = OldNonFusedRule(momentum=0.5, synchronized=True)
        for batch in batches:
            mirrored_run(
                mirrored, layer, [{"inputs": batch[:2]}, {"inputs": batch[2:]}]
            )
    else:
        layer = OldNonFusedRule(momentum=0.5)
        for batch in batches:
            layer(batch, training=True)
    check(layer, batches, "biased", "unbiased", 0.5)
