"""The native group (patches/keras/native/), as a user runs the installed
build: on the PyTorch backend, BatchNormalization computes a training step
with `torch.nn.functional.batch_norm`, through the private op
`ops.nn._batch_normalization_training` and the torch backend's
`batch_normalization_training` (which declines what its kernel does not
compute as the backend-agnostic ops do); the other backends, and
inference, keep `ops.moments` and `ops.batch_normalization`.

Keras' own switch forces the backend-agnostic path:
`config._set_use_backend_agnostic_ops(True)`, what
`KERAS_USE_BACKEND_AGNOSTIC_OPS=1` sets. Upstream's tests in the patch
compare the two paths and run `torch.autograd.gradcheck`; these tests add
what needs the workspace: the float64 reference of the moving statistics
(`bnref`), `model.fit` with a partial last batch, TensorFlow under op
determinism, and that the layer names no backend. The table of every input,
call and transform is test_native_equivalence.py's.

They run in the `native*` environments (KBB_NATIVE=1), and skip elsewhere.
"""

import inspect
import os
import subprocess
import sys
from unittest import mock

import keras
import numpy as np
import pytest
from keras import layers
from keras.src import backend as kbackend
from keras.src.backend import config
from keras.src.layers.normalization import batch_normalization
from keras.src.ops import nn as ops_nn

from bnref import batch_moments
from bnref import moving_statistics

if os.environ.get("KBB_NATIVE") != "1":
    pytest.skip("the native group's build only (KBB_NATIVE=1)", allow_module_level=True)

BACKEND = keras.backend.backend()
# The backend's nn module: `backend.ops.nn` in the newest upstream's layout.
BACKEND_NN = kbackend.ops.nn if hasattr(kbackend, "ops") else kbackend.nn
torch_only = pytest.mark.skipif(
    BACKEND != "torch", reason="only the PyTorch backend has the kernel"
)


def numpy(value):
    return keras.ops.convert_to_numpy(value).astype(np.float64)


def agnostic(value):
    """Sets the switch; returns its previous value."""
    previous = config._use_backend_agnostic_ops()
    config._set_use_backend_agnostic_ops(value)
    return previous


def test_build_has_the_op_everywhere_and_the_kernel_on_pytorch_only():
    assert callable(ops_nn._batch_normalization_training)
    assert hasattr(BACKEND_NN, "batch_normalization_training") == (BACKEND == "torch")


def test_the_layer_names_no_backend():
    # The dispatch is the op's (keras/src/ops/nn.py): the layer asks no
    # backend for a function and names none.
    source = inspect.getsource(batch_normalization)
    assert "hasattr(backend" not in source
    for name in ("torch", "jax", "tensorflow", "numpy", "openvino"):
        assert f"backend.{name}" not in source and f"import {name}" not in source
    assert "_batch_normalization_training(" in source


@torch_only
@pytest.mark.parametrize("path", ["kernel", "agnostic"])
def test_the_switch_chooses_the_path(path):
    import torch

    x = keras.ops.convert_to_tensor(np.ones((4, 3, 3, 8), "float32"))
    batch_norm = torch.nn.functional.batch_norm
    previous = agnostic(path == "agnostic")
    try:
        with mock.patch.object(
            torch.nn.functional, "batch_norm", wraps=batch_norm
        ) as kernel:
            layers.BatchNormalization()(x, training=True)
    finally:
        agnostic(previous)
    assert kernel.called == (path == "kernel")


# (input shape, axis); the last one has one value per channel, which the
# backend declines (the kernel raises there).
CONFIGS = {
    "rank2": ((16, 8), -1),
    "rank3_axis1": ((4, 8, 6), 1),
    "rank4_channels_last": ((4, 5, 5, 8), -1),
    "rank4_channels_first": ((4, 8, 5, 5), 1),
    "rank4_axis2": ((4, 5, 8, 5), 2),
    "one_value_per_channel": ((1, 8), -1),
}


def train(batches, axis):
    """Outputs of training steps on `batches`, then the moving statistics."""
    layer = layers.BatchNormalization(axis=axis, momentum=0.5)
    outputs = [numpy(layer(x, training=True)) for x in batches]
    return outputs + [numpy(layer.moving_mean), numpy(layer.moving_variance)]


