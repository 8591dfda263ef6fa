"""Runs the time_ benchmarks of benchmarks/keras3 in this process, for
kbb.bench.workers (`kbb bench run`, `kbb bench power`, `kbb decisions`):

    worker.py OUTPUT.json [--bench REGEX] [--skip REGEX] [--case NAME ...]
        [--paths PATH,...] [--min N] [--max N] [--budget S] [--warmup S]
        [--seed K]

Each benchmark (or each named in full by --case), in an order shuffled
by --seed: `setup`, calls for --warmup seconds, then one-call samples
(wall clock and CPU time) until --min of them and --budget seconds, or
--max (benchmarks/README.md, "Timings"). With --paths, each benchmark on
each path of keras' switch (`kernel`: the backend's kernel; any other
name: the backend-agnostic ops).

With --slow BLOCKS (`kbb bench power`) it measures instead the true cost
of the slow mutant's multiply (benchmarks/mutants/slow.patch), turned on
and off in this process (the module's KBB_SLOW) so that both sides share
its memory and load: per benchmark, BLOCKS blocks, each the median of
SLOW_SAMPLES calls with the op and of as many without, in a random order;
it writes the log ratio of each block.
"""

import argparse
import ast
import functools
import importlib
import inspect
import itertools
import json
import math
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("layer", "train_step", "block", "peer")
WARMUP = 0.2
_NAME = re.compile(r"^(\w+)\.(\w+)\.(\w+)\((.*)\)$")
TF_CALLS = []  # calls of tf_kernel: it must run on the kernel path only
SLOW_SAMPLES, SLOW_WARMUP = 7, 3  # calls per block and side, after a warm-up


