"""Every git and patch mechanic of the workspace: fetch, apply and export.

The upstream checkout `.upstream/TARGET` is a git repository:

- branch `pristine` and tag `pristine-VERSION`: the pinned release, from
  the PyPI sdist (one commit) or from the upstream git repository;
- branch `group/NAME` for each patch group of the series, stacked in series
  order, and branch `series`: every group applied (the branch to edit);
- ref `refs/kbb/applied`: what `series` was when the series was last
  applied or exported, so that `kbb apply` never discards unexported work.

Commits made here have a fixed committer and dates, so the same series on
the same release always gives the same commit ids. Git runs without the
user's configuration for everything but network access, so that
`git format-patch` writes the same bytes everywhere.
"""

import contextlib
import dataclasses
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from kbb import KbbError
from kbb import layouts
from kbb.pins import Workspace

BOT_NAME = "keras-bn-bessel"
BOT_EMAIL = "keras-bn-bessel@users.noreply.github.com"
PROVENANCE = ("Bug", "Origin", "Forwarded")
# Upstream's test files (keras and tf-keras name them so).
TEST_FILE = re.compile(r"_test\.py$")
FORMAT_PATCH = (
    "format-patch",
    "--no-numbered",
    "--zero-commit",
    "--no-signature",
    "--full-index",
    "--no-renames",
)
_EXCLUDES = "build/\ndist/\n__pycache__/\n*.pyc\n.pytest_cache/\n"


def log(message):
    print(f"kbb: {message}", file=sys.stderr, flush=True)


def git(*args, cwd=None, check=True, input=None, env=None, user_config=False):
    """Runs git; returns its stdout. Raises KbbError on failure if `check`."""
    environment = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    if not user_config:
        environment.update(
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_AUTHOR_NAME=BOT_NAME,
            GIT_AUTHOR_EMAIL=BOT_EMAIL,
            GIT_COMMITTER_NAME=BOT_NAME,
            GIT_COMMITTER_EMAIL=BOT_EMAIL,
        )
    environment.update(env or {})
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=environment,
        text=isinstance(input, str) or input is None,
    )
    if check and result.returncode:
        raise KbbError(f"git {args[0]} failed: {_last_line(result.stderr)}")
    return result if not check else result.stdout


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _bot_env(date):
    return {
        "GIT_AUTHOR_NAME": BOT_NAME,
        "GIT_AUTHOR_EMAIL": BOT_EMAIL,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": BOT_NAME,
        "GIT_COMMITTER_EMAIL": BOT_EMAIL,
        "GIT_COMMITTER_DATE": date,
    }


def rev(repo, ref):
    """The commit id of `ref`, or None if there is no such ref."""
    result = git(
        "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", cwd=repo, check=False
    )
    return result.stdout.strip() or None


def is_ancestor(repo, ancestor, commit):
    """True when `ancestor` is `commit` or one of its ancestors."""
    return not git(
        "merge-base", "--is-ancestor", ancestor, commit, cwd=repo, check=False
    ).returncode


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The series file ---------------------------------------------------------


class Patch:
    """One line of a series file: `GROUP/FILE.patch [only=SOURCE]`."""

    def __init__(self, directory, name, only=None):
        self.name = name
        self.path = directory / name
        self.group = name.split("/", 1)[0]
        self.only = only

    def applies_to(self, source):
        return self.only in (None, source)

    def line(self):
        return self.name + (f" only={self.only}" if self.only else "")


class Series:
    """patches/TARGET/series: patch groups, each a folder, in order."""

    def __init__(self, directory, header, patches):
        self.directory = directory
        self.header = header
        self.patches = patches

    @classmethod
    def load(cls, directory):
        path = directory / "series"
        if not path.is_file():
            raise KbbError(f"no series file: {path}")
        header, patches = [], []
        for number, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                if not patches:
                    header.append(raw)
                continue
            name, *options = line.split()
            only = None
            for option in options:
                if not re.fullmatch(r"only=(git|sdist)", option):
                    raise KbbError(f"{path}:{number}: unknown option {option!r}")
                only = option.split("=", 1)[1]
            if name.count("/") != 1 or not name.endswith(".patch"):
                raise KbbError(
                    f"{path}:{number}: expected GROUP/NAME.patch, got {name!r}"
                )
            patch = Patch(directory, name, only)
            if not patch.path.is_file():
                raise KbbError(f"{path}:{number}: {patch.path} does not exist")
            patches.append(patch)
        series = cls(directory, header, patches)
        series._check_groups(path)
        return series

    def _check_groups(self, path):
        seen = []
        for patch in self.patches:
            if seen and seen[-1] == patch.group:
                continue
            if patch.group in seen:
                raise KbbError(
                    f"{path}: the patches of group {patch.group!r} are not contiguous"
                )
            seen.append(patch.group)
        for group in seen:
            flags = [p.only is not None for p in self.group_patches(group)]
            if flags != sorted(flags):
                raise KbbError(
                    f"{path}: in group {group!r}, patches with only= must come last"
                )

    @property
    def groups(self):
        return list(dict.fromkeys(p.group for p in self.patches))

    def group_patches(self, group):
        return [p for p in self.patches if p.group == group]

    def upto(self, group):
        """The series of the groups up to `group`, in order."""
        if group not in self.groups:
            raise KbbError(f"no group {group!r} in {self.directory / 'series'}")
        keep = self.groups[: self.groups.index(group) + 1]
        return Series(
            self.directory, self.header, [p for p in self.patches if p.group in keep]
        )

    def write(self, patches):
        lines = self.header + [p.line() for p in patches]
        (self.directory / "series").write_text("\n".join(lines) + "\n")

    def digest(self):
        """A hash of the series file and every patch, to notice edits."""
        digest = hashlib.sha256((self.directory / "series").read_bytes())
        for patch in self.patches:
            digest.update(patch.path.read_bytes())
        return digest.hexdigest()


