"""Keras 3 against tf_keras (Keras 2), trained side by side.

The same small convolutional classifier (Conv2D, BatchNormalization, ReLU,
Flatten, Dense) is built with both, from the same initial weights, and
trained with `fit` on the same seeded images, in the same order. On 4D
inputs tf_keras normalizes with TensorFlow's FusedBatchNormV3, whose running
variance is unbiased; Keras 3 runs its own composite ops.

Training itself does not read the moving statistics, so both models see the
same batches, up to float rounding. Starting from 1, after T steps of
momentum m the moving variance is m**T + (1 - m) * sum(m**(T-1-t) * v_t),
with v_t the batch variances: with the biased rule (pristine keras) the
batch part of tf_keras' moving variance is n/(n-1) times Keras 3's, with the
unbiased rule (the fix) the same. `evidence-pristine` asserts that factor,
`evidence-patched` agreement, both within RTOL. Both assert what the builds
share: the trained weights, the moving mean, and predictions that agree once
tf_keras is given Keras 3's moving variance; `evidence-patched` asserts
that the predictions agree, `evidence-pristine` that they do not.

Tolerances, from float32 rounding: the frameworks compute the batch
variance differently (fused kernel, composite ops) and their trained weights
drift apart by rounding. Measured over 5 seeds per case (with TensorFlow's
oneDNN optimizations on, as on CPUs that have them): the batch-part ratio
deviates from its rule by at most 1.2e-6, the trained weights by 5e-7, the
predictions by 8e-7. RTOL = 1e-5 leaves a margin of 8, and is 87 times smaller than the
smallest factor tested, n/(n-1) - 1 = 8.7e-4 at n = 1152, whose pristine
predictions differ by 1.2e-4. With n = 2 a batch normalizes to +-1 whatever
its inputs, so the convolution's gradient is rounding noise: a learning rate
of 0.01 keeps that drift within the figures above.
"""

import numpy as np
import pytest

MOMENTUM = 0.9
STEPS = 20
CLASSES = 3
FILTERS = 4
# Values per channel n = batch size * conv output height * width
# (3x3 kernel, no padding): image size, batch size.
CASES = {2: (3, 2), 18: (5, 2), 128: (6, 8), 1152: (8, 32)}
RTOL = 1e-5
WEIGHTS_ATOL = 1e-5
PREDICTIONS_ATOL = 1e-5


def images(size, samples, seed):
    """Seeded single-channel images whose mean depends on their class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, samples)
    x = rng.normal(0.0, 1.0, (samples, size, size, 1)) + labels[:, None, None, None]
    return x.astype("float32"), np.eye(CLASSES, dtype="float32")[labels]


def classifier(module, size):
    """The model, built with `module` (keras or tf_keras)."""
    return module.Sequential(
        [
            module.Input((size, size, 1)),
            module.layers.Conv2D(FILTERS, 3),
            module.layers.BatchNormalization(momentum=MOMENTUM),
            module.layers.Activation("relu"),
            module.layers.Flatten(),
            module.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


def train(model, module, x, y, batch_size):
    model.compile(
        optimizer=module.optimizers.SGD(learning_rate=0.01),
        loss="categorical_crossentropy",
        jit_compile=False,
    )
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)


def uses_fused_kernel(model, size):
    """Whether the model's training graph runs FusedBatchNormV3."""
    import tensorflow as tf

    step = tf.function(lambda x: model(x, training=True))
    graph = step.get_concrete_function(tf.TensorSpec((2, size, size, 1))).graph
    return any(op.type == "FusedBatchNormV3" for op in graph.get_operations())


def side_by_side(n, seed=None):
    """Trains both models on case `n` (seeded by `seed`, default n); returns
    their moving statistics, trained weights and predictions."""
    import keras
    import tf_keras

    size, batch_size = CASES[n]
    x, y = images(size, batch_size * STEPS, seed=seed or n)
    keras.utils.set_random_seed(seed or n)
    ours = classifier(keras, size)
    theirs = classifier(tf_keras, size)
    theirs.set_weights([keras.ops.convert_to_numpy(w) for w in ours.weights])
    assert uses_fused_kernel(theirs, size)
    train(ours, keras, x, y, batch_size)
    train(theirs, tf_keras, x, y, batch_size)
    norm, their_norm = ours.layers[1], theirs.layers[1]
    out = {
        "mean": keras.ops.convert_to_numpy(norm.moving_mean),
        "variance": keras.ops.convert_to_numpy(norm.moving_variance),
        "their_mean": their_norm.moving_mean.numpy(),
        "their_variance": their_norm.moving_variance.numpy(),
        "weights": [keras.ops.convert_to_numpy(w) for w in ours.trainable_weights],
        "their_weights": [w.numpy() for w in theirs.trainable_weights],
        "predictions": ours.predict(x, verbose=0),
        "their_predictions": theirs.predict(x, verbose=0),
    }
    # tf_keras with Keras 3's moving variance: what remains is rounding.
    their_norm.moving_variance.assign(out["variance"])
    out["their_predictions_swapped"] = theirs.predict(x, verbose=0)
    return out


@pytest.mark.parametrize("n", sorted(CASES))
def test_tf_keras_parity(n, patched, record):
    tf_keras = pytest.importorskip("tf_keras")
    run = side_by_side(n)
    factor = n / (n - 1)
    start = MOMENTUM**STEPS
    ratio = (run["their_variance"] - start) / (run["variance"] - start)
    assert factor - 1 > 10 * RTOL  # the case tells the rules apart
    np.testing.assert_allclose(ratio, 1.0 if patched else factor, rtol=RTOL)
    np.testing.assert_allclose(run["mean"], run["their_mean"], rtol=0, atol=RTOL)
    for ours, theirs in zip(run["weights"], run["their_weights"], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=WEIGHTS_ATOL)
    swapped = np.abs(run["predictions"] - run["their_predictions_swapped"]).max()
    assert swapped <= PREDICTIONS_ATOL, swapped
    predictions_gap = np.abs(run["predictions"] - run["their_predictions"]).max()
    assert (predictions_gap <= PREDICTIONS_ATOL) == patched, predictions_gap
    variance_gap = np.max(
        np.abs(run["variance"] - run["their_variance"]) / run["their_variance"]
    )
    record(
        scenario="tf-keras-parity",
        n=n,
        factor=factor,
        ratio_min=float(ratio.min()),
        ratio_max=float(ratio.max()),
        moving_variance_gap=float(variance_gap),
        predictions_gap=float(predictions_gap),
        predictions_gap_swapped=float(swapped),
        weights_gap=float(
            max(
                np.abs(a - b).max()
                for a, b in zip(run["weights"], run["their_weights"], strict=True)
            )
        ),
        tf_keras=tf_keras.__version__,
        momentum=MOMENTUM,
        steps=STEPS,
    )
