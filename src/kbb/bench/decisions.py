"""`kbb decisions` (`tox -e native-decisions`): the native group's two
speed rules, measured on a CPU.

`tox -e native-decisions` runs it with the native group's build installed
(`kbb install keras --ref group/native`); run it on a quiet machine, where
nothing else computes. Each configuration compares, inside one build, the
layer on the backend's fused kernel ("kernel") with the backend-agnostic
ops ("composite", keras' own switch `config._set_use_backend_agnostic_ops`)
and with a second copy of the composite path ("aa", the A/A control):

- torch: does `torch.nn.functional.batch_norm` cost more than the composite
  ops for small inputs on a CPU, where its loop over the channels runs in
  parallel whatever the size? (An earlier rule, decided with a CPU-time
  clock, kept inputs below 32768 values on the composite ops.)
- tensorflow, tensorflow-onednn (TF_ENABLE_ONEDNN_OPTS=0 and 1): is
  FusedBatchNormV3 faster than the composite ops in the layer? The group
  has no TensorFlow kernel: the worker installs the variant below into the
  TensorFlow backend, where the layer looks for it.

Every worker is a fresh process with its threads fixed (--threads), one
per configuration and round, in an order shuffled anew each round; it
runs every case and path in a shuffled order, each for --budget seconds of
wall-clock samples after a warm-up. The ratios kernel / composite and
aa / composite, with simultaneous 95 % intervals over the processes, come
from kbb.bench.stats (hierarchical bootstrap, Student, Bonferroni).
Duration: about 1.5 minutes per round (--processes rounds) on 2 quiet
cores, 10 minutes with the default 6, once the environment is installed.
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks")]
# (config, kind, case): the layer's forward and backward with its input
# gradient (benchmarks/keras3/steps.py), or `train_on_batch` of Input ->
# BatchNormalization (no input gradient). Sizes below and above 32768.
CASES = {
    "torch": [
        ("layer", "64x64"),
        ("layer", "256x64"),
        ("layer", "511x64"),
        ("layer", "1024x64"),
        ("layer", "32x28x28x64"),
        ("train", "256x64"),
        ("train", "32x28x28x64"),
    ],
    "tensorflow": [
        ("layer", "32x28x28x64"),
        ("layer", "8x112x112x64"),
        ("train", "32x28x28x64"),
    ],
}
CASES["tensorflow-onednn"] = CASES["tensorflow"]
PATHS = ("kernel", "composite", "aa")
TF_CALLS = []  # the variant's calls (traces): it must run on the kernel path only
WARMUP = 0.3


def tf_batch_normalization_training(
    x, axis, offset=None, scale=None, epsilon=1e-3, synchronized=False
):
    """FusedBatchNormV3 as `ops.nn._batch_normalization_training` would call
    a TensorFlow backend's `batch_normalization_training`: 4D channels-last
    float32 inputs (the cases here), training mode; it returns the outputs,
    the batch mean and the unbiased batch variance, as torch's does."""
    import tensorflow as tf

    TF_CALLS.append(True)
    channels = x.shape[-1]
    scale = tf.ones([channels]) if scale is None else scale
    offset = tf.zeros([channels]) if offset is None else offset
    return tf.compat.v1.nn.fused_batch_norm(
        x, scale, offset, epsilon=epsilon, is_training=True
    )


def program(kind, case):
    """A callable running one step of `case`, built and traced under the
    current setting of the switch."""
    from keras3 import common
    from keras3 import steps
    from keras3 import train_step

    shape, _ = common.parse_case(case)
    if kind == "layer":
        layer = steps.bn_layer(shape)
        return steps.gradient_step(layer, layer.trainable_weights, shape, False)
    model, x, y = train_step.trained_bn_model(shape, False)
    return lambda: model.train_on_batch(x, y)


def samples(run, budget):
    start = time.perf_counter()
    while time.perf_counter() - start < WARMUP:
        run()
    out, start = [], time.perf_counter()
    while len(out) < 5 or time.perf_counter() - start < budget:
        began = time.perf_counter()
        run()
        out.append(time.perf_counter() - began)
    return out


def worker(config, seed, budget, threads):
    """{"PATH CASE-KIND": [seconds]} of one process."""
    import worker as bench_worker
    from keras.src import backend
    from keras.src.backend import config as keras_config

    bench_worker.set_threads(backend.backend(), threads)
    if config.startswith("tensorflow"):
        nn = backend.ops.nn if hasattr(backend, "ops") else backend.nn
        nn.batch_normalization_training = tf_batch_normalization_training
    jobs = [(path, kind, case) for kind, case in CASES[config] for path in PATHS]
    random.Random(seed).shuffle(jobs)
    out = {}
    for path, kind, case in jobs:
        keras_config._set_use_backend_agnostic_ops(path != "kernel")
        before = len(TF_CALLS)
        try:
            out[f"{path} {kind} {case}"] = samples(program(kind, case), budget)
        finally:
            keras_config._set_use_backend_agnostic_ops(False)
        if config.startswith("tensorflow") and (len(TF_CALLS) > before) != (
            path == "kernel"
        ):
            raise RuntimeError(f"{path} {kind} {case}: the wrong path ran")
    return out


