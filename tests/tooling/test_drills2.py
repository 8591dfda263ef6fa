"""Fault drills, second round: no commit ever lost, no half-written file,
the workspace you stand in. Each test is a drill that once went wrong,
against the synthetic upstream (no network)."""

import subprocess

import pytest

from conftest import PROVENANCE


def errors(err):
    """The error lines of kbb's stderr (each error is one line)."""
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("kbb: error:")]


# Drill: commits on a user's own branch, on a detached HEAD or in a stash
# were thrown away without a word by `kbb clean`, `apply` and `export`.


def commit_off_series(toy, where):
    """A commit on a branch of the user's (`myfix`) or on a detached HEAD,
    made from branch series; returns its id."""
    toy.kbb("apply", "toy")
    if where == "branch":
        toy.git("checkout", "-q", "-b", "myfix", "series")
    else:
        toy.git("checkout", "-q", "--detach", "series")
    toy.commit_edit("toypkg/core.py", "x + 5\n", "x + 50\n", "Mine" + PROVENANCE)
    return toy.git("rev-parse", "HEAD")


def reachable(repo, commit):
    """True when `commit` is in `repo` (a checkout or a bundle's clone)."""
    result = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo, capture_output=True
    )
    return result.returncode == 0


@pytest.mark.parametrize("where", ["branch", "detached"])
@pytest.mark.parametrize("command", ["apply", "export", "clean"])
def test_a_commit_off_the_series_is_never_lost(toy_series, where, command):
    toy = toy_series
    commit = commit_off_series(toy, where)
    before = toy.snapshot()
    _, err = toy.kbb(command, "toy", expect=2)
    [line] = errors(err)
    on = "myfix" if where == "branch" else "HEAD"
    assert f"{commit[:12]} Mine (only on {on})" in line
    assert "--force to keep them" in line
    assert toy.checkout.is_dir() and reachable(toy.checkout, commit)
    assert toy.snapshot() == before  # export wrote nothing
    _, err = toy.kbb(command, "toy", "--force")
    assert "--force: kept 1 commit(s) in " in err and f"{commit[:12]} Mine" in err
    if command == "clean":
        assert not toy.checkout.exists()
        [bundle] = (toy.root / ".upstream" / "backups").glob("toy-*.bundle")
        assert f".upstream/backups/{bundle.name}" in err
        toy.kbb("fetch", "toy")
        toy.git("fetch", "-q", str(bundle), "refs/kbb/*:refs/kbb/*")
        assert reachable(toy.checkout, commit)
    else:
        assert "refs/kbb/backup/" in err
        kept = toy.git("for-each-ref", "--format=%(objectname)", "refs/kbb/backup/")
        assert commit in kept.split()
        toy.kbb(command, "toy")  # kept: nothing more to refuse


def test_a_stash_is_never_lost(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    (toy.checkout / "toypkg" / "core.py").write_text("stashed\n")
    toy.git("stash", "-q")
    _, err = toy.kbb("clean", "toy", expect=2)
    assert "(only on stash@{0})" in errors(err)[0]


def test_a_failed_apply_goes_back_where_head_was(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    tip = toy.git("rev-parse", "series")
    path = toy.patches / "fix" / "0002-Change-f9.patch"
    path.write_text(path.read_text().replace(" def f9(x):", " def f9(y):"))
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "the checkout is back on branch series, as it was" in errors(err)[0]
    assert toy.git("symbolic-ref", "--short", "HEAD") == "series"
    assert toy.git("rev-parse", "HEAD") == tip
    # Where the user starts fixing, a commit is guarded.
    toy.commit_edit("toypkg/core.py", "x + 7\n", "x + 70\n", "Fix" + PROVENANCE)
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "Fix (only on series)" in errors(err)[0]
