"""Inputs and reference implementations shared by the evidence tests and
their subprocess worker (`worker.py`, which runs them under another Keras
backend, distribution or keras build).

Every input is drawn in float64 from a fixed seed and rounded to float32
values, so that an implementation computing in float32 (Keras on the JAX and
PyTorch backends, FusedBatchNormV3) and one computing in float64 see the same
numbers: what remains between them is the rounding of their arithmetic.
"""

import numpy as np

from bnref import moving_statistics

# Keras' momentum m weighs the old moving statistics; PyTorch's momentum
# weighs the new batch: the same update with PyTorch momentum 1 - m.
MOMENTUM = 0.9
STEPS = 10  # 0.9**10 = 0.35: the batches carry 65% of the final value
CHANNELS = 3
RANKS = (2, 3, 4, 5)
COUNTS = (2, 3, 8, 64)


def shape(rank, n, channels=CHANNELS):
    """A channels-last shape with n values per channel, spread over the batch
    and spatial axes (n = 8 at rank 4: (2, 2, 2, C))."""
    dims = [1] * (rank - 1)
    factor, i = 2, 0
    while n > 1:
        while n % factor:
            factor += 1
        dims[i % len(dims)] *= factor
        n //= factor
        i += 1
    return (*dims, channels)


def as_float32_values(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def parity_batches(rank, n, steps=STEPS):
    rng = np.random.default_rng(1000 * rank + n)
    return [
        as_float32_values(rng.normal(2.0, 3.0, shape(rank, n))) for _ in range(steps)
    ]


def cases():
    """name -> (batches, axis, masks): the cases every backend runs."""
    out = {
        f"rank{rank}-n{n}": (parity_batches(rank, n), -1, None)
        for rank in RANKS
        for n in COUNTS
    }
    rng = np.random.default_rng(31)
    channels_first = [
        as_float32_values(rng.normal(2.0, 3.0, (2, 3, 4, 2))) for _ in range(5)
    ]
    out["rank4-axis1"] = (channels_first, 1, None)
    batches = [as_float32_values(rng.normal(2.0, 3.0, (4, 6, 3))) for _ in range(5)]
    masks = [np.arange(6) < rng.integers(1, 7, size=(4, 1)) for _ in batches]
    out["masked"] = (batches, -1, masks)
    return out


def fit_data():
    """10 samples fitted with batch_size=4: batches of 4, 4 and 2 samples."""
    x = as_float32_values(np.random.default_rng(37).normal(2.0, 3.0, (10, 3, 4)))
    return x, [x[0:4], x[4:8], x[8:10]]


def keras_moving_statistics(
    batches, momentum=MOMENTUM, axis=-1, masks=None, dtype="float64"
):
    """Moving statistics of a float64 Keras layer called on `batches`.

    Only the TensorFlow backend computes a float64 layer in float64: Keras'
    type promotion maps float64 to float32 on the others (`result_type`,
    BIT64_TO_BIT32_DTYPE), so there the layer rounds like float32.
    """
    from keras import layers
    from keras import ops

    layer = layers.BatchNormalization(axis=axis, momentum=momentum, dtype=dtype)
    for x, mask in zip(batches, masks or [None] * len(batches), strict=True):
        layer(x, mask=mask, training=True)
    return ops.convert_to_numpy(layer.moving_mean), ops.convert_to_numpy(
        layer.moving_variance
    )


def keras_fit_statistics(momentum=MOMENTUM):
    """Moving statistics after `fit` (compiled train step, partial batch)."""
    import keras
    from keras import layers
    from keras import ops

    x, _ = fit_data()
    norm = layers.BatchNormalization(momentum=momentum, dtype="float64")
    model = keras.Sequential([keras.Input(x.shape[1:], dtype="float64"), norm])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return ops.convert_to_numpy(norm.moving_mean), ops.convert_to_numpy(
        norm.moving_variance
    )


def keras_statistics_of_all_cases():
    """{"CASE.mean": ..., "CASE.var": ...} for `cases()` and the fit case."""
    out = {}
    for name, (batches, axis, masks) in cases().items():
        out[name + ".mean"], out[name + ".var"] = keras_moving_statistics(
            batches, axis=axis, masks=masks
        )
    out["fit.mean"], out["fit.var"] = keras_fit_statistics()
    return out


def torch_device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_running_statistics(batches, momentum=MOMENTUM, dtype="float64"):
    """`running_mean`, `running_var` of torch.nn.BatchNorm1d/2d/3d trained on
    channels-last `batches` (moved to channels-first), on the default
    device: cuDNN's kernel where a GPU runs float32."""
    import torch

    modules = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
    module = getattr(torch.nn, modules[batches[0].ndim])
    device, dtype = torch_device(), getattr(torch, dtype)
    norm = module(batches[0].shape[-1], momentum=1 - momentum)
    norm = norm.to(device=device, dtype=dtype).train()
    with torch.no_grad():
        for x in batches:
            norm(torch.from_numpy(np.moveaxis(x, -1, 1).copy()).to(device, dtype))
    return norm.running_mean.cpu().numpy(), norm.running_var.cpu().numpy()


def fused_running_statistics(batches, momentum=MOMENTUM):
    """The running mean and variance that tf.raw_ops.FusedBatchNormV3
    (is_training=True, exponential_avg_factor = 1 - momentum) returns,
    batch after batch, for NHWC `batches`: float32, the kernel's type."""
    import tensorflow as tf

    channels = batches[0].shape[-1]
    mean = np.zeros(channels, np.float32)
    variance = np.ones(channels, np.float32)
    for x in batches:
        _, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=np.asarray(x, np.float32),
            scale=np.ones(channels, np.float32),
            offset=np.zeros(channels, np.float32),
            mean=mean,
            variance=variance,
            epsilon=1e-3,
            exponential_avg_factor=1 - momentum,
            data_format="NHWC",
            is_training=True,
        )
    return mean.numpy(), variance.numpy()


def max_relative_difference(actual, expected):
    return float(np.max(np.abs(np.asarray(actual) - expected) / np.abs(expected)))


def assert_rule(
    actual,
    batches,
    rule,
    other_rule,
    rtol,
    momentum=MOMENTUM,
    axis=-1,
    masks=None,
    scale=3.0,
    **start,
):
    """Asserts that the moving statistics `actual` = (mean, variance) follow
    `rule` of the float64 reference, and that the variance does not follow
    `other_rule`. The mean is compared with `atol = rtol * scale`: its
    rounding error is relative to the size of the values (`scale`, their
    standard deviation), not to the mean, which can be near 0."""
    mean, var = moving_statistics(batches, rule, momentum, axis, masks, **start)
    np.testing.assert_allclose(actual[0], mean, rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(actual[1], var, rtol=rtol)
    _, other = moving_statistics(batches, other_rule, momentum, axis, masks, **start)
    assert max_relative_difference(actual[1], other) > rtol, f"follows {other_rule}"
