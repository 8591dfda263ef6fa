"""Wheels built from a branch of an upstream checkout, and their install."""

import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from kbb import KbbError
from kbb import gitops
from kbb import layouts
from kbb.gitops import git
from kbb.gitops import log
from kbb.gitops import rev


def wheel(ws, pin, ref="series"):
    """Builds (once per commit) the wheel of `ref`; returns its path.

    The pristine commit keeps the release's version; any other commit gets
    the PEP 440 local version of the pin (e.g. 3.15.1+bessel1), written into
    the pin's version-files of the exported tree, never into the checkout.
    """
    checkout = ws.checkout(pin.target)
    commit = rev(checkout, ref)
    if commit is None:
        raise KbbError(f"{checkout} has no ref {ref!r}")
    source = git("config", "kbb.source", cwd=checkout).strip()
    problem = layouts.wheel_problem(pin.layout(source))
    if problem:
        raise KbbError(
            f"cannot build a wheel from {checkout}, a {source} checkout: "
            f"{problem}; build it from the sdist (`kbb clean {pin.target}`, "
            f"then `kbb wheel {pin.target}`)"
        )
    pristine = commit == rev(checkout, "refs/heads/pristine")
    version = pin.version if pristine else _patched_version(ws, pin, commit)
    # Keyed by the version too: a changed local-version is another wheel.
    cache = ws.upstream_dir / "wheels" / f"{pin.target}-{commit[:12]}-{version}"
    built = sorted(cache.glob("*.whl"))
    if built:
        return built[0]
    with tempfile.TemporaryDirectory() as tmp:
        src = _extract(checkout, commit, Path(tmp) / "src")
        if not pristine:
            _set_version(src, pin, version)
        log(f"building the {pin.project} {version} wheel from {ref} ({commit[:12]})")
        out = Path(tmp) / "dist"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "-q",
                "--disable-pip-version-check",
                "-w",
                str(out),
                str(src),
            ],
            capture_output=True,
            text=True,
        )
        wheels = sorted(out.glob("*.whl"))
        if result.returncode or len(wheels) != 1:
            raise KbbError(
                f"pip wheel failed for {ref}: {result.stderr.strip()[-2000:]}"
            )
        partial = cache.with_name(cache.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        shutil.copy(wheels[0], partial / wheels[0].name)
        partial.rename(cache)
    return cache / wheels[0].name


def _patched_version(ws, pin, commit):
    """The version of a build of `commit`: the pin's version with a PEP 440
    local label naming the patch groups it contains. Groups that change only
    upstream's test files change no byte of the package, so the label
    starts with the pin's `local-version` at the first group that changes
    the package, then `.GROUP` for each further one: 3.15.1+bessel1 for
    branch group/bessel, 3.15.1+bessel1.native for group/native. A commit
    that is not the tip of a group gets `.g` and its abbreviated id."""
    checkout = ws.checkout(pin.target)
    series = gitops.Series.load(ws.patches(pin.series))
    contained, tips = [], set()
    for group in series.groups:
        tip = rev(checkout, f"refs/heads/group/{group}")
        tips.add(tip)
        if tip and gitops.is_ancestor(checkout, tip, commit):
            if not _tests_only(series.group_patches(group)):
                contained.append(group)
    labels = [pin.local_version] + contained[1:] if contained else ["tests"]
    if commit not in tips:
        labels.append(f"g{commit[:12]}")
    return f"{pin.version}+{'.'.join(labels)}"


def _tests_only(patches):
    """True when the patches change only upstream's test files."""
    files = [f for p in patches for f in gitops.patch_files(p.path.read_text())]
    return all(f.endswith("_test.py") for f in files)


def _extract(checkout, commit, dest):
    archive = git("archive", "--format=tar", commit, cwd=checkout, input=b"")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def tree(ws, pin, ref, dest):
    """Writes the files of `ref` to `dest`, replacing what was there."""
    checkout = ws.checkout(pin.target)
    commit = rev(checkout, ref)
    if commit is None:
        raise KbbError(f"{checkout} has no ref {ref!r}")
    shutil.rmtree(dest, ignore_errors=True)
    return _extract(checkout, commit, Path(dest))


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


def install(ws, pin, ref, no_deps=True):
    """Installs the wheel of `ref` into the running interpreter."""
    path = wheel(ws, pin, ref)
    log(f"installing {path.name} into {sys.prefix}")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--force-reinstall",
    ]
    if no_deps:
        command.append("--no-deps")
    result = subprocess.run([*command, str(path)], capture_output=True, text=True)
    if result.returncode:
        raise KbbError(
            f"pip install {path.name} failed: {result.stderr.strip()[-2000:]}"
        )
    return path
