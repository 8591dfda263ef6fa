"""Runs the time_ benchmarks of benchmarks/keras3 in this process.

    python benchmarks/worker.py OUTPUT.json [--bench REGEX] [--skip REGEX] [--min N]
        [--max N] [--budget S] [--seed K]

Started by src/kbb/bench/run.py once per build, backend and round, with the
build's keras first on PYTHONPATH, KERAS_BACKEND and the thread settings
in the environment (KBB_BENCH_THREADS, OMP_NUM_THREADS, XLA_FLAGS, ...).
It fixes the frameworks' thread pools to KBB_BENCH_THREADS, measures the
triad bandwidth (benchmarks/triad.py) with as many threads, then runs each
benchmark (classes and params as asv runs them, in an order shuffled by
--seed): `setup`, calls for WARMUP seconds, then samples until it has
--min of them and --budget seconds passed, or --max. A sample is one
call, timed by the wall clock (time.perf_counter; the benchmark waits for
the device) and by the CPU time of the process (time.process_time).
Writes the samples, the bytes model, the device's array memory peak where
the backend reports it, the thread counts and the versions.
"""

import argparse
import importlib
import inspect
import itertools
import json
import os
import random
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("layer", "train_step", "block", "peer")
WARMUP = 0.2


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


def measure(cls, method, combo, minimum, maximum, budget):
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
        if time.perf_counter() - start >= WARMUP:
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
    return {
        "wall": wall,
        "cpu": cpu,
        "model_bytes": size(*combo) if size else None,
        "memory_peak": common.memory_peak(),
        "setup_s": setup,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--bench", default="", help="regex of names to run")
    parser.add_argument("--skip", default="^$", help="regex of names to skip")
    parser.add_argument("--min", type=int, default=5)
    parser.add_argument("--max", type=int, default=50)
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
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
    found = [b for b in benchmarks(args.bench) if not re.search(args.skip, b[0])]
    random.Random(args.seed).shuffle(found)
    for name, cls, method, combo in found:
        measured = measure(cls, method, combo, args.min, args.max, args.budget)
        if measured is not None:
            record["benchmarks"][name] = measured
    record["triad_gbps_after"] = triad.triad(threads, repeats=3)
    args.output.write_text(json.dumps(record))


if __name__ == "__main__":
    main()
