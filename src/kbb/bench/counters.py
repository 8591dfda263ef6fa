"""`kbb counters` (`tox -e counters`): exact cost counters of each build,
gated exactly (benchmarks/README.md, "Exact counters"). Each build is
counted on each backend by benchmarks/counters/run.py in a worker; the
counters, the deltas against pristine and the structural checks of every
group against its base (`linear_problems`, or `large_problems` for a
declared kernel change) must equal EXPECTED; `--update` rewrites it, and
refuses a summary whose checks fail. Exit status 0 when everything holds,
1 otherwise, 2 on an error.
"""

import collections
import json
import os
import tempfile
from pathlib import Path

from kbb import log
from kbb.bench import builds
from kbb.bench import record
from kbb.bench import workers
from kbb.files import write_text

# "tensorflow-onednn": oneDNN's optimizations on (the default on CPUs with
# AVX512-VNNI and newer), where the native group uses FusedBatchNormV3.
CONFIGS = ("tensorflow", "tensorflow-onednn", "jax", "torch")
EXPECTED = Path("benchmarks") / "counters" / "expected.json"
WORKER = Path("benchmarks") / "counters" / "run.py"
UPDATE = "tox -e counters -- --update"
PARTS = ("counters", "deltas", "checks")  # of EXPECTED: per build and backend
# What the counts depend on besides the code, fixed in every worker with
# the threads (all CPUs), the hash seed and oneDNN's optimizations.
WORKER_ENV = {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}


def measure(root, folders, backends, keep=None):
    """{build: {backend: worker record}}, one worker each."""
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(keep or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name, folder in folders.items():
            for backend in backends:
                log(f"counting {name} on {backend}")
                onednn = "1" if backend == "tensorflow-onednn" else "0"
                settings = {**WORKER_ENV, "TF_ENABLE_ONEDNN_OPTS": onednn}
                threads = os.cpu_count() or 1
                env = workers.env(backend.split("-")[0], threads, folder, **settings)
                path = out / f"{name}-{backend}.json"
                command = [root / WORKER, backend, path]
                what = f"counting {folder.name} on {backend}"
                found = workers.launch(command, env, path, what, folder)
                measured.setdefault(name, {})[backend] = found
    return measured


# The structural checks. A worker record holds, per case and part, the
# records of its ops: [op, elements of its largest output].


def delta(before, after):
    """The records `after` adds and removes: [[op, elements, count], ...]."""
    a = collections.Counter(map(tuple, before))
    b = collections.Counter(map(tuple, after))
    rows = lambda c: sorted(([op, n, k] for (op, n), k in c.items()), key=str)  # noqa: E731
    return {"added": rows(b - a), "removed": rows(a - b)}


def deltas(pristine, build):
    """{case: {part: delta}} of a build's worker record against pristine's."""
    out = {}
    for case, parts in build["cases"].items():
        for part, values in parts.items():
            before = pristine["cases"][case][part]["records"]
            out.setdefault(case, {})[part] = delta(before, values["records"])
    return out


def large(records, channels):
    """Records with more than `channels` elements, or an unknown count."""
    return [r for r in records if r[1] is None or r[1] > channels]


def linear_problems(build_deltas, channels):
    """The fix's O(C) check: every added op has at most C elements, and the
    ops added at one batch size are those added at the other."""
    problems, by_case = [], {}
    for case, parts in build_deltas.items():
        kind = case.rsplit("/", 1)[0]
        for part, d in parts.items():
            for op, n, k in large(d["added"], channels):
                problems.append(f"{case} {part}: adds {k} x {op} of {n} elements")
            by_case.setdefault((kind, part), []).append((case, d["added"]))
    for (kind, part), seen in sorted(by_case.items()):
        if any(added != seen[0][1] for _, added in seen[1:]):
            names = ", ".join(case for case, _ in seen)
            problems.append(f"{kind} {part}: adds other ops at {names}")
    return problems


def large_problems(base, build, channels, name="pristine"):
    """A declared kernel change: no more ops of over C elements than its
    base (`name`), and no counter of bytes above the base's."""
    problems = []
    for case, parts in build["cases"].items():
        for part, values in parts.items():
            n_after = len(large(values["records"], channels))
            before = base["cases"][case][part]
            n_before = len(large(before["records"], channels))
            if n_after > n_before:
                problems.append(
                    f"{case} {part}: {n_after} ops of over {channels} elements, "
                    f"{name} {n_before}"
                )
            for key, value in values.items():
                if key.endswith("bytes") and value > before.get(key, value):
                    problems.append(
                        f"{case} {part}: {key} {value}, {name} {before[key]}"
                    )
    return problems


def stacked(names):
    """[Build] stacked in the order of `names`, no kernels declared."""
    out = []
    for name in names:
        out.append(builds.Build(name, name, out[-1].name if out else None))
    return out


def problems_of(summary):
    """["build backend: problem"] of every failed structural check."""
    return [
        f"{name} {backend}: {p}"
        for name, by_backend in summary["checks"].items()
        for backend, problems in by_backend.items()
        for p in problems
    ]


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
    by_name = {b.name: b for b in chain or stacked(measured)}
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
        **{part: {} for part in PARTS},
    }
    for name, by_backend in measured.items():
        for backend, found in by_backend.items():
            summary["counters"].setdefault(name, {})[backend] = counters(found)
            if name == "pristine":
                continue
            d = deltas(pristine[backend], found)
            summary["deltas"].setdefault(name, {})[backend] = d
            build = by_name[name]
            base_name = build.base or "pristine"
            base = measured[base_name][backend]
            if build.kernels:
                problems = large_problems(base, found, channels, base_name)
            else:
                problems = linear_problems(deltas(base, found), channels)
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
    """Writes EXPECTED unless a structural check fails, with the backends it
    did not measure kept as they were; (status, lines)."""
    problems = problems_of(summary)
    if problems:
        why = "a group adds full-size ops or bytes over its base"
        return 1, [
            f"--update refused ({why}; declare a kernel change in "
            f"{builds.GROUPS} only for one that replaces them):",
            *problems,
        ]
    kept = json.loads(path.read_text()) if path.is_file() else {}
    measured = {b for by_backend in summary["counters"].values() for b in by_backend}
    for part in PARTS:  # the backends not measured keep their figures
        for build, by_backend in summary[part].items():
            old = kept.get(part, {}).get(build, {})
            by_backend.update({b: v for b, v in old.items() if b not in measured})
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
    lines.extend(problems_of(summary))
    mine, theirs = (
        {k: v for k, v in d.items() if k != "recorded_on"} for d in (expected, summary)
    )
    mismatches = differences(mine, theirs)
    if mismatches and expected.get("recorded_on") != summary["recorded_on"]:
        lines.append(
            f"recorded on {expected.get('recorded_on')}, measured on "
            f"{summary['recorded_on']}: TensorFlow's oneDNN graph may differ"
        )
    lines.extend(mismatches)
    return (1 if lines else 0), lines


def arguments(parser):
    add = parser.add_argument
    add("--update", action="store_true", help=f"rewrite {EXPECTED} (then review it)")
    which = "which backends to count (default: %(default)s)"
    add("--backends", default=",".join(CONFIGS), help=which)
    add("--keep", type=Path, help="keep the workers' records here")


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
        for part in PARTS:
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
        what = "declared kernel change, no full-size op or byte added"
        what = what if build.kernels else "O(C), adds only ops of at most C elements"
        verdict = "FAILS" if problems else "holds"
        log(f"{build.name} over {build.base}: {what}: {verdict}")
    log("counters: " + ("as expected" if status == 0 else f"FAILED ({EXPECTED})"))
    return status
