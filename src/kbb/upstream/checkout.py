"""The upstream checkout `.upstream/TARGET`, a git repository: branch
`pristine` and tag `pristine-VERSION` (the pinned release as shipped, from
the PyPI sdist or the upstream repository), `group/NAME` for each patch
group and `series` (every group); the refs `refs/kbb/*` and the config
`kbb.*` that kbb keeps there are listed in docs/workflow.md (`kbb status`
shows them). This module makes and verifies checkouts, and cleans up."""

import shutil
from pathlib import Path

from kbb import KbbError
from kbb import log
from kbb.git import config
from kbb.git import git
from kbb.git import identity_env
from kbb.git import in_progress
from kbb.git import lock_holder
from kbb.git import rev
from kbb.git import temporary_dir
from kbb.git import temporary_prefix
from kbb.upstream import fetch
from kbb.upstream.keep import on_branch
from kbb.upstream.keep import require_exported

_EXCLUDES = "build/\ndist/\n__pycache__/\n*.pyc\n.pytest_cache/\n"


def source_of(checkout):
    return config(checkout, "kbb.source")


def made_from(pin, source):
    """What a checkout of `pin` from `source` is made from (config kbb.pin):
    the sdist's sha256, or the tag's commit."""
    return pin.sdist_sha256 if source == "sdist" else pin.git_commit


def ensure(ws, pin, source=None, git_url=None):
    """The checkout of `pin`, made once (sdist by default); an existing one
    is verified against the pin."""
    checkout = ws.checkout(pin.target)
    if checkout.exists():
        verify(checkout, pin, source)
        return checkout
    source = source or "sdist"
    if source not in ("sdist", "git"):
        raise KbbError(f"unknown source {source!r} (sdist or git)")
    if source == "git" and pin.git_url is None:
        raise KbbError(
            f"pins.toml [{pin.target}] has no git-url, git-tag and git-commit: "
            "it is an sdist only (--source sdist)"
        )
    ws.upstream_dir.mkdir(parents=True, exist_ok=True)
    with temporary_dir(checkout) as tmp:
        dest = tmp / "checkout"
        dest.mkdir()
        git("init", "-q", "-b", "pristine", cwd=dest)
        if source == "sdist":
            date = fetch.unpack(fetch.download_sdist(ws, pin), dest)
            git("add", "-A", cwd=dest)
            message = (
                f"{pin.project} {pin.version} (PyPI sdist, sha256 {pin.sdist_sha256})"
            )
            git("commit", "-q", "-m", message, cwd=dest, env=identity_env(date=date))
        else:
            commit = fetch.clone_tag(pin, git_url or pin.git_url, dest)
            git("reset", "-q", "--hard", commit, cwd=dest)
        git("tag", pin.pristine_tag, cwd=dest)
        pinned = made_from(pin, source)
        for key, value in (("target", pin.target), ("source", source), ("pin", pinned)):
            git("config", f"kbb.{key}", value, cwd=dest)
        (dest / ".git" / "info").mkdir(exist_ok=True)
        (dest / ".git" / "info" / "exclude").write_text(_EXCLUDES)
        dest.rename(checkout)
    log(
        f"{ws.shown(checkout)} is {pin.spec} from the {source} source (branch pristine)"
    )
    return checkout


def verify(checkout, pin, source=None):
    """Refuses a checkout of another source or release than asked, one made
    by an older kbb, and one whose branch pristine moved off its tag."""
    found = source_of(checkout)
    if source and found != source:
        raise KbbError(
            f"{checkout} was made from the {found or 'unknown'} source; "
            f"run `kbb clean {pin.target}` first to use the {source} source"
        )
    if config(checkout, "kbb.pin") != made_from(pin, found):
        raise KbbError(
            f"{checkout} holds another release than pins.toml pins "
            f"({pin.spec}); export any work, then `kbb clean {pin.target}`"
        )
    pristine = rev(checkout, "refs/heads/pristine")
    if pristine is None:
        raise KbbError(
            f"{checkout} has no branch pristine (an older kbb made it, with "
            f"branch upstream): export any work, then `kbb clean {pin.target}`"
        )
    if pristine != rev(checkout, pin.pristine_tag):
        raise KbbError(
            f"branch pristine of {checkout} is not tag {pin.pristine_tag}, the "
            f"release as shipped: move your commits off it, then `git -C "
            f"{checkout} branch -f pristine {pin.pristine_tag}`"
        )