def is_current(ws, pin, ref="series"):
    """True when branch series was applied from (or exported to) the
    series as it is now in patches/TARGET/, and, when only its first groups
    were applied (`apply(..., upto=GROUP)`), `ref` is one of them."""
    checkout = ws.checkout(pin.target)
    if rev(checkout, "refs/heads/series") is None:
        return False
    recorded = git("config", "kbb.series", cwd=checkout, check=False).stdout.strip()
    series = Series.load(ws.patches(pin.series))
    if recorded != series.digest():
        return False
    upto = _upto(checkout)
    if not upto:
        return True
    return ref in ("pristine", *(f"group/{g}" for g in series.upto(upto).groups))


def _upto(checkout):
    return git("config", "kbb.upto", cwd=checkout, check=False).stdout.strip()


def ensure_applied(ws, pin, ref="series"):
    """Applies the series unless branch series is current. A series branch
    with commits not yet exported is used as it is, so that a contributor
    can test an edit before exporting it, unless the series changed too:
    then `apply` refuses to discard those commits. When `ref` is a group
    and the series applies only up to a later point (a newer upstream),
    the groups up to `ref`'s are applied."""
    if is_current(ws, pin, ref):
        return
    try:
        apply(ws, pin)
    except KbbError as e:
        series = Series.load(ws.patches(pin.series))
        group = ref.removeprefix("group/")
        if not ref.startswith("group/") or group not in series.groups[:-1]:
            raise
        log(f"{e}: applying the groups up to {group} only, as {ref} needs")
        apply(ws, pin, upto=group)


def provenance_missing(text):
    """The DEP-3 style headers that a patch's message lacks."""
    message = text.split("\n---\n", 1)[0]
    return [
        key
        for key in PROVENANCE
        if not re.search(rf"^{key}: \S", message, re.MULTILINE)
    ]


def hunks(text):
    """[(file, number, count, header)] for each hunk of a patch, in order."""
    found, current, counts = [], None, {}
    for line in text.splitlines():
        match = re.match(r"diff --git a/(\S+) b/", line)
        if match:
            current = match.group(1)
            continue
        if line.startswith("@@ ") and current:
            counts[current] = counts.get(current, 0) + 1
            found.append((current, counts[current], line.split(" @@")[0] + " @@"))
    return [(f, n, counts[f], h) for f, n, h in found]


# Fetch ---------------------------------------------------------------------


def fetch(ws, pin, source=None, git_url=None):
    """Makes (once) the upstream checkout of `pin`; returns its path."""
    checkout = ws.checkout(pin.target)
    if checkout.exists():
        made_from = git(
            "config", "kbb.source", cwd=checkout, check=False
        ).stdout.strip()
        if source and made_from != source:
            raise KbbError(
                f"{checkout} was made from the {made_from or 'unknown'} source; "
                f"run `kbb clean {pin.target}` first to use the {source} source"
            )
        expected = pin.sdist_sha256 if made_from == "sdist" else pin.git_commit
        made_pin = git("config", "kbb.pin", cwd=checkout, check=False).stdout.strip()
        if made_pin != expected:
            raise KbbError(
                f"{checkout} holds another release than pins.toml pins "
                f"({pin.spec}); export any work, then `kbb clean {pin.target}`"
            )
        return checkout
    source = source or "sdist"
    ws.upstream_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{pin.target}-", dir=ws.upstream_dir))
    try:
        if source == "sdist":
            date = _unpack(download_sdist(ws, pin), tmp)
            git("init", "-q", "-b", "pristine", cwd=tmp)
            git("add", "-A", cwd=tmp)
            git(
                "commit",
                "-q",
                "-m",
                f"{pin.project} {pin.version} (PyPI sdist, sha256 {pin.sdist_sha256})",
                cwd=tmp,
                env=_bot_env(date),
            )
            expected = pin.sdist_sha256
        elif source == "git":
            if pin.git_url is None:
                raise KbbError(
                    f"pins.toml [{pin.target}] has no git-url, git-tag and "
                    "git-commit: it is an sdist only (--source sdist)"
                )
            _clone(pin, git_url or pin.git_url, tmp)
            expected = pin.git_commit
        else:
            raise KbbError(f"unknown source {source!r} (sdist or git)")
        git("tag", pin.pristine_tag, cwd=tmp)
        for key, value in (
            ("target", pin.target),
            ("source", source),
            ("pin", expected),
        ):
            git("config", f"kbb.{key}", value, cwd=tmp)
        (tmp / ".git" / "info").mkdir(exist_ok=True)
        (tmp / ".git" / "info" / "exclude").write_text(_EXCLUDES)
        tmp.rename(checkout)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"{checkout} is {pin.spec} from the {source} source (branch pristine)")
    return checkout


