"""The newest upstream that `kbb pr` checks the series against besides the
pinned release: the pinned `newest` target's sdist (pins.toml), or with
--newest-git a git remote's default branch. The series is kept in the
newest upstream's layout."""

import dataclasses

from packaging.version import Version

from kbb import KbbError
from kbb.git import commit_tree
from kbb.git import git
from kbb.git import identity_env
from kbb.git import temporary_dir
from kbb.upstream import am
from kbb.upstream import fetch
from kbb.upstream import mirror

NEWEST_REF = "refs/kbb/newest"


@dataclasses.dataclass
class Newest:
    commit: str | None  # in the series' layout; None: not checked
    description: str
    source: str = "sdist"
    branch: str | None = None  # upstream's default branch, if the newest is on it
    omit: frozenset = frozenset()
    note: str = ""
    expected: bool = True  # left unchecked online, it is a problem
    newer: str = ""  # a newer sdist than the pinned one is on the index


def find(ws, pin, checkout, newest_git, offline, series_files):
    """The newest upstream of `pin`, committed in the checkout."""
    if newest_git:
        if offline:
            raise KbbError("--newest-git fetches from the network: leave out --offline")
        url = pin.git_url if newest_git is True else newest_git
        if url is None:
            raise KbbError(f"pins.toml [{pin.target}] has no git-url: --newest-git URL")
        commit, branch = fetch.fetch_default_branch(checkout, url, NEWEST_REF)
        return Newest(commit, f"{branch} of {url} ({commit[:12]})", "git", branch)
    if not pin.newest:
        # Nothing pinned (as for tf-keras, whose nightly sdists are older
        # than its releases): said, not a problem; pushing needs --newest-git.
        note = (
            f"no newest upstream pinned (pins.toml [{pin.target}] has no "
            "newest); use --newest-git with network"
        )
        return Newest(None, "", note=note, expected=False)
    newest = ws.pin(pin.newest)
    try:
        archive = fetch.download_sdist(ws, newest, offline=offline)
    except fetch.Unreachable as e:
        return Newest(None, "", note=str(e))
    described = f"{newest.spec}, PyPI sdist (pins.toml [{newest.target}])"
    commit = sdist_commit(checkout, archive, f"{described}\n")
    git("update-ref", NEWEST_REF, commit, cwd=checkout)
    commit = mirror.in_layout(
        checkout, commit, newest.sdist_layout, newest.series_layout
    )
    omit = am.missing_tests(checkout, commit, series_files)
    note = f"the {newest.project} sdist ships no tests" if omit else ""
    newer = "" if offline else newer_on_index(newest)
    return Newest(commit, described, omit=omit, note=note, newer=newer)


def sdist_commit(repo, archive, message):
    """A commit (without parent) of the files of an sdist, in `repo`."""
    with temporary_dir(repo) as tmp:
        files = tmp / "files"
        date = fetch.unpack(archive, files)
        index = {"GIT_INDEX_FILE": str(tmp / "index")}
        git("--work-tree", str(files), "add", "-A", cwd=repo, env=index)
        tree = git("write-tree", cwd=repo, env=index).strip()
    return commit_tree(repo, tree, [], message, identity_env(date=date))


def newer_on_index(newest):
    """A line saying whether the index has a newer sdist than the pin."""
    try:
        version = fetch.newest_version(newest.project)
    except fetch.Unreachable as e:
        return f"not asked whether {newest.project} has a newer sdist: {e}"
    if Version(version) <= Version(newest.version):
        return ""
    return (
        f"pins.toml's {newest.target} {newest.version} is not the newest: "
        f"{version}; bump the pin (docs/workflow.md)"
    )