def require_idle(checkout, pin):
    """Refuses while a git operation is in progress or files are changed."""
    operation = in_progress(checkout)
    if operation:
        raise KbbError(f"{checkout}: {operation} is in progress: finish it first")
    status = git("status", "--porcelain", "--untracked-files=normal", cwd=checkout)
    if status.strip():
        raise KbbError(
            f"{checkout} has uncommitted changes: commit them and "
            f"`kbb export {pin.target}`, or discard them"
        )


def leftovers(checkout):
    """What an interrupted kbb left beside and in the checkout: its
    temporary folders (and those of downloads, wheels and exports), the
    worktrees registered there, stale git locks."""
    parent = Path(checkout).parent
    prefix = temporary_prefix(checkout)
    found = sorted(parent.glob(prefix + "*"))
    for pattern in (
        f"downloads/{fetch.DOWNLOADING}*",
        "downloads/tmp*",
        "wheels/*.part",
    ):
        found += sorted(parent.glob(pattern))
    # An export's new patches/SERIES/, made beside the old one.
    found += sorted(parent.parent.glob("patches/.*-*"))
    git_dir = Path(checkout) / ".git"
    if not git_dir.is_dir():
        return found
    for registered in sorted((git_dir / "worktrees").glob("*")):
        gitdir = registered / "gitdir"
        where = gitdir.read_text() if gitdir.is_file() else ""
        if where.startswith(str(parent / prefix)) or not where:
            found.append(registered)
    found += [git_dir / n for n in ("index.lock", "HEAD.lock", "packed-refs.lock")]
    found += sorted((git_dir / "refs").rglob("*.lock"))
    return [path for path in found if path.exists()]


def clean(ws, pin, force=False, checkout_too=True):
    """Removes the leftovers of interrupted runs and, unless only those are
    asked for, the checkout (refusing to discard unexported work; with
    `force`, keeping it and any uncommitted change in a bundle)."""
    checkout = ws.checkout(pin.target)
    for path in leftovers(checkout):
        holder = path.name.endswith(".lock") and lock_holder(path)
        if holder:
            if checkout_too:
                raise KbbError(
                    f"{ws.shown(path)} is held by {holder}: let it finish, "
                    f"then rerun `kbb clean {pin.target}`"
                )
            log(f"kept {ws.shown(path)}: {holder} holds it, a live git lock")
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        log(f"removed {ws.shown(path)}")
    if checkout.exists():
        git("worktree", "prune", cwd=checkout, check=False)
    if not checkout_too or not checkout.exists():
        return
    if not force:
        require_idle(checkout, pin)
    elif git("status", "--porcelain", cwd=checkout).strip():
        # Uncommitted changes too go into the bundle, as a stash.
        message = "uncommitted changes kept by kbb clean --force"
        git("stash", "push", "-q", "--include-untracked", "-m", message, cwd=checkout)
    require_exported(ws, pin, "remove it", force, bundle=True)
    shutil.rmtree(checkout)
    log(f"removed {ws.shown(checkout)}")


def interrupted(ws, targets):
    """Lines saying what an interrupted run left behind, and how to resume."""
    lines = []
    for target in targets:
        checkout = ws.checkout(target)
        left = [ws.shown(path) for path in leftovers(checkout)]
        operation = checkout.exists() and in_progress(checkout)
        if left or operation:
            left += [f"{operation} in {ws.shown(checkout)}"] if operation else []
            lines.append(
                f"{target}: left behind {', '.join(left)}; `kbb clean {target} "
                "--leftovers` removes them"
            )
        elif checkout.exists() and rev(checkout, "HEAD") and not on_branch(checkout):
            lines.append(
                f"{target}: HEAD of {ws.shown(checkout)} is detached; "
                "nothing else was left"
            )
    return lines or ["nothing was left behind"]