def download_sdist(ws, pin, offline=False):
    """The pinned sdist, downloaded with pip once, verified every time."""
    cached = ws.downloads / f"{pin.sdist_sha256}.tar.gz"
    if cached.is_file():
        if sha256(cached) == pin.sdist_sha256:
            return cached
        cached.unlink()
    if offline:
        raise Unreachable(
            f"--offline, and no verified copy of the {pin.spec} sdist is cached "
            f"in {ws.downloads}"
        )
    ws.downloads.mkdir(parents=True, exist_ok=True)
    log(f"downloading the {pin.spec} sdist with pip")
    with tempfile.TemporaryDirectory(dir=ws.downloads) as tmp:
        try:
            download = pip_download(pin.spec, Path(tmp))
        except Unreachable as e:
            raise Unreachable(
                f"cannot download {pin.spec} with pip, and no verified copy is "
                f"cached in {ws.downloads}: {e}"
            ) from None
        digest = sha256(download)
        if digest != pin.sdist_sha256:
            raise KbbError(
                f"sha256 mismatch for {download.name}: pins.toml says "
                f"{pin.sdist_sha256}, the download is {digest}; it was discarded"
            )
        download.rename(cached)
    return cached


class Unreachable(KbbError):
    """The package index or the git remote could not be reached."""


