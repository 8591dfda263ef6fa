"""`kbb counters` (`tox -e counters`): exact cost counters of each build,
gated exactly.

Each build (builds.default_builds: pristine, and each patch group of
the series beyond tests, stacked on the one before it) is counted
on each backend by benchmarks/counters/run.py, in a worker process with
the build's unpacked wheel first on PYTHONPATH: jaxpr equations, XLA's
optimized HLO (instructions, fusions, flops, bytes, memory), TensorFlow's
graph after Grappler, PyTorch's aten ops and the bytes they write (see
benchmarks/counters/). The counters and the deltas against pristine (the
ops each group adds and removes, with the elements of their outputs) must
equal EXPECTED exactly, no factor; `--update` rewrites EXPECTED instead
(the command to run when a pin or a patch changes, then review its diff).

Structural checks, on the measured records, of every group against the
group it stacks on (its base), each failing the gate:
- a group that declares no kernel change (benchmarks/groups.toml): every
  op it adds has at most C elements in its output (C channels), at both
  batch sizes, and it adds the same ops at both: its cost is O(C), not
  O(N x C);
- a group that declares one (native): no more ops of over C elements than
  its base, and no counter of bytes above its base's.
`--update` refuses to record a summary whose checks fail: a full-size op
is recorded only as a declared kernel change that removes as many.

Exit status 0 when everything holds, 1 otherwise, 2 on an error.
"""

import json
import os
import tempfile
from pathlib import Path

from kbb import log
from kbb.bench import builds
from kbb.bench import checks
from kbb.bench import record
from kbb.bench import threads_env
from kbb.bench import workers
from kbb.bench import write_text

# "tensorflow-onednn": TensorFlow with its oneDNN optimizations on (on by
# default on CPUs with AVX512-VNNI and newer), where the native group uses
# FusedBatchNormV3; "tensorflow" has them off.
CONFIGS = ("tensorflow", "tensorflow-onednn", "jax", "torch")
EXPECTED = Path("benchmarks") / "counters" / "expected.json"
WORKER = Path("benchmarks") / "counters" / "run.py"
UPDATE = "tox -e counters -- --update"
# What the counts depend on besides the code, fixed in every worker: the
# threads as the frameworks' defaults set them (all CPUs), no oneDNN, the
# CPU, the hash seed.
WORKER_ENV = {
    **threads_env(os.cpu_count() or 1),
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "CUDA_VISIBLE_DEVICES": "",
    "JAX_PLATFORMS": "cpu",
}


def run_worker(root, folder, backend, output):
    env = {**os.environ, **WORKER_ENV, "KERAS_BACKEND": backend.split("-")[0]}
    env["TF_ENABLE_ONEDNN_OPTS"] = "1" if backend == "tensorflow-onednn" else "0"
    env["PYTHONPATH"] = builds.pythonpath(folder)
    command = [root / WORKER, backend, output]
    what = f"counting {folder.name} on {backend}"
    return workers.launch(command, env, output, what, folder)


