"""`kbb study` (`tox -e impact`): builds both wheels, trains in worker
processes (one per build, backend and model), checks the pairing, records
the results and renders the page. `--quick`: the smoke run's small grid,
under out/.

Worker outputs are kept under out/impact*/runs/KEY/ (KEY: a hash of the
settings, the wheels and the code that trains), so an interrupted run
resumes where it stopped.
"""

import hashlib
import itertools
import json
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from kbb import KbbError
from kbb import build
from kbb import log
from kbb.bench import builds as bench_builds
from kbb.bench import workers
from kbb.files import write_text
from kbb.study import config
from kbb.study import render

HERE = Path(__file__).parent
FRAMEWORKS = "tensorflow-cpu jax jaxlib torch scikit-learn numpy matplotlib".split()


def paths(ws, args):
    """(results, page, plot, work folder): the recorded study's, or those
    of a --quick run, all in --out (out/impact-quick)."""
    if args.quick:
        base = args.out or ws.root / "out" / "impact-quick"
        return base / "impact.json", base / "impact.md", base / "impact.png", base
    results = ws.root / render.RESULTS  # the path the page names
    work = ws.root / "out" / "impact"
    return results, ws.docs / "impact.md", ws.docs / "impact.png", work


def wheels(ws):
    """{label: build} of config.BUILDS: each wheel built (cached), unpacked
    as the benchmarks' are, with the digests kbb stamps documents with."""
    chosen = [bench_builds.Build(label, ref) for label, ref in config.BUILDS.items()]
    folders = bench_builds.unpacked(ws, "keras", chosen)
    made = bench_builds.commits(ws, "keras", chosen)
    series = bench_builds.series(ws, "keras", chosen)  # of the group builds
    pin = ws.pin("keras")
    builds = {}
    for label, ref in config.BUILDS.items():
        wheel = build.wheel(ws, pin, made[label])
        builds[label] = {
            "ref": ref,
            "keras": wheel.name.split("-")[1],
            "group": ref.removeprefix("group/") if label in series else None,
            "series": series.get(label),
            "pin": pin.digest(),
            "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "path": folders[label],
        }
    return builds


