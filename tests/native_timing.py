"""Development timing of BatchNormalization's native path against the
composite one, in one process (not the asv suite: figures from this script
are provisional).

    KERAS_BACKEND=tensorflow python tests/native_timing.py [--jit] [--inference]

Each configuration is timed as one training step of a layer: forward,
backward (gradients of inputs, gamma and beta) and the moving-statistics
update, on the backend's default device. The composite path is forced as
an ineligible call takes it (`backend.nn.fused_batch_normalization` raising
NotImplementedError). The two paths alternate over `--rounds` rounds of
`reps` steps each; the script prints the median per-step times and their
ratio, with the load average before and after.
"""

import argparse
import contextlib
import os
import statistics
import time
from unittest import mock

import keras
import numpy as np
from keras.src import backend as kbackend

SHAPES = {
    "dense_256x64": ((256, 64), -1),
    "dense_4096x1024": ((4096, 1024), -1),
    "nhwc_32x28x28x64": ((32, 28, 28, 64), -1),
    "nhwc_8x112x112x64": ((8, 112, 112, 64), -1),
    "nchw_32x64x28x28": ((32, 64, 28, 28), 1),
    "seq_32x196x64": ((32, 196, 64), -1),
    "ndhwc_4x16x16x16x32": ((4, 16, 16, 16, 32), -1),
}


@contextlib.contextmanager
def composite_only():
    with mock.patch.object(
        kbackend.nn, "fused_batch_normalization", side_effect=NotImplementedError
    ):
        yield


def make_step(layer, x, dy, training, jit):
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=jit)
        def step(x, dy):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=training)
                loss = tf.reduce_sum(y * dy)
            return tape.gradient(loss, [x] + layer.trainable_weights)

        x, dy = tf.constant(x), tf.constant(dy)
        return lambda: step(x, dy), lambda out: out[0].numpy()
    if name == "torch":
        import torch

        x = kbackend.convert_to_tensor(x).requires_grad_()
        dy = kbackend.convert_to_tensor(dy)

        def step():
            x.grad = None
            for w in layer.trainable_weights:
                w.value.grad = None
            y = layer(x, training=training)
            (y * dy).sum().backward()
            return x.grad

        def sync(out):
            if out.is_cuda:
                torch.cuda.synchronize()

        return step, sync
    raise SystemExit(f"no native path on {name}")


def time_config(shape, axis, args):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype("float32")
    dy = rng.normal(size=shape).astype("float32")
    steps = {}
    for path in ("composite", "native"):
        layer = keras.layers.BatchNormalization(axis=axis)
        layer.build(shape)
        context = composite_only if path == "composite" else contextlib.nullcontext
        with context():
            run, sync = make_step(layer, x, dy, not args.inference, args.jit)
            for _ in range(3):
                sync(run())
        steps[path] = (run, sync, context)
    budget = args.elements / np.prod(shape)
    reps = max(3, int(budget))
    times = {path: [] for path in steps}
    for _ in range(args.rounds):
        for path, (run, sync, context) in steps.items():
            with context():
                start = time.perf_counter()
                for _ in range(reps):
                    out = run()
                sync(out)
            times[path].append((time.perf_counter() - start) / reps * 1e3)
    return {path: statistics.median(t) for path, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jit", action="store_true", help="XLA (TensorFlow)")
    parser.add_argument("--inference", action="store_true")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--elements", type=float, default=4e6, help="elements per round"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("configs", nargs="*", default=list(SHAPES))
    args = parser.parse_args()
    if args.threads and keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(args.threads)
    mode = "inference" if args.inference else "training"
    print(
        f"# keras {keras.version()} {keras.backend.backend()} {mode} "
        f"jit={args.jit} rounds={args.rounds} "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for name in args.configs:
        shape, axis = SHAPES[name]
        m = time_config(shape, axis, args)
        print(
            f"{name:22s} composite {m['composite']:9.3f} ms  "
            f"native {m['native']:9.3f} ms  "
            f"speedup {m['composite'] / m['native']:5.2f}",
            flush=True,
        )
    print(f"# load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