def measure(root, folders, backends, keep=None):
    """{build: {backend: worker record}}, one worker each."""
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(keep or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name, folder in folders.items():
            for backend in backends:
                log(f"counting {name} on {backend}")
                path = out / f"{name}-{backend}.json"
                found = run_worker(root, folder, backend, path)
                measured.setdefault(name, {})[backend] = found
    return measured


def counters(found):
    """{case: {part: {counter: value}}}: a worker record without its records."""
    return {
        case: {
            part: {k: v for k, v in values.items() if k != "records"}
            for part, values in parts.items()
        }
        for case, parts in found["cases"].items()
    }


def summarize(measured, chain=None):
    """The content of EXPECTED: versions, counters, deltas and checks
    (`chain`: [builds.Build], each checked against its base)."""
    by_name = {b.name: b for b in chain or checks.chain(measured)}
    pristine = measured["pristine"]
    first = next(iter(pristine.values()))
    channels = first["channels"]
    model, flags, _ = record.cpu_info()
    summary = {
        "command": UPDATE,
        "recorded_on": f"{model} ({', '.join(flags)})",
        "channels": channels,
        "versions": first["versions"],
        "keras": {n: next(iter(r.values()))["keras"] for n, r in measured.items()},
        "counters": {},
        "deltas": {},
        "checks": {},
    }
    for name, by_backend in measured.items():
        for backend, found in by_backend.items():
            summary["counters"].setdefault(name, {})[backend] = counters(found)
            if name == "pristine":
                continue
            d = checks.deltas(pristine[backend], found)
            summary["deltas"].setdefault(name, {})[backend] = d
            base = by_name[name].base or "pristine"
            problems = checks.check(
                by_name[name], base, measured[base][backend], found, channels
            )
            summary["checks"].setdefault(name, {})[backend] = problems
    return summary


def differences(expected, actual, path=""):
    """Where two JSON values differ: ["path: expected X, measured Y", ...]."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            where = f"{path}/{key}" if path else key
            if key not in actual:
                out.append(f"{where}: expected, not measured")
            elif key not in expected:
                out.append(f"{where}: measured, not expected")
            else:
                out.extend(differences(expected[key], actual[key], where))
        return out
    if expected != actual:
        return [f"{path}: expected {expected!r}, measured {actual!r}"]
    return []


def update(path, summary):
    """Writes EXPECTED unless a structural check fails; (status, lines)."""
    problems = checks.problems_of(summary)
    if problems:
        why = "a group adds full-size ops or bytes over its base"
        return 1, [
            f"--update refused ({why}; declare a kernel change in "
            f"{builds.GROUPS} only for one that replaces them):",
            *problems,
        ]
    write_text(path, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return 0, [f"wrote {EXPECTED}: review its diff"]


def gate(expected, summary):
    """(status, lines): 0 when the measured summary is the expected one and
    every structural check holds, else 1 with the reasons."""
    lines = []
    if expected.get("versions") != summary["versions"]:
        lines.append(
            f"the counters were recorded with {expected.get('versions')}, this "
            f"environment has {summary['versions']}: use the pinned versions "
            f"(tox -e counters), or regenerate with `{UPDATE}`"
        )
    lines.extend(checks.problems_of(summary))
    machine = ("recorded_on",)
    mismatches = differences(
        {k: v for k, v in expected.items() if k not in machine},
        {k: v for k, v in summary.items() if k not in machine},
    )
    if mismatches and expected.get("recorded_on") != summary["recorded_on"]:
        lines.append(
            f"recorded on {expected.get('recorded_on')}, measured on "
            f"{summary['recorded_on']}: TensorFlow's oneDNN graph may differ"
        )
    lines.extend(mismatches)
    return (1 if lines else 0), lines


def arguments(parser):
    parser.add_argument(
        "--update", action="store_true", help=f"rewrite {EXPECTED} (then review it)"
    )
    parser.add_argument(
        "--backends",
        default=",".join(CONFIGS),
        help="which backends to count (default: %(default)s)",
    )
    parser.add_argument("--keep", type=Path, help="keep the workers' records here")


def main(ws, args):
    backends = [b for b in args.backends.split(",") if b]
    chain = builds.default_builds(ws)
    folders = builds.unpacked(ws, "keras", chain)
    measured = measure(ws.root, folders, backends, args.keep)
    summary = summarize(measured, chain)
    path = ws.root / EXPECTED
    if args.update:
        status, lines = update(path, summary)
        for line in lines:
            log(line)
        if status:
            return status
    expected = json.loads(path.read_text()) if path.is_file() else {}
    if set(backends) != set(CONFIGS):
        for part in ("counters", "deltas", "checks"):
            for by_backend in expected.get(part, {}).values():
                for b in set(by_backend) - set(backends):
                    by_backend.pop(b)
    status, lines = gate(expected, summary)
    for line in lines[:40]:
        log(line)
    if len(lines) > 40:
        log(f"... and {len(lines) - 40} more")
    for build in chain[1:]:
        problems = [p for ps in summary["checks"][build.name].values() for p in ps]
        what = (
            "declared kernel change, no full-size op or byte added"
            if build.kernels
            else "O(C), adds only ops of at most C elements"
        )
        verdict = "FAILS" if problems else "holds"
        log(f"{build.name} over {build.base}: {what}: {verdict}")
    log("counters: " + ("as expected" if status == 0 else f"FAILED ({EXPECTED})"))
    return status
