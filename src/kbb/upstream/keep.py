"""Nothing committed in an upstream checkout is ever lost: the commits on
a user's branch, a detached HEAD or a stash that the series does not hold
are found before `kbb apply`, `export` or `clean` would leave them behind;
they are refused by name, or with `--force` kept under
refs/kbb/backup/STAMP/ (or a bundle outside the checkout) first."""

import os
import re
import time

from kbb import KbbError
from kbb import log
from kbb.git import git
from kbb.git import rev
from kbb.git import update_refs

_BACKUPS = "--glob=refs/kbb/backup/*"


def tips(checkout):
    """{name: commit} of every place a user may have committed to: each
    local branch but kbb's own pr/* (remade by `kbb pr`), a detached HEAD,
    each stash entry."""
    named = "--format=%(refname:short) %(objectname)"
    heads = git("for-each-ref", named, "refs/heads", cwd=checkout).splitlines()
    found = dict(line.split() for line in heads if not line.startswith("pr/"))
    if not on_branch(checkout) and rev(checkout, "HEAD"):
        found["HEAD"] = rev(checkout, "HEAD")
    stashes = git("stash", "list", "--format=%gd %H", cwd=checkout, check=False)
    found.update(line.split() for line in stashes.stdout.splitlines())
    return found


def unexported(checkout, held=()):
    """{'id Subject': [names of tips]} of the commits on a branch, a
    detached HEAD or a stash (`tips`) that are neither in the series
    (refs/kbb/applied: the series as last applied or exported; pristine;
    the refs `held`) nor kept under refs/kbb/backup/: what applying,
    exporting or cleaning would leave behind."""
    refs = ("refs/kbb/applied", "pristine", *held)
    keep = [commit for ref in refs if (commit := rev(checkout, ref))]
    oneline = ("log", "--reverse", "--format=%h %s", "--abbrev=12")
    lost = {}
    for name, commit in tips(checkout).items():
        out = git(*oneline, commit, "--not", *keep, _BACKUPS, cwd=checkout)
        for line in out.splitlines():
            lost.setdefault(line, []).append(name)
    return lost


def require_exported(ws, pin, action, force=False, held=(), bundle=False):
    """Refuses to leave behind commits the series does not hold; with
    `force`, first keeps them (under refs/kbb/backup/STAMP/, or with
    `bundle` in a git bundle outside the checkout) and says where."""
    checkout = ws.checkout(pin.target)
    lost = unexported(checkout, held)
    if not lost:
        return
    named = "; ".join(f"{line} (only on {', '.join(on)})" for line, on in lost.items())
    if not force:
        raise KbbError(
            f"{checkout} has {len(lost)} commit(s) that are not in "
            f"patches/{pin.series}/: put them on branch series and `kbb export "
            f"{pin.target}` them, or pass --force to keep them under "
            f"refs/kbb/backup/ and {action} ({named})"
        )
    names = sorted({name for on in lost.values() for name in on})
    where = _backup(ws, pin, names, bundle)
    log(f"--force: kept {len(lost)} commit(s) in {where}: {named}")


def _backup(ws, pin, names, bundle):
    """Keeps the tips `names` under refs/kbb/backup/STAMP/NAME (and with
    `bundle` in .upstream/backups/TARGET-STAMP.bundle); returns where and
    how to get them back."""
    checkout = ws.checkout(pin.target)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    while git("for-each-ref", f"refs/kbb/backup/{stamp}", cwd=checkout).strip():
        stamp += "x"  # twice in one second
    prefix = f"refs/kbb/backup/{stamp}"
    found = tips(checkout)
    refs = {
        f"{prefix}/{re.sub(r'[^A-Za-z0-9/_.-]', '-', name)}": found[name]
        for name in names
    }
    update_refs(checkout, refs)
    if not bundle:
        return f"{prefix}/ (`git -C {checkout} branch NAME {prefix}/BRANCH`)"
    path = ws.upstream_dir / "backups" / f"{pin.target}-{stamp}.bundle"
    path.parent.mkdir(exist_ok=True)
    partial = path.with_name(path.name + ".part")
    git("bundle", "create", "-q", str(partial), *refs, cwd=checkout)
    os.replace(partial, path)
    return (
        f"{ws.shown(path)} (`git fetch {path} 'refs/kbb/*:refs/kbb/*'` in a "
        "checkout gets them back)"
    )


def on_branch(checkout):
    return git("symbolic-ref", "-q", "HEAD", cwd=checkout, check=False).returncode == 0