def worker_env(config, threads):
    backend = "torch" if config == "torch" else "tensorflow"
    return {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_ENABLE_ONEDNN_OPTS": "1" if config == "tensorflow-onednn" else "0",
        "KBB_BENCH_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONHASHSEED": "0",
    }


def run_all(args):
    """{config: {"PATH CASE-KIND": [[seconds] per process]}}."""
    configs = args.configs.split(",")
    rng = random.Random(args.seed)
    results = {c: {} for c in configs}
    for round_ in range(args.processes):
        for config in rng.sample(configs, len(configs)):
            print(f"round {round_ + 1}/{args.processes}: {config}", flush=True)
            command = [sys.executable, __file__, "--worker", config]
            command += ["--seed", str(rng.randrange(2**31))]
            command += ["--budget", str(args.budget), "--threads", str(args.threads)]
            done = subprocess.run(
                command,
                env=worker_env(config, args.threads),
                capture_output=True,
                text=True,
                check=True,
            )
            for name, values in json.loads(done.stdout.splitlines()[-1]).items():
                results[config].setdefault(name, []).append(values)
    return results


def intervals(results):
    """{config: {case: (kernel Interval, A/A Interval, composite seconds)}}:
    ratios to the composite path, simultaneous over a configuration's
    cases (kbb.bench.stats)."""
    from kbb.bench import stats

    out = {}
    for config, runs in results.items():
        cases = sorted({name.split(" ", 1)[1] for name in runs})
        by_path = {p: {c: runs[f"{p} {c}"] for c in cases} for p in PATHS}
        kernel = stats.compare(by_path["composite"], by_path["kernel"])
        aa = stats.compare(by_path["composite"], by_path["aa"])
        out[config] = {
            c: (
                kernel[c],
                aa[c],
                math.exp(stats.statistic(by_path["composite"][c])),
            )
            for c in cases
        }
    return out


def table(found):
    lines = [
        "<!-- table: native-decisions -->",
        "| config | case | composite | kernel / composite [95 %] | verdict "
        "| A/A [95 %] |",
        "|---|---|---|---|---|---|",
    ]
    for config, cases in found.items():
        for case, (k, a, seconds) in cases.items():
            aa = f"{a.ratio:.2f} [{a.lo:.2f}, {a.hi:.2f}]"
            lines.append(
                f"| {config} | {case} | {seconds * 1e3:.3g} ms "
                f"| {k.ratio:.2f} [{k.lo:.2f}, {k.hi:.2f}] | {k.verdict()} "
                f"| {aa}{'' if a.contains_one else ' (fails)'} |"
            )
    return "\n".join(lines)


def decisions(found):
    """The two rules, from the intervals (docs/native-kernels.md)."""
    out = []
    for config, cases in found.items():
        if any(not a.contains_one for _, a, _ in cases.values()):
            out.append(f"{config}: inconclusive (an A/A interval leaves out 1)")
        elif config == "torch":
            small = {c: k for c, (k, _, _) in cases.items() if _size(c) < 32768}
            slower = [c for c, k in small.items() if k.verdict() == "regression"]
            open_ = [
                f"{c} {k.ratio:.2f} [{k.lo:.2f}, {k.hi:.2f}]"
                for c, k in small.items()
                if k.verdict() == "undecided"
            ]
            rule = (
                f"the minimum size comes back (slower below 32768 values: "
                f"{', '.join(slower)})"
                if slower
                else "no minimum size (no interval says slower below 32768 "
                "values" + (f"; undecided: {', '.join(open_)}" if open_ else "") + ")"
            )
            out.append(f"torch: {rule}")
        else:
            verdicts = [k.verdict() for k, _, _ in cases.values()]
            enters = verdicts.count("faster") == len(verdicts)
            rule = "faster in every case" if enters else "stays out"
            out.append(f"{config}: {rule} ({', '.join(verdicts)})")
    return out


def _size(case):
    return math.prod(int(d) for d in case.split(" ")[-1].split("x"))


