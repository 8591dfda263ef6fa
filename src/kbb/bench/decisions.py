"""`kbb decisions` (`tox -e native-decisions`): the native group's two
speed rules (docs/native-kernels.md; the method: benchmarks/README.md),
with its build installed (`kbb install keras --ref group/native`), on a
quiet CPU. Inside one build, the backend's kernel ("kernel") against the
backend-agnostic ops ("composite") and a second copy of them ("aa"):

- torch: does `torch.nn.functional.batch_norm` cost more than the
  composite ops below 32768 values?
- tensorflow, tensorflow-onednn: is FusedBatchNormV3 faster in every case?

About 1.5 minutes per round on 2 quiet cores.
"""

import json
import math
import os
import sys
import time
from pathlib import Path

from kbb import log
from kbb import results
from kbb.bench import builds
from kbb.bench import record
from kbb.bench import stats
from kbb.bench import tables
from kbb.bench import workers
from kbb.files import write_text

# "KIND CASE" per configuration (SUITE: the benchmarks of each KIND), eager
# (PyTorch) or graph (TensorFlow), sizes below and above 32768 values.
SIZES = "64x64 256x64 511x64 1024x64 32x28x28x64"
CASES = {
    "torch": [f"layer {c}" for c in SIZES.split()]
    + ["train 256x64", "train 32x28x28x64"],
    "tensorflow": ["layer 32x28x28x64", "layer 8x112x112x64", "train 32x28x28x64"],
}
CASES["tensorflow-onednn"] = CASES["tensorflow"]
SUITE = {"layer": "layer.BatchNormLayer.time_forward_backward"}
SUITE["train"] = "train_step.BatchNormTrainStep.time_train_step"
PATHS = ("kernel", "composite", "aa")
WARMUP, MIN_SAMPLES = 0.3, 5  # then samples for --budget seconds
SAMPLES = Path("out") / "native-decisions.json"


def benchmark(case):
    """The suite's name of a case (benchmarks/keras3).

    >>> benchmark("train 256x64")
    "train_step.BatchNormTrainStep.time_train_step('256x64', False)"
    """
    kind, shape = case.split()
    return f"{SUITE[kind]}({shape!r}, False)"


def by_round(processes, drop=()):
    """{round: samples} of one process per round, less the rounds `drop`.

    >>> by_round([[1.0], [2.0], [3.0]], drop={"1"})
    {'0': [1.0], '2': [3.0]}
    """
    return {str(r): s for r, s in enumerate(processes) if str(r) not in drop}


def measure(ws, args):
    """{"samples": {config: {"PATH KIND CASE": [[seconds] per round]}},
    "rounds": {round: what the load meter noted}}: each of CASES on every
    path in one process of benchmarks/worker.py --paths per round."""
    configs = args.configs.split(",")
    worker = ws.root / "benchmarks" / "worker.py"

    def start(slot, _build, config, out):
        names = [benchmark(case) for case in CASES[config]]
        command = [worker, out, "--paths", ",".join(PATHS), "--case", *names]
        command += ["--min", MIN_SAMPLES, "--max", 10**9, "--warmup", WARMUP]
        command += ["--budget", args.budget, "--seed", args.seed + slot]
        onednn = str(int(config.endswith("onednn")))
        env = workers.env(config.split("-")[0], args.threads, KBB_BENCH_BACKENDS="")
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
        return {**workers.launch(command, env, out, config), "config": config}

    order = workers.plan(["native"], configs, args.processes, args.seed)
    meter = workers.Meter(ws.root, args.threads)
    processes, rounds = workers.run_plan(order, start, meter)
    samples = {c: {} for c in configs}
    short = {benchmark(case): case for c in configs for case in CASES[c]}
    for p in processes:  # in round order
        for key, values in p["benchmarks"].items():
            path, name = key.split(" ", 1)
            runs = samples[p["config"]].setdefault(f"{path} {short[name]}", [])
            # 4 significant digits, far below what a decision can see:
            # what is analysed is what is kept, and raw.json.gz stays small.
            runs.append([float(f"{t:.4g}") for t in values["wall"]])
    return {"samples": samples, "rounds": rounds}


def intervals(samples, drop=()):
    """{config: {case: (kernel Interval, A/A Interval, composite seconds)}}:
    ratios to the composite path, paired within each round's process,
    simultaneous over a configuration's cases, less the rounds `drop`."""
    out = {}
    for config, runs in samples.items():
        cases = sorted({name.split(" ", 1)[1] for name in runs})
        by_path = {
            p: {c: by_round(runs[f"{p} {c}"], drop) for c in cases} for p in PATHS
        }
        composite = by_path["composite"]
        kernel = stats.compare(composite, by_path["kernel"])
        aa = stats.compare(composite, by_path["aa"])
        seconds = {c: math.exp(stats.statistic(composite[c])) for c in cases}
        out[config] = {c: (kernel[c], aa[c], seconds[c]) for c in cases}
    return out


def _interval(iv):
    return f"{iv.ratio:.2f} [{iv.lo:.2f}, {iv.hi:.2f}]"


