"""The native-kernel group (patches/keras/native/): BatchNormalization on the
TensorFlow and PyTorch backends computes eligible calls with the backend's
fused kernel (`FusedBatchNormV3`, `torch.nn.functional.batch_norm`) and
falls back to the composite ops (moments, then normalize) elsewhere.

Each test compares the two paths in one process: the composite one is forced
by making `backend.nn.fused_batch_normalization` raise NotImplementedError,
as a backend does for an ineligible call. Outputs, gradients with respect to
the inputs, gamma and beta, and the moving statistics must agree, and the
moving statistics must follow the Bessel series' rule (`bnref`, "unbiased"):
the kernels return the unbiased batch variance, which must not be corrected
a second time.

Tolerances: float32, 1e-5 relative (and 1e-5 absolute for values near zero;
the paths differ only in their order of summation). float16 and bfloat16
(mixed precision): both paths upcast to float32 and round the outputs and
input gradients to the compute dtype, so they differ by about one unit in
the last place: 2e-3 for float16 (unit roundoff 4.9e-4), 2e-2 for bfloat16
(3.9e-3); the moving statistics stay float32, 1e-5.

These tests run where the installed build has the native group (the
`native*` environments set KBB_NATIVE=1, and there its absence is an
error); elsewhere they skip.
"""

import contextlib
import os
import subprocess
import sys
from unittest import mock

import keras
import numpy as np
import pytest
from keras import layers
from keras.src import backend as kbackend

from bnref import batch_moments
from bnref import moving_statistics

if not hasattr(kbackend.nn, "fused_batch_normalization"):
    if os.environ.get("KBB_NATIVE") == "1":
        raise RuntimeError(
            f"KBB_NATIVE=1, but keras {keras.version()} has no native path"
        )
    pytest.skip(
        f"keras {keras.version()} has no native path (patches/keras/native/)",
        allow_module_level=True,
    )

BACKEND = keras.backend.backend()
NATIVE = BACKEND in ("tensorflow", "torch")
F32 = {"rtol": 1e-5, "atol": 1e-5}
needs_native = pytest.mark.skipif(
    not NATIVE, reason="JAX keeps the composite path (see test_dispatch)"
)


def numpy(value):
    return keras.ops.convert_to_numpy(value)


def tf_gpu():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


@contextlib.contextmanager
def composite_only():
    """Forces the composite path, as an ineligible call takes it."""
    with mock.patch.object(
        kbackend.nn, "fused_batch_normalization", side_effect=NotImplementedError
    ):
        yield


@contextlib.contextmanager
def count_native(calls):
    """Appends `training` to `calls` each time the native kernel computes."""
    native = kbackend.nn.fused_batch_normalization

    def spy(*args, **kwargs):
        result = native(*args, **kwargs)
        calls.append(kwargs["training"])
        return result

    with mock.patch.object(kbackend.nn, "fused_batch_normalization", spy):
        yield


# On a CPU, PyTorch's function leaves inputs with fewer values than this to
# the composite ops (test_minimum_size_on_cpu), and TensorFlow's uses its
# kernel only with TensorFlow's oneDNN optimizations (test_tensorflow_cpu_
# kernel_needs_onednn). The other tests' inputs are small, and CI's CPU runs
# without oneDNN: the fixture below lets the kernels take them, so that both
# paths are compared on every backend.
MIN_CPU_SIZE = getattr(kbackend.nn, "FUSED_BATCH_NORM_MIN_CPU_SIZE", None)


@pytest.fixture(autouse=True)
def native_on_cpu():
    if BACKEND == "torch":
        with mock.patch.object(kbackend.nn, "FUSED_BATCH_NORM_MIN_CPU_SIZE", 0):
            yield
    elif BACKEND == "tensorflow":
        with mock.patch.object(
            kbackend.nn, "_fused_batch_norm_is_faster", lambda: True
        ):
            yield
    else:
        yield


def make_layer(**kwargs):
    return layers.BatchNormalization(
        momentum=kwargs.pop("momentum", 0.5),
        gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5, seed=1),
        beta_initializer=keras.initializers.RandomNormal(seed=2),
        **kwargs,
    )