def set_threads(backend, threads):
    """The frameworks' own thread pools; the environment set the rest."""
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        return {"torch": torch.get_num_threads()}
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from tensorflow.python.util import _pywrap_util_port

        return {
            "onednn": _pywrap_util_port.IsMklEnabled(),
            "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
    return {"xla_flags": os.environ.get("XLA_FLAGS", "")}


def benchmarks(pattern):
    """(name, class, method name, params) of every time_ benchmark."""
    found = []
    for module_name in MODULES:
        module = importlib.import_module(f"keras3.{module_name}")
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            params = cls.params if isinstance(cls.params, tuple) else (cls.params,)
            for method in sorted(m for m in dir(cls) if m.startswith("time_")):
                for combo in itertools.product(*params):
                    args = ", ".join(map(repr, combo))
                    name = f"{module_name}.{cls_name}.{method}({args})"
                    if re.search(pattern, name):
                        found.append((name, cls, method, combo))
    return found


def parse(name):
    """(module, class, method, params) of a benchmark's full name.

    >>> parse("layer.BatchNormLayer.time_forward_backward('1024x64', False)")
    ('layer', 'BatchNormLayer', 'time_forward_backward', ('1024x64', False))
    """
    module, cls, method, params = _NAME.match(name).groups()
    return module, cls, method, ast.literal_eval(f"({params},)")


def named(name):
    """(name, class, method name, params) of a benchmark named in full, at
    any params (not only its class's)."""
    module, cls, method, params = parse(name)
    cls = getattr(importlib.import_module(f"keras3.{module}"), cls)
    return name, cls, method, params


def tf_kernel(x, axis, offset=None, scale=None, epsilon=1e-3, synchronized=False):
    """FusedBatchNormV3 as a TensorFlow backend's
    `batch_normalization_training` (4D channels-last float32 inputs, the
    cases of `kbb decisions`): the outputs, the batch mean and the unbiased
    batch variance, as torch's returns them."""
    import tensorflow as tf

    TF_CALLS.append(True)
    channels = x.shape[-1]
    scale = tf.ones([channels]) if scale is None else scale
    offset = tf.zeros([channels]) if offset is None else offset
    return tf.compat.v1.nn.fused_batch_norm(
        x, scale, offset, epsilon=epsilon, is_training=True
    )


def on_path(path, run):
    """run() on `path` of keras' switch, with every program built anew
    (common's cache emptied); on TensorFlow, where tf_kernel is installed,
    it must have reached the kernel on the kernel path only."""
    from keras.src.backend import config
    from keras3 import common

    common._cache.clear()
    config._set_use_backend_agnostic_ops(path != "kernel")
    before = len(TF_CALLS)
    try:
        found = run()
    finally:
        config._set_use_backend_agnostic_ops(False)
    tf = common.BACKEND == "tensorflow"
    if tf and found and (len(TF_CALLS) > before) != (path == "kernel"):
        raise RuntimeError(f"{path}: the wrong path ran")
    return found


def measure(cls, method, combo, minimum, maximum, budget, warmup=WARMUP):
    """{wall, cpu: samples; model_bytes; memory_peak; setup_s}, or None
    if the benchmark skips this backend or case."""
    from keras3 import common

    bench = cls()
    began = time.perf_counter()
    try:
        bench.setup(*combo)
    except NotImplementedError:
        return None
    setup = time.perf_counter() - began
    call = getattr(bench, method)
    common.memory_reset()
    start = time.perf_counter()
    while True:
        call(*combo)
        if time.perf_counter() - start >= warmup:
            break
    wall, cpu = [], []
    start = time.perf_counter()
    while len(wall) < maximum and (
        len(wall) < minimum or time.perf_counter() - start < budget
    ):
        w0, c0 = time.perf_counter(), time.process_time()
        call(*combo)
        # 6 significant digits: far below the clocks' noise, and the raw
        # record of a run stays small.
        wall.append(float(f"{time.perf_counter() - w0:.6g}"))
        cpu.append(float(f"{time.process_time() - c0:.6g}"))
    size = getattr(bench, "model_bytes", None)
    found = {"wall": wall, "cpu": cpu, "model_bytes": size(*combo) if size else None}
    return {**found, "memory_peak": common.memory_peak(), "setup_s": setup}


def timed(call):
    """Seconds of one call()."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def slow_logs(cls, method, combo, blocks, rng):
    """The log ratios, the slow mutant's op on over off, of `blocks` blocks
    of one benchmark (module doc), or None if it skips this case."""
    from keras.src.layers.normalization import batch_normalization as module

    if not hasattr(module, "KBB_SLOW"):
        raise SystemExit(f"{module.__file__} is not the slow mutant")
    bench = cls()
    try:
        bench.setup(*combo)
    except NotImplementedError:
        return None
    call = functools.partial(getattr(bench, method), *combo)

    def median(n):
        return statistics.median(timed(call) for _ in range(n))

    logs = []
    for _ in range(blocks):
        medians = {}
        for flag in rng.sample([True, False], 2):
            module.KBB_SLOW = flag
            median(SLOW_WARMUP)
            medians[flag] = median(SLOW_SAMPLES)
        logs.append(math.log(medians[True] / medians[False]))
    module.KBB_SLOW = True
    return logs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("output", type=Path)
    add("--bench", default="", help="regex of names to run")
    add("--skip", default="^$", help="regex of names to skip")
    add("--case", nargs="+", default=[], help="full names to run instead")
    add("--paths", help="kernel,composite,...: each benchmark on each path")
    add("--min", type=int, default=5)
    add("--max", type=int, default=50)
    add("--budget", type=float, default=0.5)
    add("--warmup", type=float, default=WARMUP)
    add("--slow", type=int, metavar="BLOCKS", help="the slow mutant's true cost")
    add("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    threads = int(os.environ["KBB_BENCH_THREADS"])
    import keras
    import triad

    backend = keras.backend.backend()
    record = {
        "backend": backend,
        "keras": keras.version(),
        "keras_file": keras.__file__,
        "pid": os.getpid(),
        "threads": {"requested": threads, **set_threads(backend, threads)},
        "triad_gbps": triad.triad(threads, repeats=3),
        "benchmarks": {},
    }
    found = [named(n) for n in args.case] or [
        b for b in benchmarks(args.bench) if not re.search(args.skip, b[0])
    ]
    if args.slow:
        rng = random.Random(args.seed)
        logs = {n: slow_logs(c, m, combo, args.slow, rng) for n, c, m, combo in found}
        record["logs"] = {f"{backend} {n}": v for n, v in logs.items() if v}
    paths = [] if args.slow else args.paths.split(",") if args.paths else [None]
    if args.paths and backend == "tensorflow":
        from keras.src import backend as keras_backend

        nn = getattr(keras_backend, "ops", keras_backend).nn
        nn.batch_normalization_training = tf_kernel
    jobs = [(path, b) for b in found for path in paths]
    random.Random(args.seed).shuffle(jobs)
    sampling = (args.min, args.max, args.budget, args.warmup)
    for path, (name, cls, method, combo) in jobs:
        run = functools.partial(measure, cls, method, combo, *sampling)
        measured = run() if path is None else on_path(path, run)
        if measured is not None:
            record["benchmarks"][f"{path} {name}" if path else name] = measured
    record["triad_gbps_after"] = triad.triad(threads, repeats=3)
    args.output.write_text(json.dumps(record))


if __name__ == "__main__":
    main()
