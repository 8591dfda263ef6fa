"""`kbb bench run` (`tox -e bench`): timings of pristine keras against
each patch group, with an A/A control (the method and the exit status:
benchmarks/README.md, "Timings"). A full run is recorded in
benchmarks/runs/; --quick writes out/bench/quick/, with no verdict.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kbb import BACKENDS
from kbb import KbbError
from kbb import log
from kbb.bench import builds
from kbb.bench import record
from kbb.bench import report
from kbb.bench import stats
from kbb.bench import workers
from kbb.files import write_text

WORKER = Path("benchmarks") / "worker.py"
ROUNDS = 5  # a full run of the four builds: 25 min on 2 cores (run 023)
# Samples per benchmark and process: at least MIN, then until BUDGET
# seconds, at most MAX.
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
    """A worker's environment; on a GPU, with device synchronization."""
    gpu = "1" if shutil.which("nvidia-smi") else ""
    settings = {"KBB_BENCH_QUICK": "1" if quick else "0", "KBB_BENCH_GPU": gpu}
    return workers.env(backend, threads, folder, **settings)


def default_threads(cpus=None):
    """1 on machines with 2 CPUs or fewer, else all of them."""
    cpus = cpus or os.cpu_count() or 1
    return 1 if cpus <= 2 else cpus


def run(ws, folders, args):
    """Every worker of the plan: ([process record], {round: what the load
    meter noted})."""
    samples = QUICK_SAMPLES if args.quick else None
    sampling = ["--min", samples or args.min_samples, "--max", samples or MAX]
    sampling += ["--budget", 0 if samples else args.budget, "--bench", args.bench]

    def start(slot, build, backend, out):
        command = [ws.root / WORKER, out, "--seed", slot, *sampling]
        if build != builds.PRISTINE:
            command += ["--skip", PEER]
        folder = folders[build]
        env = worker_env(folder, backend, args.threads, args.quick)
        return workers.launch(command, env, out, f"{build} on {backend}", folder)

    order = workers.plan(list(folders), args.backends, args.rounds, args.seed)
    return workers.run_plan(order, start, workers.Meter(ws.root, args.threads))


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
    write_text(dest / "commits.json", json.dumps(commits, indent=1) + "\n")
    log(f"wrote {dest}: {', '.join(names)}")
    return 0


def arguments(parser):
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run")
    add("--rounds", type=int, help=f"rounds (default {ROUNDS})")
    threads = "threads of every framework (default: 1 on 2 CPUs or fewer)"
    add("--threads", type=int, default=default_threads(), help=threads)
    add("--seed", type=int, default=int(time.time()), help="order (default: now)")
    backends = "tensorflow,jax,torch (default: $KBB_BENCH_BACKENDS, else all)"
    add("--backends", default=os.environ.get("KBB_BENCH_BACKENDS"), help=backends)
    add("--bench", default="", help="regex of benchmark names")
    add("--builds", default="", help="pristine,group/bessel,NAME=REF (default: all)")
    gate = "drop rounds where others took more cores (default %(default)s)"
    add("--max-load", type=float, default=workers.MAX_LOAD, help=gate)
    add("--budget", type=float, default=BUDGET, help="s per benchmark and process")
    add("--min-samples", type=int, default=MIN, help="samples per benchmark at least")
    delta = "tolerated slowdown (default %(default)s)"
    add("--delta", type=float, default=stats.DELTA, help=delta)
    statistic = "each process's statistic (default: %(default)s)"
    add("--statistic", choices=list(stats.STATISTICS), default="min", help=statistic)
    add("--no-record", action="store_true", help="write out/bench/ only")
    add("--output", type=Path, help="the record's folder instead")
    export = "copy the unpacked builds to DIR (for a machine without .upstream/)"
    add("--export-builds", type=Path, metavar="DIR", help=export)
    add("--builds-from", type=Path, metavar="DIR", help="run the builds in DIR")


def options(**given):
    """The options of a run: the defaults but `given` (`kbb bench power`)."""
    parser = argparse.ArgumentParser(prog="kbb bench run")
    arguments(parser)
    args = parser.parse_args([])
    vars(args).update(given)
    return finish(args)


def finish(args):
    """The defaults that depend on other options."""
    args.rounds = args.rounds or (1 if args.quick else ROUNDS)
    if isinstance(args.backends, str) or args.backends is None:
        args.backends = (args.backends or ",".join(BACKENDS)).split(",")
    return args


def collect(ws, args, selected):
    """The raw record of a run of the `selected` builds (and the A/A
    control, unless --quick): {"meta", "processes", "rounds"}."""
    given = "threads rounds seed backends quick bench max_load statistic".split()
    meta = {**record.machine(), **{k: getattr(args, k) for k in given}}
    meta["settings"] = {k: os.environ[k] for k in SETTINGS if k in os.environ}
    meta["samples"] = {"min": args.min_samples, "budget_s": args.budget}
    names = [b.name for b in selected] + ([] if args.quick else [builds.AA])
    folders, meta["commits"] = builds_of(ws, args.builds_from, selected, names)
    meta["series"] = builds.series(ws, "keras")
    meta["bases"] = {b.name: b.base for b in selected if b.base}
    started = time.time()
    processes, rounds = run(ws, folders, args)
    meta.update(minutes=(time.time() - started) / 60, load_after=os.getloadavg())
    onednn = {p["threads"].get("onednn") for p in processes} - {None}
    meta["onednn"] = " / ".join(sorted(map(str, onednn))) or "n/a (no TensorFlow)"
    return {"meta": meta, "processes": processes, "rounds": rounds}, folders


class Asv:
    """`kbb bench asv ARGS`: asv with the workspace's configuration
    (asv.conf.json, or asv-tf-keras.conf.json with --tf-keras); asv's
    machine information, which `asv run` and `continuous` need, is
    written first, with defaults."""

    @staticmethod
    def arguments(parser):
        add = parser.add_argument
        add("--tf-keras", action="store_true", help="tf-keras' suite instead")
        add("asv", nargs=argparse.REMAINDER, help="asv's arguments")

    @staticmethod
    def main(ws, args):
        target = "tf-keras" if args.tf_keras else "keras"
        builds.applied_checkout(ws, target)
        config = "asv-tf-keras.conf.json" if args.tf_keras else "asv.conf.json"
        asv = [sys.executable, "-m", "asv", "--config", str(ws.root / config)]
        machine = subprocess.run([*asv, "machine", "--yes"], capture_output=True)
        if machine.returncode:
            why = machine.stderr.decode()[-500:]
            raise KbbError(f"asv machine --yes failed (is asv installed?): {why}")
        return subprocess.run([*asv, *args.asv]).returncode


def main(ws, args):
    args = finish(args)
    selected = builds.select(ws, args.builds) if args.builds else None
    selected = selected or builds.default_builds(ws)
    if args.export_builds:
        return export_builds(ws, args.export_builds, selected)
    raw, _ = collect(ws, args, selected)
    summary = report.analyse(raw, args.delta, quick=args.quick)
    verdict = summary["verdict"]
    if args.output or args.quick or args.no_record:
        title = "Smoke run (--quick)" if verdict == "smoke" else "Run"
        folder = args.output or ws.root / record.SCRATCH
        where = record.save(ws, raw, summary, f"{title}: {verdict}", folder=folder)
    else:
        where = record.save(ws, raw, summary, "Benchmark run {:03d}: " + verdict)
    log(f"wrote {where}")
    log(f"verdict: {summary['verdict']}")
    return STATUS[summary["verdict"]]