@torch_only
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_kernel_moving_statistics(name, rule, other_rule):
    # Three batches: the moving statistics of the kernel path are the float64
    # reference of the Bessel series' rule, corrected once, and those of the
    # backend-agnostic path.
    shape, axis = CONFIGS[name]
    rng = np.random.default_rng(1)
    batches = [rng.normal(2.0, 3.0, size=shape).astype("float32") for _ in range(3)]
    kernel = train(batches, axis)
    previous = agnostic(True)
    try:
        composite = train(batches, axis)
    finally:
        agnostic(previous)
    for a, b in zip(kernel, composite, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    mean, var = moving_statistics(batches, rule, 0.5, axis)
    np.testing.assert_allclose(kernel[-2], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kernel[-1], var, rtol=1e-5)
    if batch_moments(batches[0], axis)[2] > 1:
        _, other = moving_statistics(batches, other_rule, 0.5, axis)
        assert not np.allclose(kernel[-1], other, rtol=1e-5)
        assert not np.allclose(kernel[-1], corrected_twice(batches, axis), rtol=1e-5)


def corrected_twice(batches, axis):
    """The moving variance if the kernel's unbiased variance were corrected
    a second time."""
    var = 1.0
    for x in batches:
        _, batch_var, n = batch_moments(x, axis)
        var = 0.5 * var + 0.5 * batch_var * (n / (n - 1)) ** 2
    return var


@torch_only
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_fit_matches_backend_agnostic_ops(data_format):
    # A train function on 10 samples with batch_size=4: a partial last
    # batch. Weights, moving statistics and predictions agree. (Not with
    # jit_compile=True, torch.compile: minutes of compilation on CI's CPUs.)
    axis = -1 if data_format == "channels_last" else 1
    shape = (5, 5, 3) if axis == -1 else (3, 5, 5)
    rng = np.random.default_rng(6)
    x = rng.normal(1.0, 2.0, size=(10,) + shape).astype("float32")
    y = rng.normal(size=(10, 4)).astype("float32")

    def fit(path):
        previous = agnostic(path == "agnostic")
        try:
            keras.utils.set_random_seed(7)
            model = keras.Sequential(
                [
                    keras.Input(shape),
                    layers.Dense(6),
                    layers.BatchNormalization(axis=axis, momentum=0.8),
                    layers.Flatten(),
                    layers.Dense(4),
                ]
            )
            model.compile(optimizer="sgd", loss="mse")
            model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
            return [numpy(w) for w in model.weights] + [
                numpy(model.predict(x, verbose=0))
            ]
        finally:
            agnostic(previous)

    kernel, composite = fit("kernel"), fit("agnostic")
    for a, b in zip(kernel, composite, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


DETERMINISM_PROBE = """
import numpy as np
import tensorflow as tf
from keras import layers

tf.config.experimental.enable_op_determinism()
layer = layers.BatchNormalization()
layer.build((None, 5, 5, 8))


@tf.function
def saliency(x):
    # Gradients through a frozen layer (inference mode): Grad-CAM, and the
    # fine-tuning of a model with frozen BatchNormalization layers.
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x, training=False))
    return tape.gradient(y, x)


x = tf.constant(np.ones((2, 5, 5, 8), "float32"))
graph = saliency.get_concrete_function(x).graph
print(sorted({op.type for op in graph.get_operations() if "BatchNorm" in op.type}))
print(float(tf.reduce_sum(saliency(x))))
"""


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's op determinism")
def test_tensorflow_op_determinism_inference_uses_composite_ops():
    # FusedBatchNormV3's gradient with training disabled has no deterministic
    # GPU kernel: under op determinism it raises there. The group leaves
    # TensorFlow on the composite ops, so no FusedBatchNorm op is in the
    # graph of an inference-mode gradient (a fresh process: op determinism
    # cannot be switched off again).
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    out = subprocess.run(
        [sys.executable, "-c", DETERMINISM_PROBE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[-2] == "[]"
    assert np.isfinite(float(out[-1]))
