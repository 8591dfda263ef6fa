"""Wheels built from a branch of an upstream checkout, their install, and
the stamp an install leaves for the results of the tests that follow."""

import io
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from kbb import KbbError
from kbb import layout
from kbb import log
from kbb import results
from kbb import wheelfile
from kbb.git import cause
from kbb.git import config
from kbb.git import git
from kbb.git import is_ancestor
from kbb.git import rev
from kbb.series import tests_only
from kbb.upstream.checkout import source_of
from kbb.upstream.fetch import pip
from kbb.upstream.fetch import sha256

# In each cached wheel's folder: the wheel's sha256, recorded when built.
DIGEST = "SHA256SUM"


def _commit(checkout, ref):
    commit = rev(checkout, ref)
    if commit is None:
        raise KbbError(f"{checkout} has no ref {ref!r}")
    return commit


def wheel(ws, pin, ref="series"):
    """Builds (once per commit and version) the wheel of `ref`, byte for
    byte reproducible; returns its path.

    The pristine commit keeps the release's version; any other commit gets
    the PEP 440 local version of its groups (e.g. 3.15.1+bessel1), written
    into the pin's version-files of the exported tree, never the checkout.
    """
    checkout = ws.checkout(pin.target)
    commit = _commit(checkout, ref)
    source = source_of(checkout)
    problem = layout.NO_WHEEL.get(pin.layout(source))
    if problem:
        raise KbbError(
            f"cannot build a wheel from {checkout}, a {source} checkout: "
            f"{problem}; build it from the sdist (`kbb clean {pin.target}`, "
            f"then `kbb wheel {pin.target}`)"
        )
    version = build_version(ws, pin, commit)
    # Keyed by the version too: a changed local-version is another wheel.
    cache = ws.wheels / f"{pin.target}-{commit[:12]}-{version}"
    built = _cached(ws, cache)
    if built:
        return built
    with tempfile.TemporaryDirectory() as tmp:
        src = _extract(checkout, commit, Path(tmp) / "src")
        if version != pin.version:
            _set_version(src, pin, version)
        log(f"building the {pin.project} {version} wheel from {ref} ({commit[:12]})")
        epoch = git("log", "-1", "--format=%ct", commit, cwd=checkout).strip()
        made = _pip_wheel(src, Path(tmp) / "dist", epoch, ref)
        wheelfile.normalize(made, epoch)
        partial = cache.with_name(cache.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        shutil.copy(made, partial / made.name)
        (partial / DIGEST).write_text(f"{sha256(made)}  {made.name}\n")
        partial.rename(cache)
    return cache / made.name


def _cached(ws, cache):
    """The wheel cached in `cache`, if its bytes are those recorded when it
    was built; one that is not is reported and moved aside."""
    digest = cache / DIGEST
    if not cache.exists():
        return None
    why = "has no digest"
    if digest.is_file():
        recorded, name = digest.read_text().split()
        if (cache / name).is_file() and sha256(cache / name) == recorded:
            return cache / name
        why = f"does not match the sha256 recorded in {DIGEST}"
    corrupt = cache.with_name(cache.name + ".corrupt")
    shutil.rmtree(corrupt, ignore_errors=True)
    os.replace(cache, corrupt)
    log(
        f"the cached wheel {ws.shown(cache)} {why} (truncated or changed): "
        f"moved to {ws.shown(corrupt)}; building it again"
    )
    return None


def _pip_wheel(src, out, epoch, ref):
    env = {"SOURCE_DATE_EPOCH": epoch}
    result = pip("wheel", "--no-deps", "-q", "-w", str(out), str(src), env=env)
    wheels = sorted(out.glob("*.whl"))
    if result.returncode or len(wheels) != 1:
        raise KbbError(f"pip wheel failed for {ref}: {cause(result.stderr)}")
    return wheels[0]


def build_version(ws, pin, commit):
    """The version of a build of `commit`: the release's for the pristine
    commit, else the pin's version with a PEP 440 local label naming the
    patch groups it contains. Groups that change only upstream's test files
    change no byte of the package, so the label starts with the pin's
    `local-version` at the first group that changes the package, then
    `.GROUP` for each further one: 3.15.1+bessel1 for branch group/bessel,
    3.15.1+bessel1.native for group/native. A commit that is not the tip of
    a group gets `.g` and its abbreviated id."""
    checkout = ws.checkout(pin.target)
    if commit == rev(checkout, "refs/heads/pristine"):
        return pin.version
    series = ws.series(pin)
    contained, tips = [], set()
    for group in series.groups:
        tip = rev(checkout, f"refs/heads/group/{group}")
        tips.add(tip)
        if tip and is_ancestor(checkout, tip, commit):
            if not tests_only(series.group_patches(group)):
                contained.append(group)
    labels = [pin.local_version] + contained[1:] if contained else ["tests"]
    if commit not in tips:
        labels.append(f"g{commit[:12]}")
    return f"{pin.version}+{'.'.join(labels)}"


def _extract(checkout, commit, dest):
    archive = git("archive", "--format=tar", commit, cwd=checkout, input=b"")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def tree(ws, pin, ref, dest):
    """Writes the files of `ref` to `dest`, replacing what was there."""
    commit = _commit(ws.checkout(pin.target), ref)
    shutil.rmtree(dest, ignore_errors=True)
    return _extract(ws.checkout(pin.target), commit, Path(dest))


def _set_version(src, pin, version):
    for name in pin.version_files:
        path = src / name
        text = path.read_text()
        quoted = [f'"{pin.version}"', f"'{pin.version}'"]
        if not any(q in text for q in quoted):
            raise KbbError(f"{name} does not contain the version {pin.version!r}")
        for q in quoted:
            text = text.replace(q, q[0] + version + q[0])
        path.write_text(text)


def stamp(ws, pin, ref):
    """What a build of `ref` was made from: the record that `install`
    leaves in the environment, and that the tests' results carry."""
    checkout = ws.checkout(pin.target)
    commit = _commit(checkout, ref)
    version = build_version(ws, pin, commit)
    applied = rev(checkout, "refs/kbb/applied")
    exported = applied is not None and is_ancestor(checkout, commit, applied)
    series = ws.series(pin)
    current = config(checkout, "kbb.series") == series.digest()
    branches = {rev(checkout, f"refs/heads/group/{g}"): g for g in series.groups}
    group = branches.get(commit)  # the last group whose branch is at `commit`
    pristine = version == pin.version
    known = exported and current and group is not None
    return results.Build(
        target=pin.target,
        ref=ref,
        commit=commit,
        version=version,
        series=series.digest(group) if known and not pristine else None,
        unexported=not pristine and not known,
        pin=pin.digest(),
        group=None if pristine else group,
    )


def install(ws, pin, ref, no_deps=True):
    """Installs the wheel of `ref` into the running interpreter, and records
    its stamp there (`results.BUILDS_FILE`)."""
    path = wheel(ws, pin, ref)
    log(f"installing {path.name} into {sys.prefix}")
    args = ["install", "-q", "--force-reinstall"] + (["--no-deps"] if no_deps else [])
    result = pip(*args, str(path))
    if result.returncode:
        raise KbbError(f"pip install {path.name} failed: {cause(result.stderr)}")
    results.record_build(sys.prefix, stamp(ws, pin, ref))
    return path
