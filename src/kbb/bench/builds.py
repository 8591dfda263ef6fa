"""The builds that the benchmarks and the cost counters compare: a ref of
the upstream checkout built into a wheel (`kbb wheel`) and unpacked;
keras' wheels are pure Python, so a worker imports a build by putting its
folder first on PYTHONPATH. The default builds: `pristine`, then every
group of the series that changes more than tests, each stacked on the one
before; `--builds` selects others, each based on the nearest selected
build it stacks on (git ancestry).
"""

import base64
import csv
import hashlib
import os
import shutil
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kbb import KbbError
from kbb import build
from kbb import lock
from kbb import log
from kbb import results
from kbb.git import git
from kbb.git import is_ancestor
from kbb.git import rev
from kbb.series import tests_only
from kbb.upstream import apply
from kbb.upstream import checkout as upstream_checkout

PRISTINE = "pristine"
# The A/A control: the pristine wheel unpacked a second time, into its own
# folder, measured in its own processes as if it were another build.
AA = "aa"
GROUPS = Path("benchmarks") / "groups.toml"


@dataclass(frozen=True)
class Build:
    name: str
    ref: str
    base: str | None = None  # the build this one stacks on
    kernels: str = ""  # a declared kernel change (benchmarks/groups.toml)


def default_builds(ws, target="keras"):
    """[Build]: pristine, then each group of the series beyond tests, with
    the kernel changes that benchmarks/groups.toml declares."""
    series = ws.series(ws.pin(target))
    path = ws.root / GROUPS
    config = tomllib.loads(path.read_text()) if path.is_file() else {}
    out = [Build(PRISTINE, "pristine")]
    for group in series.groups:
        if not tests_only(series.group_patches(group)):
            kernels = config.get(group, {}).get("kernels", "")
            out.append(Build(group, f"group/{group}", out[-1].name, kernels))
    return out


def _ref(checkout, ref):
    for full in (f"refs/heads/{ref}", ref):
        commit = rev(checkout, full)
        if commit:
            return commit
    return None


def _distance(checkout, ancestor, commit):
    """Commits from `ancestor` to `commit`, or None if not an ancestor."""
    if not is_ancestor(checkout, ancestor, commit):
        return None
    count = git("rev-list", "--count", f"{ancestor}..{commit}", cwd=checkout)
    return int(count.strip())


def stack(checkout, builds):
    """[Build] with each base set to the nearest selected ancestor (pristine
    when none is selected but pristine)."""
    commits = {b.name: _ref(checkout, b.ref) for b in builds}
    out = []
    for b in builds:
        if b.name == PRISTINE:
            out.append(b)
            continue
        near = []
        for other in builds:
            if other.name in (b.name, AA) or commits[other.name] == commits[b.name]:
                continue
            d = _distance(checkout, commits[other.name], commits[b.name])
            if d is not None:
                near.append((d, other.name))
        base = min(near)[1] if near else PRISTINE
        out.append(Build(b.name, b.ref, base, b.kernels))
    return out


def select(ws, spec, target="keras"):
    """[Build] of `--builds` (names, group/NAME refs or NAME=REF)."""
    known = {b.name: b for b in default_builds(ws, target)}
    known.update({b.ref: b for b in known.values()})
    chosen = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, ref = item.partition("=")
        if ref:
            kernels = known[name].kernels if name in known else ""
            chosen.append(Build(name, ref, kernels=kernels))
        elif item in known:
            chosen.append(known[item])
        else:
            raise KbbError(f"no build {item!r}: {', '.join(sorted(known))} or NAME=REF")
    if PRISTINE not in [b.name for b in chosen]:
        chosen.insert(0, known[PRISTINE])
    return stack(ws.checkout(target), chosen)


def applied_checkout(ws, target):
    """The pin of `target`, its checkout fetched and the series applied (a
    contributor's unexported commits kept, as `kbb wheel` keeps them)."""
    with lock.locked(ws, f"{os.path.basename(sys.argv[0])}: builds of {target}"):
        try:
            pin = ws.pin(target)
        except KbbError as e:
            raise KbbError(f"{e} (no [{target}] table in pins.toml)") from None
        upstream_checkout.ensure(ws, pin)
        apply.ensure_applied(ws, pin)
        return pin


def refs(builds):
    """{name: ref}, with the A/A control on pristine's ref."""
    out = {b.name: b.ref for b in builds}
    out[AA] = out.get(PRISTINE, "pristine")
    return out


def unpacked(ws, target, builds, names=None):
    """{name: folder of the unpacked wheel} of `builds` (and `aa` when in
    `names`, its own copy of pristine's), keyed by the commit; one that
    exists is reused once checked against its wheel's RECORD."""
    with lock.locked(ws, f"{os.path.basename(sys.argv[0])}: builds of {target}"):
        pin = applied_checkout(ws, target)
        checkout = ws.checkout(target)
        by_name = refs(builds)
        folders = {}
        for name in names or [b.name for b in builds]:
            ref = by_name[name]
            commit = _ref(checkout, ref)
            if commit is None:
                mend = f"`kbb apply {target}` makes the groups' branches"
                raise KbbError(f"{checkout} has no ref {ref} (build {name}); {mend}")
            folder = ws.upstream_dir / "unpacked" / f"{target}-{name}-{commit[:12]}"
            if folder.is_dir() and not _intact(folder):
                shutil.rmtree(folder)
                why = "differs from its wheel's RECORD (changed or cut short)"
                log(f"build {name}: {ws.shown(folder)} {why}: unpacking it again")
            if not folder.is_dir():
                wheel = build.wheel(ws, pin, commit)
                partial = folder.with_name(folder.name + ".part")
                shutil.rmtree(partial, ignore_errors=True)
                with zipfile.ZipFile(wheel) as files:
                    files.extractall(partial)
                partial.rename(folder)
                log(f"build {name}: {wheel.name} unpacked in {folder}")
            folders[name] = folder
        return folders


def _intact(folder):
    """Whether each file that the RECORD of the wheel unpacked in `folder`
    lists has the sha256 recorded there (what a worker imports)."""
    records = list(folder.glob("*.dist-info/RECORD"))
    if len(records) != 1:
        return False
    for path, digest, *_ in csv.reader(records[0].read_text().splitlines()):
        if not digest:
            continue  # RECORD itself
        file = folder / path
        if not file.is_file():
            return False
        found = hashlib.sha256(file.read_bytes()).digest()
        if base64.urlsafe_b64encode(found).rstrip(b"=").decode() != digest[7:]:
            return False
    return True


def commits(ws, target, builds, names=None):
    """{name: commit hash} of the builds' refs."""
    checkout, by_name = ws.checkout(target), refs(builds)
    return {n: _ref(checkout, by_name[n]) for n in names or [b.name for b in builds]}


def series(ws, target, builds=None):
    """{name: digest of the patches up to its group} of the group builds:
    a run counts in the aggregate only while these are the series' now."""
    pin = ws.pin(target)
    return {
        b.name: results.series_digest(ws, pin, b.ref.removeprefix("group/"))
        for b in builds or default_builds(ws, target)
        if b.ref.startswith("group/")
    }


def pythonpath(folder, extra=()):
    """PYTHONPATH with the build's folder first, then `extra`.

    >>> pythonpath("/b", ["/src"]).split(os.pathsep)[:2]
    ['/b', '/src']
    """
    rest = os.environ.get("PYTHONPATH")
    paths = [str(folder), *map(str, extra), *([rest] if rest else [])]
    return os.pathsep.join(paths)
