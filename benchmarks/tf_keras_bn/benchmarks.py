"""tf-keras' BatchNormalization: train step, peak memory, op count, statistic."""

import os
import shutil
import time

import numpy as np

try:
    import tensorflow as tf
    import tf_keras
except ImportError:  # the target is not installed: every benchmark skips
    tf_keras = None

SHAPES = ["256x64", "4096x1024", "32x28x28x64", "8x112x112x64"]
if os.environ.get("KBB_BENCH_QUICK") == "1":  # the smoke run: one shape
    SHAPES = ["32x28x28x64"]
KERNELS = ["fused", "nonfused"]
# asv's settings; the CPU-time clock unless on a GPU or KBB_BENCH_TIMER=wall.
GPU = shutil.which("nvidia-smi")
CPU_TIME = (os.environ.get("KBB_BENCH_TIMER") or ("wall" if GPU else "cpu")) == "cpu"


class Timed:
    timer = time.process_time if CPU_TIME else time.perf_counter
    rounds, repeat, warmup_time = 2, (10, 30, 1.5), 0.3


_cache = {}


def dims(shape):
    return tuple(int(d) for d in shape.split("x"))


def skip_unless_runnable(shape, kernel):
    if tf_keras is None:
        raise NotImplementedError("tf_keras is not installed")
    if kernel == "fused" and len(dims(shape)) != 4:
        raise NotImplementedError("the fused kernel takes 4D inputs only")


def bn_model(shape, kernel, momentum=0.99):
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input(shape[1:])
    norm = tf_keras.layers.BatchNormalization(
        momentum=momentum, fused=kernel == "fused"
    )
    model = tf_keras.Model(inputs, norm(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return model


def trained_bn_model(shape, kernel):
    if (shape, kernel) not in _cache:
        model = bn_model(shape, kernel)
        x = np.random.default_rng(0).standard_normal(shape, dtype="float32")
        x = tf.constant(x)
        y = tf.zeros_like(x)
        model.train_on_batch(x, y)
        _cache[shape, kernel] = model, x, y
    return _cache[shape, kernel]


class BatchNormTrainStep(Timed):
    """`train_on_batch` of Input -> BatchNormalization(fused=...)."""

    params = (SHAPES, KERNELS)
    param_names = ["shape", "kernel"]

    def setup(self, shape, kernel):
        skip_unless_runnable(shape, kernel)
        self.model, self.x, self.y = trained_bn_model(dims(shape), kernel)

    def time_train_step(self, shape, kernel):
        self.model.train_on_batch(self.x, self.y)

    def peakmem_train_step(self, shape, kernel):
        self.model.train_on_batch(self.x, self.y)


class TfGraphOps:
    """Ops of the train step traced by tf.function, with the functions it
    calls, batch size known when tracing (static) or not (dynamic)."""

    params = (SHAPES, KERNELS, ["static", "dynamic"])
    param_names = ["shape", "kernel", "batch_size"]
    unit = "ops"

    def setup(self, shape, kernel, batch_size):
        skip_unless_runnable(shape, kernel)

    def track_train_step_ops(self, shape, kernel, batch_size):
        model, _, _ = trained_bn_model(dims(shape), kernel)
        spec = dims(shape)
        if batch_size == "dynamic":
            spec = (None, *spec[1:])
        specs = (tf.TensorSpec(spec), tf.TensorSpec(spec))
        graph = tf.function(model.train_step).get_concrete_function(specs).graph
        graph_def = graph.as_graph_def()
        return len(graph_def.node) + sum(
            len(f.node_def) for f in graph_def.library.function
        )


class MovingVariance:
    """|mean(moving_variance) - 1| after `fit` on N(0, 1) data with n values
    per channel, as benchmarks/keras3/statistic.py, with NHWC inputs of
    shape (n, 1, 1, 8192) so that both kernels apply. Lower is better."""

    params = ([2, 4, 32], KERNELS)
    param_names = ["n", "kernel"]
    unit = "relative error"

    def setup(self, n, kernel):
        skip_unless_runnable("1x1x1x1", kernel)

    def track_moving_variance_error(self, n, kernel):
        channels, steps = 8192, 64
        rng = np.random.default_rng(8982)
        x = rng.standard_normal((n * steps, 1, 1, channels), dtype="float32")
        model = bn_model((n, 1, 1, channels), kernel, momentum=0.9)
        model.fit(x, x, batch_size=n, epochs=1, shuffle=False, verbose=0)
        moving_variance = model.layers[-1].moving_variance.numpy()
        return float(abs(np.mean(moving_variance, dtype="float64") - 1.0))