def table(found):
    """The table `native-decisions`."""
    rows = []
    for config, cases in found.items():
        for case, (k, a, seconds) in cases.items():
            row = [config, case, f"{tables.ms(seconds)} ms"]
            if k is None or a is None:
                rows.append([*row, "n/a", "n/a", "n/a"])
                continue
            aa = _interval(a) + ("" if a.contains_one else " (fails)")
            rows.append([*row, _interval(k), k.verdict(), aa])
    header = "config | case | composite | kernel / composite [95 %] | verdict "
    return tables.table("native-decisions", header + "| A/A [95 %]", rows)


def decisions(found):
    """The two rules, from the intervals (docs/native-kernels.md)."""
    out = []
    for config, cases in found.items():
        if any(k is None or a is None for k, a, _ in cases.values()):
            out.append(f"{config}: inconclusive (fewer than {stats.MIN_ROUNDS} rounds)")
        elif any(not a.contains_one for _, a, _ in cases.values()):
            out.append(f"{config}: inconclusive (an A/A interval leaves out 1)")
        elif config == "torch":
            small = {c: k for c, (k, _, _) in cases.items() if _size(c) < 32768}
            slower = [c for c, k in small.items() if k.verdict() == "regression"]
            open_ = [c for c, k in small.items() if k.verdict() == "undecided"]
            open_ = [f"{c} {_interval(small[c])}" for c in open_]
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
    add = parser.add_argument
    add("--processes", type=int, default=6, help="rounds (default %(default)s)")
    add("--budget", type=float, default=1.0, help="s per case and path")
    add("--threads", type=int, default=2, help="threads per worker (default 2)")
    add("--configs", default=",".join(CASES), help="default: %(default)s")
    add("--seed", type=int, default=12, help="order")
    add("--output", type=Path, help=f"the samples file (default {SAMPLES})")
    keep = "also keep the run in benchmarks/runs/ (a quiet machine's run)"
    add("--record", action="store_true", help=keep)
    again = "analyse (and with --record keep) an earlier run's samples file"
    add("--samples", type=Path, help=again + " instead; its date is the file's")


def main(ws, args):
    meta = record.machine()
    if args.samples:
        data = json.loads(args.samples.read_text())
        if "samples" not in data:  # a file of the first runs: samples only
            data = {"samples": data, "rounds": {}}
        when = time.gmtime(args.samples.stat().st_mtime)
        meta.update(date=time.strftime("%Y-%m-%d %H:%M UTC", when), load_before=None)
        output = args.samples
    else:
        data = measure(ws, args)
        output = args.output or ws.root / SAMPLES
        output.parent.mkdir(parents=True, exist_ok=True)
        write_text(output, json.dumps(data))
        meta["load_after"] = os.getloadavg()
    drop = workers.dropped(data["rounds"])
    found = intervals(data["samples"], drop)
    print(table(found))
    print("\n".join(decisions(found)))
    log(f"samples: {output}")
    if args.record:
        log(f"recorded: {keep_run(ws, data, found, meta, drop, args)}")
    return 0


def keep_run(ws, data, found, meta, drop, args):
    """Keeps the run in benchmarks/runs/NNN-DATE-native-decisions/:
    raw.json.gz, meta.json and record.md."""
    build = results.installed_builds(sys.prefix).get("keras", {})
    first = next(iter(data["samples"].values()))
    meta.update(
        commits={"native": build.get("commit", "?")},
        series={"native": build.get("series")},
        version=build.get("version"),
        clock="wall",
        threads=args.threads,
        processes=len(next(iter(first.values()))),
        seed=args.seed,
        onednn="off (tensorflow), on (tensorflow-onednn)",
        verdict="; ".join(decisions(found)),
        configs=sorted(data["samples"]),
        dropped=drop,
    )

    def files(number):
        text = record_text(number, meta, found, args)
        return {"meta.json": json.dumps(meta, indent=1) + "\n", "record.md": text}

    series = builds.series(ws, "keras")
    return record.keep(ws, meta["date"][:10], "native-decisions", data, files, series)


def record_text(number, meta, found, args):
    """The run's record.md: what ran, its table and its decisions."""
    dropped = "; ".join(f"round {int(r) + 1}: {w}" for r, w in meta["dropped"].items())
    what = (
        f"`kbb decisions --record` (`tox -e native-decisions`) on "
        f"{meta['version']} ({meta['commits']['native'][:12]}), {meta['date']}: "
        f"{meta['cpu']}, {meta['cpus']} CPUs (governor {meta['governor']}, turbo "
        f"{meta['turbo']}, isolated CPUs {meta['isolated']}), {args.threads} "
        f"threads, {meta['processes']} processes per configuration in a shuffled "
        "order, wall clock; kernel and A/A ratios to the composite path, paired "
        "within each process, with simultaneous 95 % intervals (kbb.bench.stats); "
        f"the load gate dropped {len(meta['dropped'])} round(s)"
        + (f" ({dropped})." if dropped else ".")
    )
    if args.samples:
        what += (
            f" Recorded afterwards from its samples (`--samples {args.samples.name}`)."
        )
    title = f"# Benchmark run {number:03d}: the native group's two speed rules"
    rules = [f"- {line}" for line in decisions(found)]
    return "\n".join([title, "", what, "", table(found), "", *rules, ""])
