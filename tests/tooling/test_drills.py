"""Fault drills: nothing lost, nothing pushed by mistake, no secret printed,
nothing left behind. Each test is a drill that once went wrong, against the
synthetic upstream (no network)."""

import os
import shutil
import subprocess
import time

import pytest

from conftest import PROVENANCE
from kbb import KbbError
from kbb import git
from kbb import redact
from kbb.upstream import apply
from kbb.upstream import fetch

# Drill: `kbb apply` while a git operation is in progress lost the work.


def start_interactive_rebase(toy):
    """`git rebase -i --autosquash pristine`, stopped at an `edit` of the
    first commit, as the workflow tells a contributor to do."""
    env = {
        **os.environ,
        "GIT_SEQUENCE_EDITOR": "sed -i -e '1s/^pick/edit/'",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    subprocess.run(
        ["git", "rebase", "-q", "-i", "--autosquash", "pristine"],
        cwd=toy.checkout,
        env=env,
        check=True,
        capture_output=True,
    )


def refs(toy):
    return toy.git("for-each-ref", "--format=%(refname) %(objectname)")


def test_apply_refuses_during_an_interactive_rebase(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    start_interactive_rebase(toy)
    toy.commit_edit("toypkg/core.py", "x + 1\n", "x + 10\n", "Amend" + PROVENANCE)
    head, before = toy.git("rev-parse", "HEAD"), refs(toy)
    for command in (["apply", "toy"], ["apply", "toy", "--force"], ["export", "toy"]):
        _, err = toy.kbb(*command, expect=2)
        assert "a rebase (git rebase --continue or --abort) is in progress" in err
    _, err = toy.kbb("wheel", "toy", "--ref", "group/fix")  # builds touch nothing
    assert toy.git("rev-parse", "HEAD") == head and refs(toy) == before
    toy.git("rebase", "--continue")  # the user's rebase goes on


@pytest.mark.parametrize(
    "marker,what",
    [
        ("rebase-apply", "a rebase or `git am`"),
        ("MERGE_HEAD", "a merge"),
        ("CHERRY_PICK_HEAD", "a cherry-pick"),
        ("REVERT_HEAD", "a revert"),
        ("BISECT_LOG", "a bisect"),
    ],
)
def test_apply_refuses_during_any_git_operation(toy_series, marker, what):
    toy = toy_series
    toy.kbb("apply", "toy")
    path = toy.checkout / ".git" / marker
    path.mkdir() if marker == "rebase-apply" else path.write_text("x\n")
    _, err = toy.kbb("apply", "toy", expect=2)
    assert f"{what}" in err and "is in progress: finish it first" in err


# Drill: an interrupt between two branch moves gave a false refusal.


def test_refs_move_in_one_transaction(toy_series):
    toy = toy_series
    before = refs(toy)
    with pytest.raises(KbbError):
        git.update_refs(
            toy.checkout,
            {
                "refs/heads/group/fix": toy.git("rev-parse", "pristine"),
                "refs/heads/series": "1" * 40,
            },
        )
    assert refs(toy) == before  # all or nothing


def test_an_interrupt_while_moving_the_refs_loses_nothing(toy_series, monkeypatch):
    toy = toy_series
    path = toy.patches / "fix" / "0002-Change-f9.patch"
    path.write_text(path.read_text().replace("x + 90", "x + 91"))
    before = refs(toy)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(apply, "update_refs", interrupted)
    _, err = toy.kbb("apply", "toy", expect=130)
    assert "kbb: interrupted" in err and "then rerun the command" in err
    assert refs(toy) == before
    monkeypatch.undo()
    toy.kbb("apply", "toy")  # no false "unexported commits"
    assert "x + 91" in (toy.checkout / "toypkg/core.py").read_text()


# Drill: branch pristine was never checked; a failure left HEAD on it.
# (Second round: a failure goes back where HEAD was, test_drills2.py.)


def test_pristine_must_be_its_tag(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.git("checkout", "-q", "pristine")
    toy.commit_edit("toypkg/core.py", "x + 2\n", "x + 20\n", "Oops" + PROVENANCE)
    toy.git("checkout", "-q", "series")
    for command in (["apply", "toy"], ["wheel", "toy", "--ref", "pristine"]):
        _, err = toy.kbb(*command, expect=2)
        assert "branch pristine of" in err and "is not tag pristine-1.0" in err


def test_a_failed_apply_never_leaves_head_on_pristine(toy_series):
    toy = toy_series
    toy.git("checkout", "-q", "pristine")
    toy.break_context()
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "HEAD is back at" in err and "detached: `git switch -c NAME`" in err
    result = subprocess.run(
        ["git", "symbolic-ref", "-q", "HEAD"], cwd=toy.checkout, capture_output=True
    )
    assert result.returncode == 1  # detached, not on branch pristine
    assert toy.git("rev-parse", "HEAD") == toy.git("rev-parse", "pristine")


def test_an_old_checkout_names_kbb_clean(toy_series):
    toy = toy_series
    toy.git("branch", "-m", "pristine", "upstream")
    _, err = toy.kbb("apply", "toy", expect=2)
    [error] = [line for line in err.splitlines() if line.startswith("kbb: error")]
    assert "has no branch pristine" in error
    assert "`kbb clean toy`" in err


# Drill: commits only on a group/* branch were reset without a word;
# --force did not say what it discarded (now: it keeps them, and says where).


def test_a_commit_only_on_a_group_branch_is_not_reset(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.git("checkout", "-q", "group/fix")
    toy.commit_edit("toypkg/core.py", "x + 4\n", "x + 40\n", "Lonely" + PROVENANCE)
    toy.git("checkout", "-q", "series")
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "Lonely (only on group/fix)" in err
    _, err = toy.kbb("apply", "toy", "--force")
    assert "--force: kept 1 commit(s) in refs/kbb/backup/" in err and "Lonely" in err


def test_apply_force_names_what_it_discards(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 1\n", "x + 1000\n", "Change f1" + PROVENANCE)
    commit = toy.git("rev-parse", "--short=12", "HEAD")
    _, err = toy.kbb("apply", "toy", "--force")
    assert "--force: kept 1 commit(s) in refs/kbb/backup/" in err
    assert f"{commit} Change f1 (only on series)" in err


# Drill: credentials in a remote's URL were printed.


def test_credentials_are_redacted():
    assert (
        redact("to https://x-access-token:ghp_abc@github.com/a/b.git")
        == "to https://***@github.com/a/b.git"
    )
    assert redact("https://user:pw@host/x and https://tok@host/y") == (
        "https://***@host/x and https://***@host/y"
    )
    assert redact("https://h/x?token=abc&b=1 ?access_token=z") == (
        "https://h/x?token=***&b=1 ?access_token=***"
    )
    assert redact("git@github.com:me/keras.git") == "git@github.com:me/keras.git"


def test_a_push_never_prints_the_token(toy_series, tmp_path, monkeypatch):
    from test_pr import configure
    from test_pr import ready_to_push

    toy = toy_series
    configure(toy, tmp_path, monkeypatch)
    fork = ready_to_push(toy, tmp_path, monkeypatch)
    secret = "https://x-access-token:ghp_SECRET@example.invalid/fork.git"
    toy.git("remote", "add", "fork", secret)
    toy.git("config", f"url.{fork}.pushInsteadOf", secret)  # pushes to the fork
    out, err = toy.kbb("pr", "toy", "--push", "fork")
    assert "to https://***@example.invalid/fork.git" in out
    assert "ghp_SECRET" not in out + err
    dead = "https://x-access-token:ghp_SECRET@127.0.0.1:9/fork.git"
    toy.git("remote", "add", "dead", dead)
    out, err = toy.kbb("pr", "toy", "--push", "dead", expect=2)
    assert "git push dead pr/fix failed: " in err
    assert "ghp_SECRET" not in out + err


# Drill: a no-op export made every result stale (staleness by mtime).


def test_a_no_op_export_keeps_the_results_current(toy_series, tmp_path, monkeypatch):
    from test_pr import configure
    from test_pr import figure

    toy = toy_series
    configure(toy, tmp_path, monkeypatch)
    toy.write_results("pristine", [figure("1.0")], "pristine")
    toy.write_results("patched", [figure("1.0+bessel1")], "group/fix")
    time.sleep(1.1)
    toy.kbb("apply", "toy")
    toy.kbb("export", "toy")  # same bytes, new file times
    for patch in toy.patches.rglob("*.patch"):
        os.utime(patch)
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    assert "  patched   current" in stdout and "  pristine  current" in stdout


# Drill: Ctrl-C exited 130 without a word; SIGKILL left folders and
# locked worktrees that nothing removed.


def test_ctrl_c_says_what_was_left_and_how_to_resume(toy_series, monkeypatch):
    toy = toy_series
    path = toy.patches / "fix" / "0002-Change-f9.patch"
    path.write_text(path.read_text().replace("x + 90", "x + 91"))
    real = apply.am.git_am
    calls = []

    def interrupted(repo, patch):
        calls.append(patch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(repo, patch)

    monkeypatch.setattr(apply.am, "git_am", interrupted)
    _, err = toy.kbb("apply", "toy", expect=130)
    assert "kbb: interrupted" in err
    assert "kbb: then rerun the command to resume" in err
    assert toy.git("status", "--porcelain") == ""
    monkeypatch.undo()
    toy.kbb("apply", "toy")


def test_clean_removes_what_killed_runs_left(toy_series):
    toy = toy_series
    upstream = toy.root / ".upstream"
    (upstream / ".toy-abc123" / "checkout").mkdir(parents=True)
    tree = upstream / ".toy-def456" / "mirror"
    toy.git("worktree", "add", "-q", "--detach", str(tree), "pristine")
    toy.git("worktree", "lock", str(tree))
    (toy.checkout / ".git" / "index.lock").write_text("")
    _, err = toy.kbb("apply", "toy", expect=2)  # git cannot work with the lock
    assert "index.lock" in err
    _, err = toy.kbb("clean", "toy", "--leftovers")
    assert "removed .upstream/.toy-abc123" in err and "index.lock" in err
    assert not list(upstream.glob(".toy-*"))
    assert len(toy.git("worktree", "list").splitlines()) == 1
    assert toy.checkout.is_dir()
    toy.kbb("apply", "toy")


# Drill: pip's and git's errors kept only their last line.


def test_errors_keep_their_cause():
    pip_output = (
        "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, "
        "status=None)) after connection broken by 'NewConnectionError('<pip._vendor."
        "urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new "
        "connection: [Errno 111] Connection refused')': /simple/keras/\n"
        "ERROR: Could not find a version that satisfies the requirement keras==3.15.1 "
        "(from versions: none)\n"
        "ERROR: No matching distribution found for keras==3.15.1\n"
    )
    said = git.cause(pip_output)
    assert "[Errno 111] Connection refused" in said
    assert said.endswith("No matching distribution found for keras==3.15.1")
    assert git.cause("hint: a\nfatal: repository 'x' not found\n") == (
        "fatal: repository 'x' not found"
    )


def test_an_unreachable_git_remote_says_why(toy):
    toy.write_pins(url=(toy.tmp / "missing.git").as_uri())
    _, err = toy.kbb("fetch", "toy", "--source", "git", expect=2)
    assert "does not appear to be a git repository" in err or "not found" in err


# Drill: two bad value types in pins.toml ended in a traceback.


@pytest.mark.parametrize(
    "line,said",
    [
        ("version = 3", "[toy] version must be a string, not int 3"),
        (
            'version-files = "toypkg/version.py"',
            "version-files must be a list of strings",
        ),
        (
            "version-files = [1]",
            "version-files must be a list of strings, not list [1]",
        ),
        ("newest = true", "newest must be a string, not bool true"),
    ],
)
def test_pins_values_have_types(toy, line, said):
    key = line.split(" = ")[0]
    pins = toy.root / "pins.toml"
    kept = [
        entry
        for entry in pins.read_text().splitlines()
        if not entry.startswith(key + " ")
    ]
    pins.write_text("\n".join(kept + [line]) + "\n")
    _, err = toy.kbb("fetch", "toy", expect=2)
    [error] = [line for line in err.splitlines() if line.startswith("kbb: error")]
    assert said in error


# Drill: a corrupted cache file was deleted without a word.


def test_a_corrupted_download_is_reported_and_kept_aside(toy):
    toy.kbb("fetch", "toy")
    shutil.rmtree(toy.checkout)
    cached = toy.root / ".upstream" / "downloads" / f"{toy.sha256}.tar.gz"
    cached.write_bytes(b"corrupted")
    _, err = toy.kbb("fetch", "toy")
    assert "does not match its sha256 (corrupted): moved to .upstream/downloads/" in err
    assert cached.with_name(cached.name + ".corrupt").read_bytes() == b"corrupted"
    assert fetch.sha256(cached) == toy.sha256


# Drill: wheels were not byte-reproducible; the cache ignored local-version.


def test_wheels_are_byte_reproducible(toy_series):
    toy = toy_series
    out, _ = toy.kbb("wheel", "toy")
    first = (path := out.strip()) and open(path, "rb").read()
    shutil.rmtree(toy.root / ".upstream" / "wheels")
    time.sleep(2.1)  # the toy backend dates its zip entries now
    out, err = toy.kbb("wheel", "toy")
    assert "building" in err and open(out.strip(), "rb").read() == first


def test_the_wheel_cache_honours_the_local_version(toy_series):
    toy = toy_series
    out, _ = toy.kbb("wheel", "toy", "--ref", "group/fix")
    assert out.strip().endswith("toypkg-1.0+bessel1-py3-none-any.whl")
    pins = toy.root / "pins.toml"
    pins.write_text(pins.read_text().replace('"bessel1"', '"bessel2"'))
    out, _ = toy.kbb("wheel", "toy", "--ref", "group/fix")
    assert out.strip().endswith("toypkg-1.0+bessel2-py3-none-any.whl")


# tox-uv: its environments have no pip; kbb says so instead of failing late.


def test_no_pip_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fetch.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KbbError, match="has no pip .a uv virtual environment has none"):
        fetch.pip("--version")