def run_key(settings, builds):
    """Names the folder of worker outputs: the settings, the wheels and the
    code that trains and measures."""
    code = [(HERE / f"{m}.py").read_text() for m in ("config", "data", "metrics")]
    code.append((HERE / "worker.py").read_text())
    wheels = {k: b["wheel_sha256"] for k, b in builds.items()}
    text = json.dumps([asdict(settings), wheels, code], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_workers(commands, folder, jobs):
    """Runs `commands` ({name: (argv, env)}), `jobs` at a time, each one's
    output in folder/NAME.log. When one fails, those not started are
    cancelled and those running terminated, then KbbError is raised."""
    running, stop, guard = set(), threading.Event(), threading.Lock()
    started = time.monotonic()

    def work(name):
        with guard:
            if stop.is_set():
                return None
            argv, env = commands[name]
            with open(folder / f"{name}.log", "w") as out:
                proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
            running.add(proc)
        t0 = time.monotonic()
        code = proc.wait()
        with guard:
            running.discard(proc)
            if code and not stop.is_set():
                stop.set()  # before another job starts
                logged = (folder / f"{name}.log").read_text().strip().splitlines()
                raise KbbError(
                    f"worker {name} failed (exit {code}): "
                    f"{logged[-1] if logged else 'no output'}; see "
                    f"{folder / name}.log, mend it and rerun (finished workers "
                    "are kept)"
                )
        return time.monotonic() - t0

    pool = futures.ThreadPoolExecutor(jobs)
    try:
        pending = {pool.submit(work, name): name for name in commands}
        for count, done in enumerate(futures.as_completed(pending), 1):
            seconds = done.result()
            if seconds is None:  # not started: another one failed
                continue
            log(
                f"[{count}/{len(commands)}] {pending[done]}: {seconds:.0f} s "
                f"(total {(time.monotonic() - started) / 60:.1f} min)"
            )
    finally:  # done, failed or interrupted: nothing left running
        with guard:
            stop.set()
            for proc in running:
                proc.terminate()
        pool.shutdown(cancel_futures=True)


def train(ws, settings, builds, work, quick, jobs):
    """Runs the workers not yet done in work/runs/KEY/; returns that folder."""
    folder = work / "runs" / run_key(settings, builds)
    folder.mkdir(parents=True, exist_ok=True)
    commands = {}
    grid = itertools.product(settings.models, settings.backends, builds.items())
    for model, backend, (label, b) in grid:  # model by model
        name = f"{label}-{backend}-{model.name}"
        if (folder / f"{name}.json").exists():
            continue
        env = workers.env(
            backend,
            1,  # thread: small models, shared cores; one reduction order
            KERAS_HOME=str(work / "keras-home"),
            PYTHONPATH=bench_builds.pythonpath(b["path"], [ws.root / "src"]),
        )
        out = str(folder / f"{name}.json")
        argv = [sys.executable, "-m", "kbb.study.worker", model.name, out]
        argv += ["--expect-version", b["keras"]] + ["--quick"] * quick
        commands[name] = argv, env
    log(f"{len(commands)} worker runs to do in {folder}")
    run_workers(commands, folder, jobs)
    return folder


def collect(settings, builds, folder):
    """The workers' runs, the pairing check (the largest absolute difference
    of the two builds' final weights, per model, backend, batch size and
    seed) and the workers' minutes."""
    import numpy as np

    runs, pairing, seconds = [], [], 0.0
    for model, backend in itertools.product(settings.models, settings.backends):
        weights = []
        for label in builds:  # the worker checked its keras (--expect-version)
            name = f"{label}-{backend}-{model.name}"
            info = json.loads((folder / f"{name}.json").read_text())
            seconds += info["seconds"]
            runs += [{"build": label, "backend": backend, **r} for r in info["records"]]
            weights.append(np.load(folder / f"{name}.npz"))
        old, new = weights
        for size, seed in itertools.product(settings.batch_sizes, settings.seeds):
            keys = [k for k in old.files if k.startswith(f"{size}-{seed}-")]
            diff = max(float(np.max(np.abs(old[k] - new[k]))) for k in keys)
            where = {"model": model.name, "backend": backend, "batch_size": size}
            pairing.append({**where, "seed": seed, "max_abs_diff": diff})
    return runs, pairing, seconds / 60


def versions():
    """The versions of Python and of the frameworks (None: not installed)."""
    found = {"python": sys.version.split()[0]}
    for name in FRAMEWORKS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _round(value):
    """`value` with every float to 6 significant digits.

    >>> _round({"a": [0.1234567, 2], "b": "x"})
    {'a': [0.123457, 2], 'b': 'x'}
    """
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def write_results(path, results):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_round(results), separators=(",", ":"))
    # One run per line: small diffs when regenerated.
    for first in ('{"build"', '{"model"'):
        text = text.replace("," + first, ",\n" + first)
    write_text(path, text + "\n")


def arguments(parser):
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run: small grid, under out/")
    add("--out", type=Path, help="folder of a --quick run (out/impact-quick)")
    add("--jobs", type=int, default=1, help="workers at a time (default 1)")
    add("--render-only", action="store_true", help="rewrite the page and the plot")


def main(ws, args):
    if args.out and not args.quick:
        raise KbbError("--out is the folder of a --quick run: add --quick")
    if args.jobs < 1:
        raise KbbError(f"--jobs {args.jobs}: give 1 or more workers at a time")
    settings = config.QUICK if args.quick else config.FULL
    results_file, page, plot, work = paths(ws, args)
    if not args.render_only:
        started = time.monotonic()
        builds = wheels(ws)
        folder = train(ws, settings, builds, work, args.quick, args.jobs)
        runs, pairing, worker_minutes = collect(settings, builds, folder)
        results = {
            "settings": asdict(settings),
            "quick": args.quick,
            "builds": {
                k: {key: b[key] for key in ("ref", "keras", "group", "series", "pin")}
                for k, b in builds.items()
            },
            "versions": versions(),
            # This invocation only (a resumed run reuses earlier workers).
            "invocation_minutes": (time.monotonic() - started) / 60,
            "worker_minutes": worker_minutes,
            "jobs": args.jobs,
            "runs": runs,
            "pairing": pairing,
        }
        write_results(results_file, results)
        log(f"wrote {results_file}")
    if not results_file.is_file():
        raise KbbError(f"no results in {results_file}: run without --render-only")
    render.write(json.loads(results_file.read_text()), page, plot)
    log(f"wrote {page} and {plot}")
    return 0