def arguments(parser):
    parser.add_argument(
        "--processes", type=int, default=6, help="rounds (default %(default)s)"
    )
    parser.add_argument("--budget", type=float, default=1.0, help="s per case and path")
    parser.add_argument(
        "--threads", type=int, default=2, help="threads per worker (default 2)"
    )
    parser.add_argument(
        "--configs", default=",".join(CASES), help="default: %(default)s"
    )
    parser.add_argument("--seed", type=int, default=12, help="order")
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "out/native-decisions.json",
        help="the samples file (default out/native-decisions.json)",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="also keep the run in benchmarks/runs/ (a quiet machine's run)",
    )
    parser.add_argument(
        "--samples",
        type=Path,
        help="analyse (and with --record keep) an earlier run's samples file "
        "instead of running; its date is the file's",
    )


def main(ws, args):
    if args.samples:
        results = rounded(json.loads(args.samples.read_text()))
        args.processes = len(next(iter(next(iter(results.values())).values())))
        args.output = args.samples
    else:
        results = rounded(run_all(args))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results))
    found = intervals(results)
    print(table(found))
    print("\n".join(decisions(found)))
    print(f"samples: {args.output}")
    if args.record:
        print(f"recorded: {keep_run(results, found, args)}")
    return 0


def rounded(results):
    """The samples to 4 significant digits (0.01 % of a sample, far below
    what a decision can see): what is analysed is what is kept, and a
    record's raw.json.gz stays small."""
    return {
        config: {
            case: [[float(f"{t:.4g}") for t in process] for process in processes]
            for case, processes in cases.items()
        }
        for config, cases in results.items()
    }


def keep_run(results, found, args):
    """Keeps the run in benchmarks/runs/NNN-DATE-native-decisions/: its
    samples (raw.json.gz), what it ran on (meta.json) and its table and
    decisions (record.md); the runs' index and docs/benchmarks.md list it."""
    import datetime
    import sys as _sys

    from kbb.bench import aggregate
    from kbb.bench import builds
    from kbb.bench import record
    from kbb.results import installed_builds
    from kbb.results import stamp_line
    from kbb.workspace import Workspace

    ws = Workspace.find(ROOT)
    build = installed_builds(_sys.prefix).get("keras", {})
    model, flags, mhz = record.cpu_info()
    decided = decisions(found)
    when = (
        datetime.datetime.fromtimestamp(args.samples.stat().st_mtime, datetime.UTC)
        if args.samples
        else datetime.datetime.now(datetime.UTC)
    )
    meta = {
        "date": when.strftime("%Y-%m-%d %H:%M UTC"),
        "commits": {"native": build.get("commit", "?")},
        "series": {"native": build.get("series")},
        "version": build.get("version"),
        "cpu": model,
        "cpu_flags": flags,
        "cpu_mhz": mhz,
        "cpus": os.cpu_count(),
        "clock": "wall",
        "threads": args.threads,
        "processes": args.processes,
        "seed": args.seed,
        "onednn": "off (tensorflow), on (tensorflow-onednn)",
        "verdict": "; ".join(decided),
        "load": "not recorded" if args.samples else os.getloadavg(),
        "configs": sorted(results),
    }
    number, folder = record.new_run(ws, meta["date"][:10], "native-decisions")
    record.write_raw(folder, results)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (folder / "record.md").write_text(record_text(number, meta, found, args))
    aggregate.write(
        ws.root, builds.series(ws, "keras"), stamp_line(ws, ws.pin("keras"))
    )
    return folder / "record.md"


def record_text(number, meta, found, args):
    """The run's record.md: what ran, its table and its decisions."""
    return "\n".join(
        [
            f"# Benchmark run {number:03d}: the native group's two speed rules",
            "",
            f"`tox -e native-decisions -- --record` (scripts/native_decisions.py) "
            f"on {meta['version']} ({meta['commits']['native'][:12]}), "
            f"{meta['date']}: {meta['cpu']}, {meta['cpus']} CPUs, "
            f"{args.threads} threads, {args.processes} processes per "
            "configuration in a shuffled order, wall clock; kernel and A/A "
            "ratios to the composite path with simultaneous 95 % intervals "
            "(kbb.bench.stats)."
            + (
                " Recorded afterwards from that run's samples "
                f"(`--samples {args.samples.name} --record`); the load "
                "during the run was not recorded."
                if args.samples
                else ""
            ),
            "",
            table(found),
            "",
            *(f"- {line}" for line in decisions(found)),
            "",
        ]
    )


if __name__ == "__main__":
    # A worker: `python decisions.py --worker CONFIG --seed S --budget B
    # --threads T` prints its samples as JSON.
    worker_args = argparse.ArgumentParser()
    worker_args.add_argument("--worker")
    for option, kind in (("--seed", int), ("--budget", float), ("--threads", int)):
        worker_args.add_argument(option, type=kind)
    a = worker_args.parse_args()
    print(json.dumps(worker(a.worker, a.seed, a.budget, a.threads)))
