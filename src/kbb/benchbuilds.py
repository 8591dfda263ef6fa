"""The builds that the benchmarks and the cost counters compare.

A build is a branch of the upstream checkout, built into a wheel (`kbb
wheel`) and unpacked: keras' wheels are pure Python, so a worker process
imports a build by putting its folder first on PYTHONPATH, and several
builds stand side by side in one virtual environment.

REFS is the one place that names the branches: the pristine release and
each patch group, stacked in series order.
"""

import base64
import csv
import hashlib
import os
import shutil
import sys
import zipfile

from kbb import KbbError
from kbb import apply
from kbb import build
from kbb import checkout as upstream_checkout
from kbb import lock
from kbb import log
from kbb import results
from kbb.git import rev

# Build name -> branch of .upstream/TARGET.
REFS = {
    "pristine": "pristine",
    "bessel": "group/bessel",
    "native": "group/native",
}
PRISTINE = "pristine"
# The A/A control: the pristine wheel unpacked a second time, into its own
# folder, measured in its own processes as if it were another build.
AA = "aa"


def applied_checkout(ws, target):
    """The upstream checkout of `target`, fetched and with the series
    applied (a contributor's unexported commits are kept, as `kbb wheel`
    keeps them), under the workspace lock as `kbb` takes it."""
    with lock.locked(ws, f"{os.path.basename(sys.argv[0])}: builds of {target}"):
        try:
            pin = ws.pin(target)
        except KbbError as e:
            raise KbbError(f"{e} (no [{target}] table in pins.toml)") from None
        upstream_checkout.ensure(ws, pin)
        apply.ensure_applied(ws, pin)
        return pin


def ref_of(name):
    return REFS[PRISTINE if name == AA else name]


def unpacked(ws, target, names):
    """{name: folder holding the unpacked wheel of that build}.

    Each folder is keyed by the commit (and `aa` gets its own copy of the
    pristine files); one that exists is reused once checked against its
    wheel's RECORD. Built under the workspace lock.
    """
    with lock.locked(ws, f"{os.path.basename(sys.argv[0])}: builds of {target}"):
        pin = applied_checkout(ws, target)
        checkout = ws.checkout(target)
        folders = {}
        for name in names:
            ref = ref_of(name)
            commit = rev(checkout, f"refs/heads/{ref}")
            if commit is None:
                raise KbbError(
                    f"{checkout} has no branch {ref} (build {name}); "
                    f"`kbb apply {target}` makes it"
                )
            folder = ws.upstream_dir / "unpacked" / f"{target}-{name}-{commit[:12]}"
            if folder.is_dir() and not _intact(folder):
                shutil.rmtree(folder)
                log(
                    f"build {name}: {ws.shown(folder)} differs from its wheel's "
                    "RECORD (changed or cut short): unpacking it again"
                )
            if not folder.is_dir():
                wheel = build.wheel(ws, pin, ref)
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


def commits(ws, target, names):
    """{name: commit hash} of the builds' branches."""
    checkout = ws.checkout(target)
    return {n: rev(checkout, f"refs/heads/{ref_of(n)}") for n in names}


def series(ws, target):
    """{name: digest of the patches up to its group} of the patched builds:
    a run counts in the aggregate only while these are the series' now."""
    pin = ws.pin(target)
    return {
        name: results.series_digest(ws, pin, ref.removeprefix("group/"))
        for name, ref in REFS.items()
        if ref.startswith("group/")
    }


def pythonpath(folder, extra=()):
    """PYTHONPATH with the build's folder first."""
    rest = [p for p in (*extra, os.environ.get("PYTHONPATH")) if p]
    return os.pathsep.join([str(folder), *map(str, rest)])