def pip_download(spec, directory, pre=False):
    """Downloads the sdist of `spec` with pip into `directory`; returns it.
    Raises Unreachable, with pip's last error line, when pip fails."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(directory),
        spec,
    ]
    if pre:
        command.insert(-1, "--pre")
    result = subprocess.run(command, capture_output=True, text=True)
    files = sorted(Path(directory).glob("*.tar.gz"))
    if result.returncode or len(files) != 1:
        raise Unreachable(_last_line(result.stderr))
    return files[0]


def newest_version(project):
    """The newest version of `project` on the package index (pre-releases
    too), asked with pip. Raises Unreachable when pip fails."""
    command = [sys.executable, "-m", "pip", "index", "versions", "--pre", project]
    result = subprocess.run(command, capture_output=True, text=True)
    match = re.search(rf"^{re.escape(project)} \((\S+)\)$", result.stdout, re.M)
    if result.returncode or not match:
        raise Unreachable(_last_line(result.stderr))
    return match.group(1)


def _unpack(archive, dest):
    """Unpacks an sdist into `dest` without its top folder; returns a date."""
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


def _clone(pin, url, dest):
    log(f"fetching {pin.git_tag} from {url}")
    git("init", "-q", "-b", "pristine", cwd=dest)
    git("remote", "add", "origin", url, cwd=dest)
    tag = f"refs/tags/{pin.git_tag}"
    result = git(
        "fetch",
        "-q",
        "--depth=1",
        "--no-tags",
        "origin",
        f"+{tag}:{tag}",
        cwd=dest,
        check=False,
        user_config=True,
    )
    if result.returncode:
        raise KbbError(
            f"cannot fetch {pin.git_tag} from {url}: {_last_line(result.stderr)}"
        )
    commit = rev(dest, tag)
    if commit != pin.git_commit:
        raise KbbError(
            f"{pin.git_tag} at {url} is commit {commit}, but pins.toml pins "
            f"{pin.git_commit}"
        )
    git("reset", "-q", "--hard", commit, cwd=dest)


def clean(ws, pin, force=False):
    checkout = ws.checkout(pin.target)
    if not checkout.exists():
        return
    if not force:
        _require_clean(checkout, pin)
        _require_exported(checkout, pin, "remove it")
    shutil.rmtree(checkout)
    log(f"removed {checkout}")


# Apply and export ----------------------------------------------------------


def _require_clean(checkout, pin):
    status = git("status", "--porcelain", "--untracked-files=normal", cwd=checkout)
    if status.strip():
        raise KbbError(
            f"{checkout} has uncommitted changes: commit them and "
            f"`kbb export {pin.target}`, or discard them"
        )
    if (Path(checkout) / ".git" / "rebase-apply").exists():
        raise KbbError(f"{checkout}: a `git am` is in progress (git am --abort)")


def _require_exported(checkout, pin, action):
    series, applied = (
        rev(checkout, "refs/heads/series"),
        rev(checkout, "refs/kbb/applied"),
    )
    if series and series != applied:
        raise KbbError(
            f"branch series of {checkout} has commits that are not in "
            f"patches/{pin.series}/: `kbb export {pin.target}` them, or pass "
            f"--force to {action} anyway"
        )


def _source(checkout):
    return git("config", "kbb.source", cwd=checkout).strip()


def apply(ws, pin, force=False, upto=None):
    """Applies the series (with `upto`, its groups up to that one) as
    branches group/* and series; returns series."""
    checkout = ws.checkout(pin.target)
    _require_clean(checkout, pin)
    if not force:
        _require_exported(checkout, pin, "discard them")
    full = Series.load(ws.patches(pin.series))
    series = full.upto(upto) if upto else full
    source = _source(checkout)
    translator = layouts.translator(pin.layout(source), pin.series_layout)
    base = rev(checkout, "refs/heads/pristine")
    try:
        if translator is None:
            tips = _am(checkout, pin, series, source, base)
        else:
            tips = _am_translated(checkout, pin, series, source, base, translator)
    except BaseException:
        git("checkout", "-q", "-f", "pristine", cwd=checkout, check=False)
        raise
    _set_branches(checkout, series, tips)
    for group in full.groups[len(series.groups) :]:
        git("branch", "-D", f"group/{group}", cwd=checkout, check=False)
    git("checkout", "-q", "-f", "series", cwd=checkout)
    git("config", "kbb.series", full.digest(), cwd=checkout)
    git("config", "kbb.upto", upto or "", cwd=checkout)
    log(
        f"applied {len(series.patches)} patches of patches/{pin.series}/ "
        f"on {pin.spec}: branch series ({tips[series.groups[-1]][:12]})"
    )
    return tips[series.groups[-1]]


def _set_branches(checkout, series, tips):
    for group in series.groups:
        git("branch", "-f", f"group/{group}", tips[group], cwd=checkout)
    tip = tips[series.groups[-1]]
    git("checkout", "-q", "--detach", tip, cwd=checkout)
    git("branch", "-f", "series", tip, cwd=checkout)
    git("update-ref", "refs/kbb/applied", tip, cwd=checkout)


def _am(repo, pin, series, source, base):
    """`git am`s the series on `base` in `repo`; returns each group's tip.

    Diffs of upstream test files that the tree lacks (a nightly sdist ships
    no tests) are left out, and said."""
    git("checkout", "-q", "-f", "--detach", base, cwd=repo)
    omit = missing_tests(repo, base, series)
    attempt = try_series(repo, series, source, omit)
    for name in attempt.skipped:
        log(f"skipping {name} (only={name_only(series, name)}, checkout from {source})")
    dropped = [d for found in attempt.omitted.values() for d in found]
    if dropped:
        log(
            f"left out {sum(n for _, n in dropped)} hunk(s) of upstream test "
            f"files that {pin.spec} does not ship: "
            + ", ".join(sorted({f for f, _ in dropped}))
        )
    git("config", "kbb.omitted", str(len(dropped)), cwd=repo)
    if attempt.failed is not None:
        raise KbbError(
            f"{attempt.failed.name} does not apply to {pin.spec}: "
            f"{attempt.reason}; the checkout is back on its pristine commit"
        )
    return {group: attempt.tips.get(group, base) for group in series.groups}


def name_only(series, name):
    return next(p.only for p in series.patches if p.name == name)


def missing_tests(repo, commit, series):
    """The test files that the series changes and the tree of `commit`
    lacks, when it has no test file at all (a nightly sdist): their diffs
    are left out of the patches applied there."""
    changed = {f for p in series.patches for f in patch_files(p.path.read_text())}
    return missing_tests_of(repo, commit, changed)


def missing_tests_of(repo, commit, changed):
    files = set(git("ls-tree", "-r", "--name-only", commit, cwd=repo).split())
    if any(TEST_FILE.search(f) for f in files):
        return frozenset()
    return frozenset(f for f in changed - files if TEST_FILE.search(f))


def _git_am(repo, path):
    """`git am --3way` of one patch file; on failure, aborts it and returns
    git's output (None on success)."""
    result = git(
        "am",
        "-q",
        "--3way",
        "--committer-date-is-author-date",
        str(path),
        cwd=repo,
        check=False,
    )
    if result.returncode == 0:
        return None
    git("am", "--abort", cwd=repo, check=False)
    return result.stdout + result.stderr


def _where(text, output):
    """Names the file and hunk of a patch that `git am` reported failing."""
    match = re.search(r"patch failed: (\S+):(\d+)", output)
    if match:
        path, line = match.group(1), match.group(2)
        for file, number, count, header in hunks(text):
            if file == path and re.match(rf"@@ -{line}(,| )", header):
                return f"{file}, hunk {number} of {count} ({header})"
        return f"{path}, the hunk at line {line}"
    match = re.search(r"error: (\S+): does not exist in index", output)
    if match:
        return f"{match.group(1)} does not exist upstream"
    match = re.search(r"Merge conflict in (\S+)", output)
    if match:
        return f"{match.group(1)}: merge conflict"
    return _last_line(output)


def export(ws, pin, new_group=None):
    """Writes the branches of the checkout back to patches/TARGET/.

    Each group but the last ends at its branch group/NAME, the last at
    branch series. `new_group` starts a group after the last one: it gets
    the commits from group/LAST to series.
    """
    checkout = ws.checkout(pin.target)
    _require_clean(checkout, pin)
    if _upto(checkout):
        raise KbbError(
            f"{checkout} has the groups up to {_upto(checkout)} only: "
            f"`kbb apply {pin.target}` the whole series before exporting"
        )
    omitted = git("config", "kbb.omitted", cwd=checkout, check=False).stdout.strip()
    if omitted not in ("", "0"):
        raise KbbError(
            f"{checkout} lacks upstream's tests, so its commits lack {omitted} "
            f"hunk(s) of the series: export from the checkout that has them "
            f"(`kbb export {pin.series}`)"
        )
    series = Series.load(ws.patches(pin.series))
    groups = series.groups
    if new_group:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", new_group) or new_group in groups:
            raise KbbError(f"--new-group {new_group!r}: a new name of a-z, 0-9 and -")
        groups = groups + [new_group]
    if not groups:
        raise KbbError(
            f"patches/{pin.series}/series lists no patch: start a group with "
            f"`kbb export {pin.target} --new-group NAME`"
        )
    source = _source(checkout)
    translator = layouts.translator(pin.layout(source), pin.series_layout)
    branches = ranges = _group_ranges(checkout, groups)
    if translator is not None:
        ranges = _mirror_ranges(checkout, branches, translator)
    new = []
    with tempfile.TemporaryDirectory() as tmp:
        for group, start, end in ranges:
            out = Path(tmp) / group
            git(*FORMAT_PATCH, "-o", str(out), f"{start}..{end}", cwd=checkout)
            names = sorted(p.name for p in out.glob("*.patch"))
            for name in names:
                missing = provenance_missing((out / name).read_text())
                if missing:
                    raise KbbError(
                        f"{group}/{name} lacks the provenance header(s) "
                        f"{', '.join(k + ':' for k in missing)} in its message "
                        "(see docs/workflow.md); nothing was written"
                    )
            kept = [p for p in series.group_patches(group) if not p.applies_to(source)]
            for patch in kept:
                shutil.copy(patch.path, out / patch.path.name)
            if not names and not kept:
                raise KbbError(f"group {group!r} has no commits; nothing was written")
            # An exported patch keeps the only= of the patch of the same name.
            only = {p.name: p.only for p in series.group_patches(group)}
            new += [
                Patch(Path(tmp), f"{group}/{n}", only.get(f"{group}/{n}"))
                for n in names
            ] + [Patch(Path(tmp), patch.name, patch.only) for patch in kept]
        _write_series(series, new)
    series_tip = rev(checkout, "refs/heads/series")
    for group, _, end in branches:
        git("branch", "-f", f"group/{group}", end, cwd=checkout)
    git("update-ref", "refs/kbb/applied", series_tip, cwd=checkout)
    git("config", "kbb.series", Series.load(series.directory).digest(), cwd=checkout)
    log(f"exported {len(new)} patches to patches/{pin.series}/ from {series_tip[:12]}")
    return new


def _group_ranges(checkout, groups):
    """[(group, start, end)]: the commits of each group, checked stacked."""
    ranges, start = [], rev(checkout, "refs/heads/pristine")
    for i, group in enumerate(groups):
        ref = (
            "refs/heads/series" if i == len(groups) - 1 else f"refs/heads/group/{group}"
        )
        end = rev(checkout, ref)
        if end is None:
            raise KbbError(
                f"{checkout} has no branch {ref[11:]}: run `kbb apply` first"
            )
        if not is_ancestor(checkout, start, end):
            raise KbbError(
                f"branch {ref[11:]} is not based on the group before it: rebase "
                f"it (`git rebase --onto {start[:12]} ...`) before exporting"
            )
        if git("rev-list", "--merges", f"{start}..{end}", cwd=checkout).strip():
            raise KbbError(
                f"branch {ref[11:]} has merge commits: a series must be linear"
            )
        ranges.append((group, start, end))
        start = end
    return ranges


def _write_series(series, new):
    directory = series.directory
    wanted = {p.name for p in new}
    for old in directory.glob("*/*.patch"):
        if f"{old.parent.name}/{old.name}" not in wanted:
            old.unlink()
    for patch in new:
        target = directory / patch.name
        target.parent.mkdir(exist_ok=True)
        data = patch.path.read_bytes()
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    for folder in directory.iterdir():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    series.write(new)


