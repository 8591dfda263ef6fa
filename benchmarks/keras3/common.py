"""What the benchmark modules share: cases, threads, steps, device sync.
Nothing here touches a device at import time, so that asv's forkserver
may fork after importing it.
"""

import os
import time

import keras
import numpy as np
from keras import ops

BACKEND = keras.backend.backend()
QUICK = os.environ.get("KBB_BENCH_QUICK") == "1"
GPU = bool(os.environ.get("KBB_BENCH_GPU"))

# Where the backend has the choice: TensorFlow runs its graph with XLA or
# without, JAX always jits (what its users run), PyTorch runs eagerly
# (torch.compile takes minutes per shape on 2 cores: left out).
JIT = [False, True]


class Timed:
    """asv's time_ settings: wall clock, each sample one call."""

    timer = time.perf_counter
    rounds = 2
    repeat = (5, 30, 1.0)
    warmup_time = 0.2


def skip_unless_runnable(jit_compile):
    if BACKEND == "torch" and jit_compile:
        raise NotImplementedError("torch.compile is left out (compile time)")
    if BACKEND == "jax" and not jit_compile:
        raise NotImplementedError("JAX runs jitted")
    backends = os.environ.get("KBB_BENCH_BACKENDS")
    if backends and BACKEND not in backends.split(","):
        raise NotImplementedError(f"KBB_BENCH_BACKENDS={backends}")


def parse_case(case):
    """ "32x28x28x64:channels_first" -> ((32, 28, 28, 64), option)."""
    shape, _, option = case.partition(":")
    return tuple(int(d) for d in shape.split("x")), option


def elements(shape):
    return int(np.prod(shape))


def batch(shape, seed=0, dtype="float32"):
    """N(0, 1) data as a backend tensor, on the default device."""
    x = np.random.default_rng(seed).standard_normal(shape, dtype="float32")
    return ops.convert_to_tensor(x, dtype=dtype)


def sync(outputs):
    """Waits until every output is computed (on the device too)."""
    if BACKEND == "jax":
        import jax

        jax.block_until_ready(outputs)
    elif BACKEND == "torch" and GPU:
        import torch

        torch.cuda.synchronize()
    elif BACKEND == "tensorflow" and GPU:
        import tensorflow as tf

        tf.test.experimental.sync_devices()
    return outputs


_cache = {}


def cached(key, make):
    """`make()`, once per process: asv calls `setup` before every sample."""
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


def memory_reset():
    """Starts counting the peak of array memory on the device (GPU only)."""
    if not GPU:
        return
    if BACKEND == "torch":
        import torch

        torch.cuda.reset_peak_memory_stats()
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")


def memory_peak():
    """Peak bytes of arrays on the device since memory_reset; None on a CPU
    (JAX's arrays: the XLA memory analysis of the counters)."""
    if not GPU:
        return None
    if BACKEND == "torch":
        import torch

        return torch.cuda.max_memory_allocated()
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")
