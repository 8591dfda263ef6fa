"""What the benchmark modules share: shapes, models, timing settings.

asv runs the suite with the "forkserver" launch method: the forkserver
imports these modules (and with them keras and its backend) once, and each
benchmark runs in a process forked from it. Nothing here touches a device
at import time, so that forking stays safe.
"""

import os
import shutil
import time

import keras
import numpy as np
from keras import layers
from keras import ops

BACKEND = keras.backend.backend()

# The smoke run (`kbb.bench --quick` sets KBB_BENCH_QUICK=1) takes one shape
# (and statistic.py one n).
QUICK = os.environ.get("KBB_BENCH_QUICK") == "1"

# Values per channel of a BatchNormalization in a Dense network, (batch,
# features), and in a convolutional one, NHWC.
SHAPES = ["256x64", "4096x1024", "32x28x28x64", "8x112x112x64"]
if QUICK:
    SHAPES = ["32x28x28x64"]

# Where the backend has the choice: TensorFlow compiles the train step with
# XLA or not, JAX jits it or runs it op by op, PyTorch runs it eagerly or
# with torch.compile (skipped, see `skip_unless_runnable`).
JIT = [False, True]

# Timing settings of the time_ benchmarks, checked by the A/A control of
# `kbb.bench` (docs/benchmarks.md) on a 2-core machine: each sample is one
# train step (asv re-runs `setup` between samples, a cached lookup here), 10
# to 30 samples or 1.5 s per process after 0.3 s of warm-up, and 2 processes
# (rounds) per commit, which asv interleaves between the commits.
TIMING = {"rounds": 2, "repeat": (10, 30, 1.5), "warmup_time": 0.3}

# The clock: on a CPU, the CPU time of the process, all threads, which the
# other jobs of a shared machine disturb far less than wall time; where
# there is a GPU (or KBB_BENCH_TIMER=wall), wall time, which covers the
# device's work.
_default_timer = "wall" if shutil.which("nvidia-smi") else "cpu"
if (os.environ.get("KBB_BENCH_TIMER") or _default_timer) == "cpu":
    TIMING["timer"] = time.process_time
else:
    TIMING["timer"] = time.perf_counter

_cache = {}


class Timed:
    """The time_ settings of TIMING, as asv reads them from a class."""

    rounds = TIMING["rounds"]
    repeat = TIMING["repeat"]
    warmup_time = TIMING["warmup_time"]
    timer = TIMING["timer"]


class TimedShapes(Timed):
    """Timed, with the suite's shapes and compilation modes as params."""

    params = (SHAPES, JIT)
    param_names = ["shape", "jit_compile"]


def dims(shape):
    return tuple(int(d) for d in shape.split("x"))


def cached(key, make):
    """`make()`, once per process: asv calls `setup` before every sample."""
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


# KBB_BENCH_BACKENDS=tensorflow (comma-separated names): the others skip
# their time_ benchmarks, for a run that only one backend's setting changes
# (TF_ENABLE_ONEDNN_OPTS, say).
BACKENDS = os.environ.get("KBB_BENCH_BACKENDS") or BACKEND


def skip_unless_runnable(jit_compile):
    """Skips (NotImplementedError) the combinations this suite leaves out.

    torch.compile of the train step takes 50 to 130 s per shape on a 2-core
    CPU, in every process asv starts, and recompiles on GPU as well: too
    slow for this suite, so the PyTorch backend runs eagerly only.
    """
    if BACKEND not in BACKENDS.split(","):
        raise NotImplementedError(f"KBB_BENCH_BACKENDS={BACKENDS}")
    if jit_compile and BACKEND == "torch":
        raise NotImplementedError("torch.compile is left out (compile time)")


def batch(shape, seed=0):
    """A batch of N(0, 1) data as a backend tensor, on the default device."""
    x = np.random.default_rng(seed).standard_normal(shape, dtype="float32")
    return ops.convert_to_tensor(x)


def bn_model(shape, jit_compile=False, momentum=0.99):
    """Input -> BatchNormalization, compiled with SGD and MSE, built."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, layers.BatchNormalization(momentum=momentum)(inputs))
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    return model


def trained_bn_model(shape, jit_compile):
    """A BatchNormalization train step, traced and compiled by a first call."""
    model = bn_model(shape, jit_compile)
    x = batch(shape)
    y = ops.zeros_like(x)
    model.train_on_batch(x, y)
    return model, x, y


def layer_step(shape, jit_compile):
    """One training step of a BatchNormalization layer alone, as a callable:
    the forward pass, the gradients of the inputs, gamma and beta for a fixed
    output gradient, and the moving statistics, compiled as the backend
    compiles a train step (tf.function, XLA with jit_compile; jax.jit or op
    by op; PyTorch eagerly). It reads one value of each gradient back to the
    host, so that each call waits for the device."""
    layer = layers.BatchNormalization(momentum=0.99)
    layer.build(shape)
    x, dy = batch(shape), batch(shape, seed=1)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=jit_compile)
        def step(x, dy):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            grads = tape.gradient(y, [x, *layer.trainable_weights], dy)
            return tf.stack([tf.reshape(g, [-1])[0] for g in grads])

        step(x, dy)
        return lambda: step(x, dy).numpy()
    if BACKEND == "jax":
        import jax

        def forward(trainable, x, non_trainable):
            return layer.stateless_call(trainable, non_trainable, x, training=True)

        def step(trainable, non_trainable, x, dy):
            _, vjp, non_trainable = jax.vjp(
                lambda t, x: forward(t, x, non_trainable), trainable, x, has_aux=True
            )
            grads, dx = vjp(dy)
            return [dx.ravel()[0]] + [g.ravel()[0] for g in grads], non_trainable

        step = jax.jit(step) if jit_compile else step
        trainable = [v.value for v in layer.trainable_variables]
        state = [[v.value for v in layer.non_trainable_variables]]

        def run():
            first, state[0] = step(trainable, state[0], x, dy)
            jax.block_until_ready(first)

        run()
        return run
    x.requires_grad_()
    weights = [w.value for w in layer.trainable_weights]

    def run():
        for t in (x, *weights):
            t.grad = None
        layer(x, training=True).backward(dy)
        return [t.grad.ravel()[0].item() for t in (x, *weights)]

    run()
    return run