# Layout translation: a mirror of the checkout in the series' layout --------
#
# When the checkout's layout differs from the series' (tf-keras' sdist has
# tf_keras/src/..., the series uses the git repository's tf_keras/...), the
# series is applied to, and exported from, mirror commits in the same
# repository: the pristine tree translated file by file, then one commit per
# patch. Mirror commits are deterministic, so their blob ids are stable.

_MIRROR_DATE = "@0 +0000"


def _translate_tree(repo, commit, translate):
    """A commit of `commit`'s tree with every file translated."""
    items = []
    for entry in filter(None, git("ls-tree", "-r", "-z", commit, cwd=repo).split("\0")):
        info, path = entry.split("\t", 1)
        mode, _, blob = info.split()
        items.append((mode, blob, path))
    blobs = read_blobs(repo, [blob for _, blob, _ in items])
    mapped = [(mode, blob, translate(path, blobs[blob])) for mode, blob, path in items]
    changed = [
        data for _, blob, m in mapped if m and m[1] != blobs[blob] for data in [m[1]]
    ]
    new_ids = iter(write_blobs(repo, changed))
    lines = []
    for mode, blob, m in mapped:
        if m is not None:
            new = next(new_ids) if m[1] != blobs[blob] else blob
            lines.append(f"{mode} {new}\t{m[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(
            "update-index",
            "-z",
            "--index-info",
            cwd=repo,
            env=index,
            input="".join(line + "\0" for line in lines),
        )
        tree = git("write-tree", cwd=repo, env=index).strip()
    message = f"Mirror of {commit[:12]} in the series layout"
    return git(
        "commit-tree", tree, "-m", message, cwd=repo, env=_bot_env(_MIRROR_DATE)
    ).strip()


