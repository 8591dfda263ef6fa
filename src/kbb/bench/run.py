"""`kbb bench run` (`tox -e bench`): timings of pristine keras against
each patch group.

Each build (benchbuilds: pristine, each patch group of the series, or
those of --builds, and `aa`, the A/A control: the pristine wheel again in
a folder of its own) runs benchmarks/worker.py in a fresh process per
backend and round, with the build first on PYTHONPATH. A round runs every
build of a backend in adjacent processes, builds and backends in an order
shuffled anew in each round (seed recorded): the ratios are taken within
a round (benchstats). The threads of every framework are fixed to
--threads (default: 1 on machines with 2 CPUs or fewer, where more
oversubscribe the cores, else all CPUs) and recorded, and so is the triad
bandwidth each process measured with them. Around each round benchload
notes the load and the triad bandwidth; the analysis drops the rounds
where other processes took more than --max-load cores.

benchreport turns the samples into intervals and verdicts (benchstats),
a markdown record and a summary; a full run is recorded in
benchmarks/runs/ (benchrecord: raw samples compressed, the index, and the
aggregate docs/benchmarks.md); --quick (one round, a few samples of one
case per benchmark, no A/A control) writes out/bench/quick/ only and
gives no timing verdict.

Exit status: 0 no regression, 1 a regression, 3 inconclusive (the A/A
control left its interval, or an interval is too wide to decide: rerun on
a quieter machine, or with more rounds), 2 an error.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kbb import BACKENDS
from kbb import KbbError
from kbb import log
from kbb import results
from kbb.bench import builds
from kbb.bench import load
from kbb.bench import record
from kbb.bench import report
from kbb.bench import stats
from kbb.bench import threads_env

WORKER = Path("benchmarks") / "worker.py"
# Rounds: the units of the intervals (Student's quantile with ROUNDS - 1
# degrees of freedom). 5 keeps a full run of the four builds near 40 min
# on 2 cores (benchmarks/README.md has a measured duration).
ROUNDS = 5
# Samples per benchmark and process: at least MIN, then until BUDGET
# seconds, at most MAX. --quick: QUICK_SAMPLES, one round.
MIN, MAX, BUDGET = 3, 30, 0.2
QUICK_SAMPLES = 3
STATUS = {"no regression": 0, "regression": 1, "inconclusive": 3, "smoke": 0}
# Passed to the workers and recorded: TensorFlow's oneDNN optimizations
# change which kernel its layer uses (docs/native-kernels.md).
SETTINGS = ("TF_ENABLE_ONEDNN_OPTS", "KBB_BENCH_BACKENDS")
# The peer kernel does not depend on the build: the pristine processes
# time it, the others skip it.
PEER = r"^peer\."


def worker_env(folder, backend, threads, quick):
    """The environment of a worker: the build first, threads fixed."""
    env = {
        **os.environ,
        "PYTHONPATH": builds.pythonpath(folder),
        "KERAS_BACKEND": backend,
        "KBB_BENCH_THREADS": str(threads),
        "KBB_BENCH_QUICK": "1" if quick else "0",
        **threads_env(threads),
        # Device synchronization and memory statistics (benchmarks/keras3).
        "KBB_BENCH_GPU": "1" if shutil.which("nvidia-smi") else "",
    }
    return env


def default_threads(cpus=None):
    """1 on machines with 2 CPUs or fewer, else all of them."""
    cpus = cpus or os.cpu_count() or 1
    return 1 if cpus <= 2 else cpus


def plan(names, backends, rounds, seed):
    """[(round, build, backend)]: each pair once per round; within a round
    the builds of one backend run in adjacent processes; backends and
    builds in an order shuffled anew in every round."""
    rng = random.Random(seed)
    order = []
    for r in range(rounds):
        for k in rng.sample(backends, len(backends)):
            order.extend((r, b, k) for b in rng.sample(names, len(names)))
    return order


def run_worker(root, folder, backend, output, args, seed, peer=True):
    samples = QUICK_SAMPLES if args.quick else None
    command = [
        sys.executable,
        str(root / WORKER),
        str(output),
        "--bench",
        args.bench,
        "--min",
        str(samples or args.min_samples),
        "--max",
        str(samples or MAX),
        "--budget",
        str(0 if samples else args.budget),
        "--seed",
        str(seed),
        *([] if peer else ["--skip", PEER]),
    ]
    env = worker_env(folder, backend, args.threads, args.quick)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise KbbError(f"{folder.name} on {backend}:\n{result.stderr[-3000:]}")
    found = json.loads(output.read_text())
    if not found["keras_file"].startswith(str(folder)):
        raise KbbError(f"the worker imported {found['keras_file']}, not {folder}")
    return found


def run(ws, folders, backends, args):
    """Every worker of the plan: ([process record] with build and round,
    {round: what benchload measured around it})."""
    order = plan(list(folders), backends, args.rounds, args.seed)
    processes, rounds, started = [], {}, time.time()
    meter = load.Meter(ws.root, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (r, build, backend) in enumerate(order):
            if i == 0 or order[i - 1][0] != r:
                meter.start()
            log(f"[{i + 1}/{len(order)}] round {r + 1}: {build} on {backend}")
            out = Path(tmp) / f"{i}.json"
            t0 = time.time()
            peer = build == builds.PRISTINE
            found = run_worker(ws.root, folders[build], backend, out, args, i, peer)
            found.update(build=build, round=r, slot=i, seconds=time.time() - t0)
            processes.append(found)
            if i + 1 == len(order) or order[i + 1][0] != r:
                rounds[str(r)] = meter.stop()
            if i + 1 == len(order) // args.rounds and args.rounds > 1:
                spent = (time.time() - started) / 60
                log(
                    f"round 1 took {spent:.1f} min: about {spent * args.rounds:.0f} min"
                )
    return processes, rounds


def builds_of(ws, carried, selected, names):
    """({build: folder}, {build: commit}): from the checkout, or from a
    folder that --export-builds wrote (on a machine without it)."""
    if carried is None:
        folders = builds.unpacked(ws, "keras", selected, names)
        return folders, builds.commits(ws, "keras", selected, names)
    commits = json.loads((carried / "commits.json").read_text())
    missing = [b for b in names if not (carried / b).is_dir()]
    if missing:
        raise KbbError(f"{carried} lacks the builds {missing}: --export-builds")
    return {b: (carried / b).resolve() for b in names}, commits


def export_builds(ws, dest, selected):
    """Copies every build's unpacked folder to DEST/NAME, with commits.json."""
    names = [b.name for b in selected] + [builds.AA]
    folders = builds.unpacked(ws, "keras", selected, names)
    for name, folder in folders.items():
        shutil.copytree(folder, dest / name, dirs_exist_ok=True)
    commits = builds.commits(ws, "keras", selected, names)
    (dest / "commits.json").write_text(json.dumps(commits, indent=1) + "\n")
    log(f"wrote {dest}: {', '.join(names)}")
    return 0