def step(layer, x, dy, training, mask=None):
    """[outputs, d/dx, d/dgamma, d/dbeta] of sum(layer(x) * dy), as numpy
    (the gradients of absent weights left out)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training, mask=mask)
            loss = tf.reduce_sum(tf.cast(y, "float32") * dy)
        grads = tape.gradient(loss, [x] + layer.trainable_weights)
    else:
        x = kbackend.convert_to_tensor(x).requires_grad_()
        y = layer(x, training=training, mask=mask)
        loss = (y.float() * kbackend.convert_to_tensor(dy)).sum()
        loss.backward()
        y = y.detach()
        grads = [x.grad] + [w.value.grad for w in layer.trainable_weights]
    assert all(g is not None for g in grads)
    return [numpy(v).astype(np.float64) for v in [y] + grads]


def run(x, training=True, mask=None, steps=2, **kwargs):
    """Results of `steps` training (or inference) steps of a fresh layer,
    then one inference step, and its moving statistics."""
    rng = np.random.default_rng(99)
    layer = make_layer(**kwargs)
    results = []
    for _ in range(steps):
        dy = rng.normal(size=x.shape).astype("float32")
        results += step(layer, x, dy, training, mask)
    results += step(layer, x, dy, False)
    results += [numpy(layer.moving_mean), numpy(layer.moving_variance)]
    return results, layer


def assert_same(native, composite, tolerance):
    assert len(native) == len(composite)
    for i, (a, b) in enumerate(zip(native, composite, strict=True)):
        np.testing.assert_allclose(a, b, err_msg=f"result {i}", **tolerance)


# Configurations: (input shape, axis, layer kwargs) and, per backend, whether
# a training step takes the native path. TensorFlow's CPU kernel is slower
# than the composite ops for channels-first inputs (it transposes them) and
# for rank 2 and 3 inputs reshaped to 4D, so those stay composite unless a
# GPU is visible (channels-first only).
CONFIGS = {
    "rank2": ((16, 8), -1, {}),
    "rank3": ((4, 6, 8), -1, {}),
    "rank3_axis1": ((4, 8, 6), 1, {}),
    "rank4_channels_last": ((4, 5, 5, 8), -1, {}),
    "rank4_channels_first": ((4, 8, 5, 5), 1, {}),
    "rank4_axis2": ((4, 5, 8, 5), 2, {}),
    "rank5_channels_last": ((2, 3, 4, 3, 8), -1, {}),
    "rank5_channels_first": ((2, 8, 3, 4, 3), 1, {}),
    "no_scale": ((4, 5, 5, 8), -1, {"scale": False}),
    "no_center": ((4, 5, 5, 8), -1, {"center": False}),
    "no_scale_no_center": ((4, 5, 5, 8), -1, {"scale": False, "center": False}),
    "small_epsilon": ((4, 5, 5, 8), -1, {"epsilon": 1e-6}),
    "renorm": ((4, 5, 5, 8), -1, {"renorm": True}),
    "float64": ((4, 5, 5, 8), -1, {"dtype": "float64"}),
}


def native_expected(name):
    shape, axis, kwargs = CONFIGS[name]
    if kwargs.get("renorm"):
        return False
    if BACKEND == "torch":
        return axis % len(shape) in (1, len(shape) - 1)
    if BACKEND == "tensorflow":
        if kwargs.get("epsilon", 1e-3) < 1.001e-5 or "dtype" in kwargs:
            return False
        if len(shape) not in (4, 5):
            return False
        return axis == -1 or (axis == 1 and tf_gpu())
    return False


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_dispatch(name):
    shape, axis, kwargs = CONFIGS[name]
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = make_layer(axis=axis, **kwargs)
    calls = []
    with count_native(calls):
        layer(x, training=True)
    assert calls == ([True] if native_expected(name) else [])


@pytest.mark.skipif(BACKEND != "torch", reason="only PyTorch's has a minimum")
def test_minimum_size_on_cpu():
    # A (256, 64) batch, the asv suite's smallest Dense shape, is below the
    # minimum: on a CPU it stays on the composite ops (asv measured the
    # kernel's train step 2.1x slower there); (512, 64) takes the kernel. On
    # a GPU, every size does.
    assert MIN_CPU_SIZE == 32768
    for rows in (256, 511, 512):
        x = kbackend.convert_to_tensor(np.ones((rows, 64), "float32"))
        native = x.device.type != "cpu" or rows == 512
        calls = []
        with (
            mock.patch.object(
                kbackend.nn, "FUSED_BATCH_NORM_MIN_CPU_SIZE", MIN_CPU_SIZE
            ),
            count_native(calls),
        ):
            make_layer()(x, training=True)
            make_layer()(x, training=False)
        assert calls == ([True, False] if native else []), rows


ONEDNN_PROBE = """
import numpy as np
from keras import layers
from keras.src import backend
from tensorflow.python.util import _pywrap_util_port