def read_blobs(repo, ids):
    """{id: bytes} of the blobs `ids`, read by one `git cat-file --batch`."""
    unique = list(dict.fromkeys(ids))
    output = git(
        "cat-file",
        "--batch",
        cwd=repo,
        input="".join(i + "\n" for i in unique).encode(),
    )
    blobs, position = {}, 0
    for blob in unique:
        end = output.index(b"\n", position)
        size = int(output[position:end].split()[2])
        blobs[blob] = output[end + 1 : end + 1 + size]
        position = end + 1 + size + 1
    return blobs


def write_blobs(repo, datas):
    """The ids of new blobs of `datas`, written by one `git hash-object`."""
    if not datas:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for number, data in enumerate(datas):
            path = Path(tmp) / str(number)
            path.write_bytes(data)
            paths.append(str(path))
        output = git(
            "hash-object",
            "-w",
            "--stdin-paths",
            "--no-filters",
            cwd=repo,
            input="\n".join(paths) + "\n",
        )
    return output.split()


def _replay(repo, commit, onto, translate):
    """Replays `commit` on `onto`, translating every file it changes."""
    parent = rev(repo, f"{commit}^")
    changes = git(
        "diff-tree",
        "-r",
        "-z",
        "--no-renames",
        "--name-status",
        parent,
        commit,
        cwd=repo,
    )
    fields = [f for f in changes.split("\0") if f]
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git("read-tree", onto, cwd=repo, env=index)
        for status, path in zip(fields[::2], fields[1::2], strict=True):
            side = parent if status == "D" else commit
            data = git("cat-file", "blob", f"{side}:{path}", cwd=repo, input=b"")
            mapped = translate(path, data)
            if mapped is None:
                raise KbbError(
                    f"commit {commit[:12]} changes {path}, which has no "
                    "counterpart in the other layout"
                )
            if status == "D":
                git("update-index", "--force-remove", mapped[0], cwd=repo, env=index)
                continue
            mode = git("ls-tree", commit, "--", path, cwd=repo).split()[0]
            blob = (
                git("hash-object", "-w", "--stdin", cwd=repo, input=mapped[1])
                .strip()
                .decode()
            )
            git(
                "update-index",
                "--add",
                "--cacheinfo",
                f"{mode},{blob},{mapped[0]}",
                cwd=repo,
                env=index,
            )
        tree = git("write-tree", cwd=repo, env=index).strip()
    meta = git(
        "log", "-1", "--format=%an%x00%ae%x00%ad%x00%B", "--date=raw", commit, cwd=repo
    )
    name, email, date, message = meta.split("\0", 3)
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": BOT_NAME,
        "GIT_COMMITTER_EMAIL": BOT_EMAIL,
        "GIT_COMMITTER_DATE": date,
    }
    return git(
        "commit-tree",
        tree,
        "-p",
        onto,
        cwd=repo,
        input=message.rstrip("\n") + "\n",
        env=env,
    ).strip()


