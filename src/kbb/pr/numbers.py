"""The measured figures that a pull request's texts show: the records of
pr.toml's implementations in out/results/ENV.json of pr.toml's envs, each
file current, missing or stale by kbb.results' one rule, and their tables.
A missing or stale result is marked in the texts, never left out."""

import dataclasses

from packaging.version import Version

from kbb import BACKENDS
from kbb import results
from kbb.markdown import table

_ISSUE_FIGURES = (
    "moving_variance biased_reference unbiased_reference data_variance".split()
)


@dataclasses.dataclass
class Evidence:
    records: list  # current results of the implementations of pr.toml
    marks: list  # "[kbb: missing] ..." / "[kbb: stale] ...": in the texts
    statuses: list  # (env, "current" | "missing" | "stale", line)


def collect(ws, pin, config):
    """The records of pr.toml's envs, and the marks of the others: a file
    that is missing, stale, or lacks an implementation's records; and the
    state of its ci-envs."""
    evidence, wanted = Evidence([], [], []), config.implementations
    for env in config.envs:
        state, line = results.status(ws, ws.results, env, pin)
        path = ws.results / f"{env}.json"
        if state == "current":
            found = results.load(path).records
            found = [r for r in found if r.get("implementation") in wanted]
            evidence.records += [dict(r, env=env) for r in found]
            absent = " or ".join(
                sorted(set(wanted) - {r["implementation"] for r in found})
            )
            if absent:
                state = "missing"
                line = f"{ws.shown(path)} has no {absent} result: run `tox -e {env}`"
        evidence.statuses.append((env, state, line))
        if state != "current":
            evidence.marks.append(f"[kbb: {state}] {line}")
    for env in config.ci_envs:  # reported, not shown in the texts
        evidence.statuses.append((env, *results.status(ws, ws.results, env, pin)))
    return evidence


def _column(version, backend):
    """Sorts the pinned release before the patched one, then by backend."""
    rank = BACKENDS.index(backend) if backend in BACKENDS else len(BACKENDS)
    return Version(str(version)).local is not None, rank, str(backend)


def _issue_table(records, pin, config):
    key, order = config.version_key, config.implementations
    several = len(order) > 1
    head = [pin.project, "backend"] + (["implementation"] if several else [])
    head += ["`moving_variance`", "biased rule", "unbiased rule"]
    head += ["variance of the data"]
    rows = []
    for r in sorted(
        records,
        key=lambda r: (order.index(r["implementation"]), _column(r[key], r["backend"])),
    ):
        label = [config.labels[r["implementation"]]] if several else []
        figures = (f"{r[k]:.4f}" for k in _ISSUE_FIGURES)
        rows.append([str(r[key]), r["backend"], *label, *figures])
    return (
        "The script of the issue: `moving_variance` at the end, and what the "
        "biased and the unbiased rules give over the same batches (float64 "
        "references):\n\n" + "\n".join(table(head, rows)).rstrip()
    )


def _convergence_table(records, pin, config):
    key, several = config.version_key, len(config.implementations) > 1
    columns = sorted(
        {(r[key], r["backend"]) for r in records}, key=lambda c: _column(*c)
    )
    cell = {
        (r["implementation"], r["n"], r[key], r["backend"]): r["converged"]
        for r in records
    }
    head = (["implementation"] if several else []) + ["n", "(n - 1) / n"]
    head += [f"{b}, {pin.project} {v}" for v, b in columns]
    rows = []
    for implementation in config.implementations:
        for n in sorted({r["n"] for r in records}):
            values = [cell.get((implementation, n, v, b)) for v, b in columns]
            values = [(n - 1) / n, *values]
            cells = [f"{x:.4f}" if x is not None else "n/a" for x in values]
            name = [config.labels[implementation]] if several else []
            rows.append([*name, str(n), *cells])
    return (
        "Batches of n values of N(0, 1) in each of 1024 channels, momentum "
        "0.9, 200 steps: the mean over the channels of `moving_variance`, "
        "which should be the variance of the data, 1:\n\n"
        + "\n".join(table(head, rows)).rstrip()
    )


def numbers(evidence, pin, config, patched):
    """Markdown tables of the measured figures (with `patched`: of both
    releases), followed by the marks of the missing or stale results. With
    several implementations (pr.toml), the rows name theirs."""
    key = config.version_key
    records = [r for r in evidence.records if patched or r.get(key) == pin.version]
    parts = []
    issue = [r for r in records if r.get("scenario") == "issue-8982"]
    if issue:
        parts.append(_issue_table(issue, pin, config))
    converge = [r for r in records if r.get("scenario") == "convergence"]
    if converge:
        parts.append(_convergence_table(converge, pin, config))
    marks = [f"- **{m}**" for m in evidence.marks]
    if not parts and not marks:
        marks = ["- **[kbb: missing] no measured figure**"]
    return "\n\n".join(parts + ["\n".join(marks)] if marks else parts)