# `kbb bench asv ARGS` and `kbb bench asv --tf-keras ARGS`: target, config.
ASV = {
    "asv": ("keras", "asv.conf.json"),
    "asv-tf-keras": ("tf-keras", "asv-tf-keras.conf.json"),
}


def asv_passthrough(ws, target, config, argv):
    """asv ARGS with the workspace's configuration; its machine info (which
    `asv run` and `continuous` need) is written first, with defaults."""
    builds.applied_checkout(ws, target)
    config = str(ws.root / config)
    asv = [sys.executable, "-m", "asv", "--config", config]
    machine = subprocess.run([*asv, "machine", "--yes"], capture_output=True)
    if machine.returncode:
        log(f"asv machine --yes failed: {machine.stderr.decode()[-500:]}")
        return 2
    return subprocess.run([*asv, *argv]).returncode


def arguments(parser):
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {ROUNDS})")
    parser.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="threads of every framework (default: 1 on 2 CPUs or fewer)",
    )
    parser.add_argument(
        "--seed", type=int, default=int(time.time()), help="order (default: now)"
    )
    parser.add_argument(
        "--backends",
        default=os.environ.get("KBB_BENCH_BACKENDS"),
        help="tensorflow,jax,torch (default: $KBB_BENCH_BACKENDS, else all)",
    )
    parser.add_argument("--bench", default="", help="regex of benchmark names")
    parser.add_argument(
        "--builds", default="", help="pristine,group/bessel,NAME=REF (default: all)"
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=load.MAX_LOAD,
        help="drop rounds where others took more cores (default %(default)s)",
    )
    parser.add_argument(
        "--budget", type=float, default=BUDGET, help="s per benchmark and process"
    )
    parser.add_argument(
        "--min-samples", type=int, default=MIN, help="samples per benchmark at least"
    )
    parser.add_argument(
        "--delta",
        type=float,
        default=stats.DELTA,
        help="tolerated slowdown (default %(default)s)",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="write out/bench/ only"
    )
    parser.add_argument("--output", type=Path, help="the record's folder instead")
    parser.add_argument(
        "--export-builds",
        type=Path,
        metavar="DIR",
        help="copy the unpacked builds to DIR (for a machine without .upstream/)",
    )
    parser.add_argument(
        "--builds-from", type=Path, metavar="DIR", help="run the builds in DIR"
    )