def _am_translated(checkout, pin, series, source, base, translator):
    mirror = _translate_tree(checkout, base, translator.to_series)
    with tempfile.TemporaryDirectory(dir=checkout.parent) as tmp:
        worktree = Path(tmp) / "mirror"
        git("worktree", "add", "-q", "--detach", str(worktree), mirror, cwd=checkout)
        try:
            mirror_tips = _am(worktree, pin, series, source, mirror)
        finally:
            git(
                "worktree",
                "remove",
                "--force",
                str(worktree),
                cwd=checkout,
                check=False,
            )
    commits = git(
        "rev-list",
        "--reverse",
        f"{mirror}..{mirror_tips[series.groups[-1]]}",
        cwd=checkout,
    ).split()
    mapped, tip = {mirror: base}, base
    for commit in commits:
        tip = mapped[commit] = _replay(checkout, commit, tip, translator.to_checkout)
    return {group: mapped[commit] for group, commit in mirror_tips.items()}


def _mirror_ranges(checkout, ranges, translator):
    """The group ranges of the checkout, replayed as mirror commits."""
    base = ranges[0][1]
    tip = _translate_tree(checkout, base, translator.to_series)
    mirrored = []
    for group, start, end in ranges:
        first = tip
        for commit in git(
            "rev-list", "--reverse", f"{start}..{end}", cwd=checkout
        ).split():
            tip = _replay(checkout, commit, tip, translator.to_series)
        mirrored.append((group, first, tip))
    return mirrored


# The series on another base: checks and pull-request branches ---------------
#
# `kbb pr` applies the series, in the series' layout, onto other commits of
# the checkout's repository (the pinned release, the newest upstream) in a
# temporary worktree, so that the checkout's branches and files stay as they
# are, while `git am --3way` still finds the pinned blobs the patches name.


def file_diffs(text):
    """Splits a patch: (message, [(file, head, [hunk, ...]), ...]), where
    `head` is the diff's header up to its first hunk."""
    message, *diffs = re.split(r"^(?=diff --git )", text, flags=re.MULTILINE)
    split = []
    for diff in diffs:
        file = re.match(r"diff --git a/(\S+) b/", diff).group(1)
        head, *hunks = re.split(r"^(?=@@ )", diff, flags=re.MULTILINE)
        split.append((file, head, hunks))
    return message, split


def hunk_patches(text):
    """A patch of each hunk of `text` alone, in the order of `hunks(text)`."""
    return [head + hunk for _, head, hunks in file_diffs(text)[1] for hunk in hunks]


def drop_files(text, files):
    """`text` without the diffs of `files`; returns (text, [(file, hunks)])."""
    message, diffs = file_diffs(text)
    kept = [head + "".join(hunks) for f, head, hunks in diffs if f not in files]
    dropped = [(f, len(hunks)) for f, _, hunks in diffs if f in files]
    return message + "".join(kept), dropped


def patch_files(text):
    """The files a patch changes, as they are named after it."""
    return re.findall(r"^diff --git a/\S+ b/(\S+)$", text, re.MULTILINE)


@contextlib.contextmanager
def scratch(repo, commit):
    """A temporary worktree of `repo`, detached at `commit`."""
    with tempfile.TemporaryDirectory(dir=Path(repo).parent) as tmp:
        tree = Path(tmp) / "tree"
        git("worktree", "add", "-q", "--detach", str(tree), commit, cwd=repo)
        try:
            yield tree
        finally:
            git("worktree", "remove", "--force", str(tree), cwd=repo, check=False)
            git("worktree", "prune", cwd=repo, check=False)


@dataclasses.dataclass
class Attempt:
    """What became of a series applied onto `base` (see `try_series`)."""

    base: str
    tips: dict = dataclasses.field(default_factory=dict)  # group -> commit
    skipped: list = dataclasses.field(default_factory=list)  # only= patches
    omitted: dict = dataclasses.field(default_factory=dict)  # name -> [(f, n)]
    unchecked: list = dataclasses.field(default_factory=list)  # all omitted
    failed: Patch | None = None
    reason: str = ""


def try_series(tree, series, source, omit=frozenset()):
    """Applies the series with `git am --3way` on HEAD of the worktree
    `tree`, leaving out the diffs of the files in `omit`; stops at the first
    patch that does not apply, naming its conflicting files and hunks."""
    attempt = Attempt(base=rev(tree, "HEAD"))
    for patch in series.patches:
        if not patch.applies_to(source):
            attempt.skipped.append(patch.name)
        else:
            text, dropped = drop_files(patch.path.read_text(), omit)
            if dropped:
                attempt.omitted[patch.name] = dropped
            if not patch_files(text):
                attempt.unchecked.append(patch.name)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / Path(patch.name).name
                    path.write_text(text)
                    output = _git_am(tree, path)
                if output is not None:
                    attempt.tips.pop(patch.group, None)
                    attempt.failed = patch
                    attempt.reason = _conflicts(tree, text, output)
                    return attempt
        attempt.tips[patch.group] = rev(tree, "HEAD")
    return attempt


