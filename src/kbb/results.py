"""The tests' recorded figures: one file format, one loader, one staleness
rule.

`kbb install` records in the environment what its build was made from (a
`Build`: target, ref, commit, version, and the digests of the series and
the pin). The tests write their figures to out/results/ENV.json together
with those builds (tests/kbbtest.py, through `write`):

    {"format": 2, "env": ENV, "builds": {TARGET: Build}, "records": [...]}

A result is current for a target when its build was made from the pin as
pins.toml has it now and, for a patched build, from the series as
patches/SERIES/ has it now: content digests, never file times, so an export
that changes no byte keeps every result current.
"""

import dataclasses
import json
import re
from pathlib import Path

from kbb import KbbError
from kbb.files import write_text

FORMAT = 2
BUILDS_FILE = "kbb-builds.json"


@dataclasses.dataclass(frozen=True)
class Build:
    target: str
    ref: str
    commit: str
    version: str
    series: str | None  # digest of patches/SERIES/ up to `group`; None:
    # pristine, or unexported
    unexported: bool  # the commit has changes not exported to patches/
    pin: str  # digest of the pins.toml table
    group: str | None = None  # the last patch group the build contains


def record_build(prefix, build):
    """Adds `build` to the builds installed in the environment `prefix`."""
    path = Path(prefix) / BUILDS_FILE
    builds = installed_builds(prefix)
    builds[build.target] = dataclasses.asdict(build)
    write_text(path, json.dumps(builds, indent=1, sort_keys=True) + "\n")


def installed_builds(prefix):
    """{target: build dict} of what `kbb install` put into `prefix`."""
    path = Path(prefix) / BUILDS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write(directory, env, records, builds):
    """Writes ENV.json (the one writer of results)."""
    data = {"format": FORMAT, "env": env, "builds": builds, "records": records}
    Path(directory).mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, sort_keys=True)
    write_text(Path(directory) / f"{env}.json", text + "\n")


@dataclasses.dataclass
class ResultFile:
    env: str
    path: Path
    builds: dict  # target -> Build
    records: list
    problem: str = ""  # why it cannot be read, if so


def load(path):
    """One ENV.json; an unreadable or unstamped file has no builds."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        return ResultFile(path.stem, path, {}, [], f"is not JSON ({e})")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        records = data if isinstance(data, list) else []
        return ResultFile(path.stem, path, {}, records, "has no build stamp")
    try:
        builds = {t: Build(**b) for t, b in data.get("builds", {}).items()}
        records, env = data["records"], data.get("env", path.stem)
        if not all(isinstance(r, dict) for r in records) or not isinstance(env, str):
            raise TypeError("records must be a list of objects, env a string")
    except (AttributeError, KeyError, TypeError) as e:
        problem = f"is not a results file of format {FORMAT} ({type(e).__name__}: {e})"
        return ResultFile(path.stem, path, {}, [], problem)
    return ResultFile(env, path, builds, records)


def load_all(directory):
    """Every ENV.json of `directory`, by env name."""
    return {path.stem: load(path) for path in sorted(Path(directory).glob("*.json"))}


def staleness(ws, result, pin):
    """Why `result` is stale for the target of `pin`, or None if current."""
    why = _why(ws, result, pin)
    return why and f"{ws.shown(result.path)} {why}: rerun `tox -e {result.env}`"


def _why(ws, result, pin):
    if result.problem:
        return result.problem
    build = result.builds.get(pin.target)
    if build is None:
        return f"measured no build of {pin.target}"
    measured = f"measured {build.version}, "
    if build.pin != pin.digest():
        return measured + f"built from another pins.toml [{pin.target}] than now"
    if build.unexported:
        return measured + f"a build with commits not exported to patches/{pin.series}/"
    if build.series is not None and build.series != series_digest(ws, pin, build.group):
        return measured + f"built from another patches/{pin.series}/ than now"
    return None


def stale_builds(ws, result):
    """{target: why `result` is stale for it, None if current} of each build
    it measured; {None: why} for a file that cannot be read."""
    if result.problem:
        return {None: staleness(ws, result, None)}
    pins = ws.pins()
    return {
        target: staleness(ws, result, pins[target])
        if target in pins
        else f"{target} is no longer pinned: rerun `tox -e {result.env}`"
        for target in result.builds
    }


def series_digest(ws, pin, group=None):
    """The digest of the series of `pin` (up to `group`), or None when there
    is no such series or group."""
    try:
        return ws.series(pin).digest(group)
    except KbbError:
        return None


def status(ws, directory, env, pin):
    """('current' | 'missing' | 'stale', line) of ENV.json for `pin`."""
    path = Path(directory) / f"{env}.json"
    if not path.is_file():
        return "missing", f"{ws.shown(path)}: run `tox -e {env}`"
    reason = staleness(ws, load(path), pin)
    current = f"{ws.shown(path)}: current for patches/{pin.series}/ and pins.toml"
    return ("stale", reason) if reason else ("current", current)


# Generated documents carry the same stamp, as a comment line: the groups
# they cover (up to one, or all), and the digests of those and of the pin.
_STAMP = "<!-- kbb-stamp: {target} upto={upto} series={series} pin={pin} -->"
_STAMPED = re.compile(r"<!-- kbb-stamp: (\S+) upto=(\S+) series=\S+ pin=\S+ -->")


def stamp_line(ws, pin, group=None):
    """The line a generated document carries: the series (up to `group`, if
    its figures are of that group's builds) and the pin of `pin`'s target
    that its figures were measured on."""
    return stamp_of(pin.target, group, series_digest(ws, pin, group), pin.digest())


def stamp_of(target, group, series, pin):
    """The stamp line of recorded digests (`series`: up to `group`, or of
    all groups when `group` is None; `pin`: of the pins.toml table).

    >>> stamp_of("keras", None, "5e71e5", "915")
    '<!-- kbb-stamp: keras upto=all series=5e71e5 pin=915 -->'
    >>> stamped(stamp_of("keras", "bessel", "5e71e5", "915"))
    ['keras']
    """
    return _STAMP.format(target=target, upto=group or "all", series=series, pin=pin)


def stamped(text):
    """The targets whose stamp a generated document carries."""
    return [target for target, _ in _STAMPED.findall(text)]


def restamped(text, line):
    """`text` with its stamp lines left out and the stamp `line` at its end.

    >>> restamped("# Doc\\n\\n" + stamp_of("k", None, "1", "2") + "\\n", "<!-- new -->")
    '# Doc\\n\\n<!-- new -->\\n'
    """
    kept = [s for s in text.rstrip("\n").split("\n") if not _STAMPED.fullmatch(s)]
    return "\n".join(kept).rstrip("\n") + "\n\n" + line + "\n"


def doc_staleness(ws, path, pin):
    """Why the generated document `path` is stale for `pin`, or None."""
    text = path.read_text()
    for target, upto in _STAMPED.findall(text):
        if target != pin.target:
            continue
        if stamp_line(ws, pin, None if upto == "all" else upto) in text:
            return None
        return (
            f"{ws.shown(path)} was generated for another patches/{pin.series}/ "
            "or pins.toml than now: regenerate it"
        )
    return (
        f"{ws.shown(path)} has no stamp of the series and pins it was generated "
        "from: regenerate it"
    )
