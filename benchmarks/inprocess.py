"""The true cost of the slow mutant, measured in one process, interleaved.

    python benchmarks/inprocess.py OUTPUT.json [--bench REGEX] [--blocks B]

Started by `kbb bench power` (kbb.bench.workers) with the slow mutant's
build first on PYTHONPATH (benchmarks/mutants/slow.patch), eager PyTorch
and the run's threads in the environment. Its extra multiply is turned on
and off in the running process (the module's KBB_SLOW), so both sides
share the process, its memory and its load: for each benchmark, BLOCKS
blocks, each timing SAMPLES calls with the op and SAMPLES without, in a
random order, after a warm-up of each. It writes the log ratio of each
block's two medians; `kbb bench power` takes their geometric mean with a
95 % Student interval: the ratio the timing run should find.
"""

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLOCKS, SAMPLES, WARMUP = 15, 7, 3


def median_time(call, combo, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call(*combo)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(cls, method, combo, module, args, rng):
    """The log ratios, op on over op off, of the blocks of one benchmark."""
    bench = cls()
    bench.setup(*combo)
    call = getattr(bench, method)
    logs = []
    for _ in range(args.blocks):
        medians = {}
        for flag in rng.sample([True, False], 2):
            module.KBB_SLOW = flag
            median_time(call, combo, WARMUP)
            medians[flag] = median_time(call, combo, SAMPLES)
        logs.append(math.log(medians[True] / medians[False]))
    module.KBB_SLOW = True
    return logs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--bench", default="")
    parser.add_argument("--blocks", type=int, default=BLOCKS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import worker
    from keras.src.layers.normalization import batch_normalization as module

    if not hasattr(module, "KBB_SLOW"):
        raise SystemExit(f"{module.__file__} is not the slow mutant")
    threads = int(os.environ["KBB_BENCH_THREADS"])
    worker.set_threads("torch", threads)
    rng = random.Random(args.seed)
    logs = {}
    for name, cls, method, combo in worker.benchmarks(args.bench):
        try:
            logs[f"torch {name}"] = measure(cls, method, combo, module, args, rng)
        except NotImplementedError:
            continue
    args.output.write_text(json.dumps({"logs": logs}))


if __name__ == "__main__":
    main()