def _conflicts(tree, text, output):
    """Names every hunk of a patch that does not apply to HEAD of `tree`,
    even with a 3-way merge, each tried alone."""
    failing = {}
    for (file, number, count, header), single in zip(
        hunks(text), hunk_patches(text), strict=True
    ):
        result = git("apply", "--3way", "-", cwd=tree, input=single, check=False)
        git("reset", "-q", "--hard", cwd=tree)
        if "does not exist in index" in result.stderr:
            failing[file] = ["does not exist there"]
        elif result.returncode:
            failing.setdefault(file, []).append(f"hunk {number} of {count} ({header})")
    if not failing:  # only the hunks together conflict
        return _where(text, output)
    return "; ".join(f"{file}, {', '.join(parts)}" for file, parts in failing.items())


def commit_sdist(repo, archive, message):
    """A commit (without parent) of the files of an sdist, in `repo`."""
    with tempfile.TemporaryDirectory(dir=Path(repo).parent) as tmp:
        files = Path(tmp) / "files"
        date = _unpack(archive, files)
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git("--work-tree", str(files), "add", "-A", cwd=repo, env=index)
        tree = git("write-tree", cwd=repo, env=index).strip()
    return git("commit-tree", tree, "-m", message, cwd=repo, env=_bot_env(date)).strip()


def fetch_default_branch(repo, url, ref):
    """Fetches the default branch of the git remote `url` (its last commit
    only) as `ref`; returns (commit, branch name)."""
    result = git("ls-remote", "--symref", url, "HEAD", cwd=repo, check=False)
    if result.returncode:
        raise Unreachable(f"cannot reach {url}: {_last_line(result.stderr)}")
    match = re.search(r"^ref: refs/heads/(\S+)\tHEAD$", result.stdout, re.MULTILINE)
    branch = match.group(1) if match else "HEAD"
    source = f"refs/heads/{branch}" if match else "HEAD"
    result = git(
        "fetch",
        "-q",
        "--depth=1",
        "--no-tags",
        url,
        f"+{source}:{ref}",
        cwd=repo,
        check=False,
        user_config=True,
    )
    if result.returncode:
        raise Unreachable(
            f"cannot fetch {branch} from {url}: {_last_line(result.stderr)}"
        )
    return rev(repo, ref), branch


def in_layout(repo, commit, layout, series_layout):
    """`commit`, or its mirror when `layout` is not the series' layout."""
    translator = layouts.translator(layout, series_layout)
    if translator is None:
        return commit
    return _translate_tree(repo, commit, translator.to_series)


def strip_provenance(message):
    """A commit message without the workspace's DEP-3 style headers."""
    paragraphs = message.rstrip("\n").split("\n\n")
    last = [
        line
        for line in paragraphs[-1].splitlines()
        if not re.match(rf"({'|'.join(PROVENANCE)}): ", line)
    ]
    paragraphs[-1:] = ["\n".join(last)] if last else []
    return "\n\n".join(paragraphs) + "\n"


def rewrite(repo, base, tip, edit, identity=None):
    """Remakes the commits base..tip with their messages passed through
    `edit` and, if given, the (name, email) `identity` as their author and
    committer (the dates are kept); returns the new tip."""
    new = base
    for commit in git("rev-list", "--reverse", f"{base}..{tip}", cwd=repo).split():
        meta = git(
            "log",
            "-1",
            "--format=%an%x00%ae%x00%ad%x00%B",
            "--date=raw",
            commit,
            cwd=repo,
        )
        name, email, date, message = meta.split("\0", 3)
        name, email = identity or (name, email)
        committer = identity or (BOT_NAME, BOT_EMAIL)
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": committer[0],
            "GIT_COMMITTER_EMAIL": committer[1],
            "GIT_COMMITTER_DATE": date,
        }
        new = git(
            "commit-tree",
            f"{commit}^{{tree}}",
            "-p",
            new,
            cwd=repo,
            input=edit(message),
            env=env,
        ).strip()
    return new


def applies_in_copy(ws, pin):
    """Applies the series to the pinned sdist in a temporary copy of the
    workspace root, so that .upstream/TARGET stays as it is. Returns False,
    having said why, when the sdist is neither cached nor downloadable."""
    try:
        archive = download_sdist(ws, pin)
    except Unreachable as e:
        log(f"not checked whether patches/{pin.series}/ applies: {e}")
        return False
    with tempfile.TemporaryDirectory(prefix="kbb-check-") as tmp:
        copy = Workspace(Path(tmp))
        shutil.copy(ws.pins_file, copy.pins_file)
        shutil.copytree(ws.patches(pin.series), copy.patches(pin.series))
        copy.downloads.mkdir(parents=True)
        os.symlink(archive, copy.downloads / archive.name)
        with contextlib.redirect_stderr(io.StringIO()):  # about the copy
            fetch(copy, pin, "sdist")
            apply(copy, pin)
    return True
