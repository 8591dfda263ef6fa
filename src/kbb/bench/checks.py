"""The structural checks of the exact counters (kbb.bench.counters).

A worker record holds, per case and part, the records of its ops: [op,
elements of its largest output]. Against its base, a group that declares
no kernel change (benchmarks/groups.toml) may add ops of at most C
elements only, the same at both batch sizes (`linear_problems`); one that
declares one may add no op of over C elements on balance and no bytes
(`large_problems`). tests/tooling/test_benchcount.py injects each failure.
"""

import collections

from kbb.bench import builds


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


def check(build, base_name, base, record, channels):
    """The problems of a build's record against its base's (module doc)."""
    if build.kernels:
        return large_problems(base, record, channels, base_name)
    return linear_problems(deltas(base, record), channels)


def chain(names):
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
