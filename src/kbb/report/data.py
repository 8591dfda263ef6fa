"""The recorded results as docs/analysis.md reads them (kbb.report): every
ENV.json of the environments `tox -e report` depends on (tox.ini), each
entry with its environment, its build and, if stale, why (kbb.results)."""

import dataclasses

from packaging.version import Version

from kbb import KbbError
from kbb import markdown
from kbb import results as results_file

NOT_MEASURED = "not measured in this run"
CONVERGENCE_N = (2, 3, 4, 8, 32)
# The convergence scenario (tests/keras): momentum, channels.
MOMENTUM, CHANNELS = 0.9, 1024


@dataclasses.dataclass
class Source:
    env: str
    entries: list  # each with "env", "stale" and "build" (see Results.find)
    builds: str  # the versions measured, for the header table
    stale: str | None


@dataclasses.dataclass
class Results:
    sources: list
    envs: list  # the environments whose results the analysis reads
    group: str | None = None  # the last keras patch group measured

    def find(self, **match):
        """The entries whose fields equal `match`, current files first,
        each with "env", "stale" and "build" (of keras3 and tf-keras:
        pristine, patched or another group)."""
        return [
            entry
            for source in sorted(self.sources, key=lambda s: (bool(s.stale), s.env))
            for entry in source.entries
            if all(entry.get(key) == value for key, value in match.items())
        ]

    def first(self, **match):
        return next(iter(self.find(**match)), None)

    @property
    def keras_envs(self):
        return [e for e in self.envs if not e.startswith(("tf-keras-", "evidence-"))]

    @property
    def evidence_envs(self):
        return [e for e in self.envs if e.startswith("evidence-")]


def _build(entry):
    """pristine, patched (the fix: `+bessel1`) or another build (what its
    local version adds), for the Keras 3 and tf-keras records.

    >>> [_build({"implementation": "keras3", "keras": v})
    ...  for v in ("3.15.1", "3.15.1+bessel1", "3.15.1+bessel1.native")]
    ['pristine', 'patched', 'native']
    """
    version = entry.get("keras")
    implementation = entry.get("implementation", "")
    if not version or not (
        implementation == "keras3" or implementation.startswith("tf-keras-")
    ):
        return None
    local = Version(version).local
    return "pristine" if local is None else (local.split(".", 1)[1:] or ["patched"])[0]


def _stale(ws, found):
    """Why a results file is stale (kbb.results, for each build in it)."""
    prefix = ws.shown(found.path) + " "
    reasons = results_file.stale_builds(ws, found).values()
    return (
        "; ".join(r.split(": rerun")[0].removeprefix(prefix) for r in reasons if r)
        or None
    )


def load(ws, directory):
    envs = ws.tox_envs("testenv:report", "depends")
    found = results_file.load_all(directory)
    if not found:
        raise KbbError(
            f"no results in {directory}: run the test environments first "
            f"(tox -e {','.join(envs)})"
        )
    sources = []
    for env, f in found.items():
        versions = ", ".join(sorted(b.version for b in f.builds.values()))
        stale = _stale(ws, f)
        entries = [dict(r, env=env, stale=stale, build=_build(r)) for r in f.records]
        sources.append(Source(env, entries, versions or "unstamped", stale))
    return Results(sources, envs, _last_group(ws, found.values()))


def _last_group(ws, files):
    """The last patch group (in series order) that the keras builds of the
    results contain: the analysis is of the builds of the groups up to it."""
    pin = ws.pin("keras")
    groups = ws.series(pin).groups
    found = {
        f.builds["keras"].group
        for f in files
        if "keras" in f.builds and f.builds["keras"].group in groups
    }
    return max(found, key=groups.index) if found else None


def stale(*entries):
    """ " (stale)" after a figure computed from a stale entry."""
    return " (stale)" if any(entry["stale"] for entry in entries) else ""


def value(entry, key, spec):
    return NOT_MEASURED if entry is None else format(entry[key], spec) + stale(entry)


def table(head, rows, name):
    """The text of a named table (kbb.markdown)."""
    return "\n".join(markdown.table(head, rows, name))
