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


def dims(shape):
    return tuple(int(d) for d in shape.split("x"))


def cached(key, make):
    """`make()`, once per process: asv calls `setup` before every sample."""
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


def skip_unless_runnable(jit_compile):
    """Skips (NotImplementedError) the combinations this suite leaves out.

    torch.compile of the train step takes 50 to 130 s per shape on a 2-core
    CPU, in every process asv starts, and recompiles on GPU as well: too
    slow for this suite, so the PyTorch backend runs eagerly only.
    """
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
