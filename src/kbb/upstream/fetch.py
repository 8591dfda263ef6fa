"""Everything that reaches the network, and every pip call: the pinned
sdists (downloaded with pip, so the user's index and mirror settings apply;
sha256-checked and cached), the index's newest version of a project, git
clones and fetches (with the user's git configuration, for credentials and
proxies)."""

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from kbb import KbbError
from kbb import log
from kbb.git import cause
from kbb.git import git
from kbb.git import rev


class Unreachable(KbbError):
    """The package index or the git remote could not be reached."""


# The prefix of a download's temporary folder in .upstream/downloads/ (an
# older kbb's were tmp*): `kbb clean --leftovers` removes what a killed
# run left.
DOWNLOADING = ".download-"


def timeout():
    """Seconds a pip call that reaches the index may take ($KBB_FETCH_TIMEOUT,
    default 300): an index that accepts connections and never answers
    would otherwise keep kbb silent for many minutes."""
    return float(os.environ.get("KBB_FETCH_TIMEOUT") or 300)


def pip(*args, env=None, limit=None):
    """Runs `python -m pip ARGS` in this interpreter; returns the process.
    With `limit` (seconds), a pip that has not finished by then is stopped
    and reported as Unreachable."""
    if importlib.util.find_spec("pip") is None:
        raise KbbError(
            f"{sys.executable} has no pip (a uv virtual environment has none): "
            "`python -m ensurepip`, or run kbb from tox, whose environments "
            "are virtualenv's with pip (tox.ini)"
        )
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    environment = {**os.environ, **(env or {})}
    try:
        return subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=limit
        )
    except subprocess.TimeoutExpired:
        raise Unreachable(
            f"the package index did not answer within {limit:g} s (pip "
            f"{args[0]}): check pip's index-url and your network, or set "
            "KBB_FETCH_TIMEOUT to wait longer"
        ) from None


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def download_sdist(ws, pin, offline=False):
    """The pinned sdist: downloaded with pip once, verified every time. A
    cached file that does not match is reported and moved aside."""
    cached = ws.downloads / f"{pin.sdist_sha256}.tar.gz"
    if cached.is_file():
        if sha256(cached) == pin.sdist_sha256:
            return cached
        corrupt = cached.with_name(cached.name + ".corrupt")
        os.replace(cached, corrupt)
        log(
            f"the cached {pin.spec} sdist does not match its sha256 (corrupted): "
            f"moved to {ws.shown(corrupt)}; downloading it again"
        )
    if offline:
        raise Unreachable(
            f"--offline, and no verified copy of the {pin.spec} sdist is cached "
            f"in {ws.shown(ws.downloads)}"
        )
    ws.downloads.mkdir(parents=True, exist_ok=True)
    log(f"downloading the {pin.spec} sdist with pip (for {timeout():g} s at most)")
    options = "--timeout 15 --no-deps --no-binary :all: --pre -q".split()
    with tempfile.TemporaryDirectory(prefix=DOWNLOADING, dir=ws.downloads) as tmp:
        try:
            result = pip("download", *options, "-d", tmp, pin.spec, limit=timeout())
            found, why = sorted(Path(tmp).glob("*.tar.gz")), cause(result.stderr)
        except Unreachable as e:
            found, why = [], str(e)
        if len(found) != 1 or result.returncode:
            raise Unreachable(
                f"cannot download {pin.spec} with pip, and no verified copy is "
                f"cached in {ws.shown(ws.downloads)}: {why}"
            )
        download = found[0]
        digest = sha256(download)
        if digest != pin.sdist_sha256:
            raise KbbError(
                f"sha256 mismatch for {download.name}: pins.toml says "
                f"{pin.sdist_sha256}, the download is {digest}; it was discarded"
            )
        os.replace(download, cached)
    return cached


def newest_version(project):
    """The newest version of `project` on the package index (pre-releases
    too), asked with pip (25.1 or later). Raises Unreachable when pip fails."""
    result = pip("index", "versions", "--json", "--pre", project, limit=timeout())
    if "no such option: --json" in result.stderr:
        raise Unreachable("pip has no `index versions --json`: upgrade pip to 25.1")
    if result.returncode:
        raise Unreachable(cause(result.stderr))
    return json.loads(result.stdout)["latest"]


def unpack(archive, dest):
    """Unpacks an sdist into `dest` without its top folder; returns the
    newest date of its files, as git takes it."""
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        tops = {m.name.split("/", 1)[0] for m in members}
        if len(tops) != 1:
            raise KbbError(
                f"{archive.name}: expected one top folder, found {sorted(tops)}"
            )
        top = tops.pop()
        date = max(m.mtime for m in members)
        for member in members:
            if member.name == top:
                continue
            member.name = member.name.split("/", 1)[1]
            tar.extract(member, dest, filter="data")
    return f"@{int(date)} +0000"


def clone_tag(pin, url, dest):
    """Fetches the pinned tag from `url` into the new repository `dest`,
    checking that it is the pinned commit."""
    log(f"fetching {pin.git_tag} from {url}")
    git("remote", "add", "origin", url, cwd=dest)
    tag = f"refs/tags/{pin.git_tag}"
    commit = _fetch(dest, "origin", tag, tag, f"{pin.git_tag} from {url}")
    if commit != pin.git_commit:
        raise KbbError(
            f"{pin.git_tag} at {url} is commit {commit}, but pins.toml pins "
            f"{pin.git_commit}"
        )
    return commit


def fetch_default_branch(repo, url, ref):
    """Fetches the default branch of the git remote `url` (its last commit
    only) as `ref`; returns (commit, branch name)."""
    result = git(
        "ls-remote", "--symref", url, "HEAD", cwd=repo, check=False, user_config=True
    )
    if result.returncode:
        raise Unreachable(f"cannot reach {url}: {cause(result.stderr)}")
    match = re.search(r"^ref: refs/heads/(\S+)\tHEAD$", result.stdout, re.MULTILINE)
    branch = match.group(1) if match else "HEAD"
    source = f"refs/heads/{branch}" if match else "HEAD"
    return _fetch(repo, url, source, ref, f"{branch} from {url}"), branch


def _fetch(repo, remote, source, ref, what):
    """Fetches the last commit of `source` of `remote` as `ref`; its id."""
    result = git(
        *("fetch", "-q", "--depth=1", "--no-tags", remote, f"+{source}:{ref}"),
        cwd=repo,
        check=False,
        user_config=True,
    )
    if result.returncode:
        raise Unreachable(f"cannot fetch {what}: {cause(result.stderr)}")
    return rev(repo, ref)
