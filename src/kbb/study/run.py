"""`kbb study` (`tox -e impact`): builds both wheels, trains in worker processes (one
per build, backend and model), checks the pairing, records the results and
renders the page. `--quick`: the smoke run's small grid, under out/.

Worker outputs are kept under out/impact*/runs/KEY/ (KEY: a hash of the
settings and the wheels), so an interrupted run resumes where it stopped.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

from kbb.study import config
from kbb.study import render

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
FULL_PATHS = {
    "results": ROOT / "study" / "results" / "impact.json",
    "page": ROOT / "docs" / "impact.md",
    "plot": ROOT / "docs" / "impact.png",
    "work": ROOT / "out" / "impact",
}
FRAMEWORKS = (
    "tensorflow-cpu",
    "jax",
    "jaxlib",
    "torch",
    "scikit-learn",
    "numpy",
    "matplotlib",
)
# One thread per worker: small models, 2 shared cores; also the same
# reduction order in every run.
THREADS = {
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONHASHSEED": "0",
}


def quick_paths(base):
    return {
        "results": base / "impact.json",
        "page": base / "impact.md",
        "plot": base / "impact.png",
        "work": base,
    }


def build_wheels(work):
    """Builds each build's wheel with kbb and unpacks it: {label: info}."""
    builds = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for label, ref in config.BUILDS.items():
        print(f"study: building the {label} wheel (--ref {ref})", flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "kbb", "wheel", "keras", "--ref", ref],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            sys.exit(
                f"study: `kbb wheel keras --ref {ref}` failed:\n{done.stderr.strip()}"
            )
        wheel = Path(done.stdout.split()[-1])
        target = work / "builds" / label
        with zipfile.ZipFile(wheel) as files:
            version = next(
                n.split("/")[0][len("keras-") : -len(".dist-info")]
                for n in files.namelist()
                if n.endswith(".dist-info/METADATA")
            )
            if not (target / "keras").is_dir():
                files.extractall(target)
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        builds[label] = {
            "ref": ref,
            "keras": version,
            "wheel_sha256": sha,
            "path": target,
            **digests(ref),
        }
    return builds


def digests(ref):
    """What a build of `ref` is made of: the digests of the patches up to
    its group (none for the pristine release) and of the pin, as kbb stamps
    generated documents with them."""
    from kbb import results
    from kbb.workspace import Workspace

    ws = Workspace.find(ROOT)
    pin = ws.pin("keras")
    group = ref.removeprefix("group/") if ref.startswith("group/") else None
    series = results.series_digest(ws, pin, group) if group else None
    return {"group": group, "series": series, "pin": pin.digest()}


def run_key(settings, builds):
    """Names the folder of worker outputs: the settings, the wheels and the
    code that trains and measures."""
    code = [
        (HERE / f"{name}.py").read_text()
        for name in ("config", "data", "metrics", "worker")
    ]
    text = json.dumps(
        [
            settings.as_dict(),
            {k: b["wheel_sha256"] for k, b in builds.items()},
            code,
        ],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def jobs(settings):
    return [
        (label, backend, model.name)
        for model in settings.models
        for backend in settings.backends
        for label in config.BUILDS
    ]


def start(job, builds, folder, quick):
    label, backend, model = job
    out = folder / f"{label}-{backend}-{model}.json"
    env = {
        **os.environ,
        **THREADS,
        "KERAS_BACKEND": backend,
        "KERAS_HOME": str(folder.parents[1] / "keras-home"),
        "PYTHONPATH": os.pathsep.join([str(builds[label]["path"]), str(ROOT / "src")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "kbb.study.worker",
        model,
        str(out),
        "--expect-version",
        builds[label]["keras"],
    ]
    log = open(folder / f"{out.stem}.log", "w")
    proc = subprocess.Popen(
        cmd + ["--quick"] * quick,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, log, out


def run_workers(settings, builds, folder, quick, parallel):
    """Runs every job not yet done in `folder`, `parallel` at a time."""
    todo = [j for j in jobs(settings) if not (folder / f"{'-'.join(j)}.json").exists()]
    total, running, started = len(todo), [], time.monotonic()
    print(f"study: {total} worker runs to do in {folder}", flush=True)
    while todo or running:
        while todo and len(running) < parallel:
            job = todo.pop(0)
            running.append((job, *start(job, builds, folder, quick), time.monotonic()))
        time.sleep(1)
        for item in list(running):
            job, proc, log, out, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            if proc.returncode:
                tail = log.name and Path(log.name).read_text()[-2000:]
                sys.exit(
                    f"study: worker {' '.join(job)} failed (log {log.name}):\n{tail}"
                )
            done = total - len(todo) - len(running)
            print(
                f"study: [{done}/{total}] {' '.join(job)}: "
                f"{time.monotonic() - t0:.0f} s (total "
                f"{(time.monotonic() - started) / 60:.1f} min)",
                flush=True,
            )


def collect(settings, builds, folder):
    """Reads the workers' records and compares their final weights."""
    runs, pairing, seconds = [], [], 0.0
    for label, backend, model in jobs(settings):
        info = json.loads((folder / f"{label}-{backend}-{model}.json").read_text())
        if info["keras"] != builds[label]["keras"]:
            sys.exit(f"study: {label} ran keras {info['keras']}")
        seconds += info["seconds"]
        for record in info["records"]:
            runs.append({"build": label, "backend": backend, **record})
    import numpy as np

    labels = list(config.BUILDS)
    for model in settings.models:
        for backend in settings.backends:
            arrays = [
                np.load(folder / f"{label}-{backend}-{model.name}.npz")
                for label in labels
            ]
            for bs in settings.batch_sizes:
                for seed in settings.seeds:
                    keys = [k for k in arrays[0].files if k.startswith(f"{bs}-{seed}-")]
                    diff = max(
                        float(np.max(np.abs(arrays[0][k] - arrays[1][k]))) for k in keys
                    )
                    pairing.append(
                        {
                            "model": model.name,
                            "backend": backend,
                            "batch_size": bs,
                            "seed": seed,
                            "max_abs_diff": diff,
                        }
                    )
    return runs, pairing, seconds / 60


def versions():
    found = {"python": sys.version.split()[0]}
    for name in FRAMEWORKS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _round(value):
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
    path.write_text(
        text.replace(',{"build"', ',\n{"build"').replace(',{"model"', ',\n{"model"')
        + "\n"
    )


def arguments(parser):
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small grid, writes under out/"
    )
    parser.add_argument(
        "--out", type=Path, help="folder of a --quick run (out/impact-quick)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="workers at a time (default 1)"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the page and plot from the results",
    )


def main(ws, args):
    settings = config.QUICK if args.quick else config.FULL
    paths = (
        quick_paths(args.out or ROOT / "out" / "impact-quick")
        if args.quick
        else FULL_PATHS
    )
    if not args.render_only:
        started = time.monotonic()
        builds = build_wheels(paths["work"])
        folder = paths["work"] / "runs" / run_key(settings, builds)
        folder.mkdir(parents=True, exist_ok=True)
        run_workers(settings, builds, folder, args.quick, args.jobs)
        runs, pairing, worker_minutes = collect(settings, builds, folder)
        results = {
            "settings": settings.as_dict(),
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
        write_results(paths["results"], results)
        print(f"study: wrote {paths['results']}")
    results = json.loads(paths["results"].read_text())
    render.write(results, paths["page"], paths["plot"])
    print(f"study: wrote {paths['page']} and {paths['plot']}")
    return 0