calls = []
fused = backend.nn.fused_batch_normalization


def spy(*args, **kwargs):
    result = fused(*args, **kwargs)
    calls.append(kwargs["training"])
    return result


backend.nn.fused_batch_normalization = spy
layers.BatchNormalization()(np.ones((4, 3, 3, 8), "float32"), training=True)
print(_pywrap_util_port.IsMklEnabled(), backend.nn._cpu_only(), calls)
"""


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's oneDNN switch")
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_tensorflow_cpu_kernel_needs_onednn(onednn):
    # Without the fixture above, in a fresh process (TensorFlow reads
    # TF_ENABLE_ONEDNN_OPTS when it starts): on a CPU, FusedBatchNormV3 is
    # used with oneDNN's optimizations only: without them, the kernel
    # measured no faster than the composite ops (docs/native-kernels.md).
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, KERAS_BACKEND="tensorflow")
    out = (
        subprocess.run(
            [sys.executable, "-c", ONEDNN_PROBE],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    mkl, cpu_only, calls = out.split(" ", 2)
    assert mkl == ("True" if onednn == "1" else "False")
    native = onednn == "1" or cpu_only == "False"
    assert calls == ("[True]" if native else "[]")


def test_dispatch_fallbacks():
    # A mask, one value per channel and trainable=False (inference) with the
    # 4D channels-last shape that both backends compute natively.
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 8)).astype("float32")
    calls = []
    with count_native(calls):
        make_layer()(x, training=True, mask=np.ones((4, 5, 5), bool))
        make_layer()(x[:1, :1, :1], training=True)
        frozen = make_layer()
        frozen.trainable = False
        frozen(x, training=True)
        make_layer()(x, training=False)
    assert calls == ([False, False] if NATIVE else [])


@needs_native
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_native_matches_composite(name, rule, other_rule):
    shape, axis, kwargs = CONFIGS[name]
    dtype = kwargs.get("dtype", "float32")
    x = np.random.default_rng(1).normal(2.0, 3.0, size=shape).astype(dtype)
    native, layer = run(x, axis=axis, **kwargs)
    with composite_only():
        composite, _ = run(x, axis=axis, **kwargs)
    assert_same(native, composite, F32)
    if not kwargs.get("renorm"):
        # Two identical batches: the Bessel series' rule, applied once.
        mean, var = moving_statistics([x, x], rule, 0.5, axis)
        np.testing.assert_allclose(native[-2], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(native[-1], var, rtol=1e-5)
        _, other = moving_statistics([x, x], other_rule, 0.5, axis)
        assert not np.allclose(native[-1], other, rtol=1e-5)
        # Nor is the kernels' unbiased variance corrected a second time.
        _, batch_var, n = batch_moments(x, axis)
        twice = 0.25 + 0.75 * batch_var * (n / (n - 1)) ** 2
        assert not np.allclose(native[-1], twice, rtol=1e-5)


@needs_native
@pytest.mark.parametrize(
    "policy,tolerance",
    [
        ("mixed_float16", {"rtol": 2e-3, "atol": 2e-3}),
        ("mixed_bfloat16", {"rtol": 2e-2, "atol": 2e-2}),
    ],
)
@pytest.mark.parametrize("axis", [-1, 1])
def test_native_matches_composite_mixed_precision(policy, tolerance, axis):
    import ml_dtypes

    low = {"mixed_float16": np.float16, "mixed_bfloat16": ml_dtypes.bfloat16}
    shape = (4, 5, 5, 8) if axis == -1 else (4, 8, 5, 5)
    x = np.random.default_rng(2).normal(2.0, 3.0, size=shape).astype(low[policy])
    keras.config.set_dtype_policy(policy)
    try:
        native, layer = run(x, axis=axis)
        with composite_only():
            composite, _ = run(x, axis=axis)
    finally:
        keras.config.set_dtype_policy("float32")
    assert keras.backend.standardize_dtype(layer.moving_variance.dtype) == "float32"
    assert_same(native[:-2], composite[:-2], tolerance)
    assert_same(native[-2:], composite[-2:], F32)


@needs_native
@pytest.mark.parametrize(
    "shape,axis", [((1, 8), -1), ((1, 1, 1, 8), -1), ((1, 8, 1, 1), 1)]
)
def test_single_value_per_channel(shape, axis):
    # n = 1: no unbiased variance. The composite path uses the batch
    # variance, 0 (factor 1); the kernels would raise (PyTorch) or return
    # NaN (cuDNN), so the layer must fall back.
    x = np.random.default_rng(3).normal(size=shape).astype("float32")
    native, layer = run(x, axis=axis)
    with composite_only():
        composite, _ = run(x, axis=axis)
    assert_same(native, composite, F32)
    assert np.all(np.isfinite(np.concatenate([v.ravel() for v in native])))
    np.testing.assert_allclose(numpy(layer.moving_variance), 0.25)


@needs_native
def test_trainable_false_is_inference(backend):
    x = np.random.default_rng(4).normal(size=(4, 5, 5, 8)).astype("float32")

    def frozen_run():
        layer = make_layer()
        layer.build(x.shape)
        layer.moving_mean.assign(np.linspace(-1, 1, 8))
        layer.moving_variance.assign(np.linspace(0.5, 2, 8))
        layer.trainable = False
        dy = np.ones(x.shape, "float32")
        return step(layer, x, dy, True) + [numpy(layer.moving_variance)]

    calls = []
    with count_native(calls):
        native = frozen_run()
    assert calls == [False]
    with composite_only():
        composite = frozen_run()
    assert_same(native, composite, F32)
    np.testing.assert_allclose(native[-1], np.linspace(0.5, 2, 8), rtol=1e-6)


def test_unknown_batch_size_in_tf_function(backend, rule):
    if backend != "tensorflow":
        pytest.skip("tf.function with an unknown batch size: TensorFlow only")
    import tensorflow as tf

    # (None, 1, 1, 3): n is the batch size, only known when the graph runs,
    # and 1 for the second batch: its moving variance update must be the
    # composite path's (batch variance 0), not NaN.
    rng = np.random.default_rng(5)
    batches = [rng.normal(size=(b, 1, 1, 3)).astype("float32") for b in (3, 1, 2)]
    results = {}
    for path in ("native", "composite"):
        layer = make_layer()
        layer.build((None, 1, 1, 3))
        fn = tf.function(
            lambda x, layer=layer: layer(x, training=True),
            input_signature=[tf.TensorSpec([None, 1, 1, 3], tf.float32)],
        )
        calls = []
        context = composite_only() if path == "composite" else count_native(calls)
        with context:
            fn.get_concrete_function()
        assert calls == ([True] if path == "native" else [])
        outputs = [numpy(fn(batch)) for batch in batches]
        results[path] = outputs + [
            numpy(layer.moving_mean),
            numpy(layer.moving_variance),
        ]
    assert_same(results["native"], results["composite"], F32)
    mean, var = moving_statistics(batches, rule, 0.5)
    np.testing.assert_allclose(results["native"][-1], var, rtol=1e-5)
    np.testing.assert_allclose(results["native"][-2], mean, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_matches_composite(data_format, jit_compile, backend):
    # A compiled train function (TensorFlow: tf.function, with XLA when
    # jit_compile=True; PyTorch: eager), 10 samples with batch_size=4: a
    # partial last batch. Weights, moving statistics and predictions agree.
    if jit_compile and backend != "tensorflow":
        pytest.skip("jit_compile with the native kernel: TensorFlow only")
    axis = -1 if data_format == "channels_last" else 1
    shape = (5, 5, 3) if axis == -1 else (3, 5, 5)
    rng = np.random.default_rng(6)
    x = rng.normal(1.0, 2.0, size=(10,) + shape).astype("float32")
    y = rng.normal(size=(10, 4)).astype("float32")

    def fit():
        keras.utils.set_random_seed(7)
        model = keras.Sequential(
            [
                keras.Input(shape),
                # Not Conv2D: TensorFlow's CPU kernels have no channels-first
                # gradient.
                layers.Dense(6),
                make_layer(axis=axis, momentum=0.8),
                layers.Flatten(),
                layers.Dense(4),
            ]
        )
        model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return [numpy(w) for w in model.weights] + [numpy(model.predict(x, verbose=0))]

    calls = []
    with count_native(calls):
        native = fit()
    if backend == "tensorflow":
        assert bool(calls) == (axis == -1 or tf_gpu())
    else:
        assert bool(calls) == NATIVE
    with composite_only():
        composite = fit()
    assert_same(native, composite, {"rtol": 1e-4, "atol": 1e-5})


@needs_native
def test_native_kernel_returns_the_unbiased_variance():
    # The backend function itself: the batch is normalized with its biased
    # variance; the returned variance is the unbiased one (for the moving
    # average), the mean the batch mean.
    x = np.random.default_rng(8).normal(2.0, 3.0, size=(4, 5, 5, 8))
    x = x.astype("float32")
    outputs, mean, variance = kbackend.nn.fused_batch_normalization(
        x, None, None, axis=-1, epsilon=1e-3, training=True
    )
    axes = (0, 1, 2)
    expected = (x - x.mean(axes)) / np.sqrt(x.var(axes) + 1e-3)
    np.testing.assert_allclose(numpy(outputs), expected, **F32)
    np.testing.assert_allclose(numpy(mean), x.mean(axes), **F32)
    np.testing.assert_allclose(numpy(variance), x.var(axes, ddof=1), rtol=1e-5)


@needs_native
@pytest.mark.parametrize(
    "dtype,tolerance",
    [
        ("float16", {"rtol": 2e-3, "atol": 4e-3}),
        ("bfloat16", {"rtol": 2e-2, "atol": 3e-2}),
    ],
)
@pytest.mark.parametrize("axis", [-1, 1])
def test_native_kernel_low_precision_inputs(dtype, tolerance, axis):
    # Called directly with float16 / bfloat16 inputs (the layer upcasts
    # first): the kernels keep float32 statistics and return outputs in the
    # input dtype, within one unit in the last place of the reference.
    import ml_dtypes

    low = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]
    shape = (4, 5, 5, 8) if axis == -1 else (4, 8, 5, 5)
    x = np.random.default_rng(9).normal(2.0, 3.0, size=shape).astype(low)
    try:
        outputs, mean, variance = kbackend.nn.fused_batch_normalization(
            x, None, None, axis=axis, epsilon=1e-3, training=True
        )
    except NotImplementedError:
        assert BACKEND == "tensorflow" and axis == 1 and not tf_gpu()
        return
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype
    assert keras.backend.standardize_dtype(variance.dtype) == "float32"
    x64 = x.astype(np.float64)
    axes = tuple(i for i in range(4) if i != axis % 4)
    expand = [1, 1, 1, 1]
    expand[axis] = 8
    m, v = x64.mean(axes), x64.var(axes)
    expected = (x64 - m.reshape(expand)) / np.sqrt(v.reshape(expand) + 1e-3)
    np.testing.assert_allclose(numpy(outputs).astype(np.float64), expected, **tolerance)
    np.testing.assert_allclose(numpy(mean), m, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(numpy(variance), x64.var(axes, ddof=1), rtol=1e-5)