def finish(args):
    """The defaults that depend on other options."""
    args.rounds = args.rounds or (1 if args.quick else ROUNDS)
    if isinstance(args.backends, str) or args.backends is None:
        args.backends = (args.backends or ",".join(BACKENDS)).split(",")
    return args


def parse(argv):
    """The options of a run from a list (as `kbb bench power` makes one)."""
    parser = argparse.ArgumentParser(prog="kbb bench run")
    arguments(parser)
    return finish(parser.parse_args(argv))


def collect(ws, args, selected):
    """The raw record of a run of the `selected` builds (and the A/A
    control, unless --quick): {"meta", "processes", "rounds"}."""
    meta = record.machine(args, SETTINGS)
    names = [b.name for b in selected] + ([] if args.quick else [builds.AA])
    folders, meta["commits"] = builds_of(ws, args.builds_from, selected, names)
    meta["series"] = builds.series(ws, "keras")
    meta["bases"] = {b.name: b.base for b in selected if b.base}
    started = time.time()
    processes, rounds = run(ws, folders, args.backends, args)
    meta.update(minutes=(time.time() - started) / 60, load_after=os.getloadavg())
    meta["max_load"] = args.max_load
    onednn = {p["threads"].get("onednn") for p in processes} - {None}
    meta["onednn"] = " / ".join(sorted(map(str, onednn))) or "n/a (no TensorFlow)"
    return {"meta": meta, "processes": processes, "rounds": rounds}, folders


class Asv:
    """`kbb bench asv ARGS`: asv with the workspace's configuration
    (asv.conf.json, or asv-tf-keras.conf.json with --tf-keras)."""

    @staticmethod
    def arguments(parser):
        parser.add_argument(
            "--tf-keras", action="store_true", help="tf-keras' suite instead"
        )
        parser.add_argument("asv", nargs=argparse.REMAINDER, help="asv's arguments")

    @staticmethod
    def main(ws, args):
        key = "asv-tf-keras" if args.tf_keras else "asv"
        return asv_passthrough(ws, *ASV[key], args.asv)


def main(ws, args):
    args = finish(args)
    if args.builds:
        selected = builds.select(ws, args.builds)
    else:
        selected = builds.default_builds(ws)
    if args.export_builds:
        return export_builds(ws, args.export_builds, selected)
    raw, _ = collect(ws, args, selected)
    summary = report.analyse(raw, args.delta, quick=args.quick)
    if args.output:
        where = record.write_folder(args.output, raw, summary)
    elif args.quick or args.no_record:
        where = record.write_scratch(ws, raw, summary)
    else:
        stamp = results.stamp_line(ws, ws.pin("keras"))
        where = record.write_run(ws, raw, summary, stamp)
    log(f"wrote {where}")
    log(f"verdict: {summary['verdict']}")
    return STATUS[summary["verdict"]]
