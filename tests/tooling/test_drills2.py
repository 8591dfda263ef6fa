"""Fault drills, second round: no commit ever lost, no half-written file,
the workspace you stand in. Each test is a drill that once went wrong,
against the synthetic upstream (no network)."""

import contextlib
import errno
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from conftest import PROVENANCE
from kbb import git
from kbb.bench import builds
from kbb.cli import main
from kbb.workspace import Workspace


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


def test_clean_force_keeps_uncommitted_changes_too(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    core = toy.checkout / "toypkg" / "core.py"
    core.write_text(core.read_text().replace("x + 6\n", "x + 66\n"))
    _, err = toy.kbb("clean", "toy", "--force")
    assert "uncommitted changes kept by kbb clean --force (only on stash@{0})" in err
    [bundle] = (toy.root / ".upstream" / "backups").glob("toy-*.bundle")
    toy.kbb("fetch", "toy")
    toy.git("fetch", "-q", str(bundle), "refs/kbb/*:refs/kbb/*")
    refs = toy.git("for-each-ref", "--format=%(refname)", "refs/kbb/backup/")
    [stash] = refs.splitlines()
    assert "x + 66" in toy.git("show", f"{stash}:toypkg/core.py")


def test_a_failed_apply_goes_back_where_head_was(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    tip = toy.git("rev-parse", "series")
    toy.break_context()
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "the checkout is back on branch series, as it was" in errors(err)[0]
    assert toy.git("symbolic-ref", "--short", "HEAD") == "series"
    assert toy.git("rev-parse", "HEAD") == tip
    # Where the user starts fixing, a commit is guarded.
    toy.commit_edit("toypkg/core.py", "x + 7\n", "x + 70\n", "Fix" + PROVENANCE)
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "Fix (only on series)" in errors(err)[0]


# Drill: an editable kbb acted on the clone it was installed from, wherever
# one stood; nothing named the workspace.


def test_kbb_acts_on_the_clone_you_stand_in(toy, monkeypatch, capsys):
    second = toy.tmp / "second"
    shutil.copytree(toy.root, second)
    (second / "patches" / "toy" / "series").write_text("# toy series\nfix/x.patch\n")
    (second / "patches" / "toy" / "fix").mkdir()
    (second / "patches" / "toy" / "fix" / "x.patch").write_text("no headers\n")
    monkeypatch.delenv("KBB_ROOT", raising=False)
    monkeypatch.chdir(second / "patches")  # below the root, as git looks
    assert main(["check", "toy"]) == 2
    assert "fix/x.patch: lacks Bug:" in capsys.readouterr().err
    monkeypatch.chdir(toy.tmp)  # in no workspace: $KBB_ROOT
    monkeypatch.setenv("KBB_ROOT", str(toy.root))
    assert main(["fetch", "toy"]) == 0
    assert f"kbb: workspace {toy.root}\n" in capsys.readouterr().err
    monkeypatch.delenv("KBB_ROOT")
    assert main(["check", "toy"]) == 2
    assert "no pins.toml in" in errors(capsys.readouterr().err)[0]


# Drill: a waiter was silent; the benchmarks and the counters built and
# applied without the lock (now `kbb bench` and `kbb counters` hold it).


def hold_lock(toy, seconds):
    """Another process holding the workspace lock for `seconds`."""
    code = (
        "import sys, time\n"
        "from kbb import lock\n"
        "from kbb.workspace import Workspace\n"
        "with lock.locked(Workspace.find(sys.argv[1]), 'kbb apply toy'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[2]))\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(toy.root), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_waiter_says_who_holds_the_lock(toy, monkeypatch):
    from kbb import lock

    monkeypatch.setattr(lock, "NOTE_EVERY", 0.5)
    holder = hold_lock(toy, 2)
    _, err = toy.kbb("fetch", "toy")
    holder.wait()
    notes = [line for line in err.splitlines() if "waiting for" in line]
    assert len(notes) >= 2  # every NOTE_EVERY seconds
    assert f"held by pid {holder.pid} (kbb apply toy) since 20" in notes[0]


PRISTINE_ONLY = [builds.Build("pristine", "pristine")]


def test_the_benchmarks_build_under_the_lock(toy_series, capsys):
    toy = toy_series
    holder = hold_lock(toy, 1)
    capsys.readouterr()
    folders = builds.unpacked(Workspace.find(toy.root), "toy", PRISTINE_ONLY)
    assert "waiting for the workspace lock" in capsys.readouterr().err
    assert (folders["pristine"] / "toypkg" / "core.py").is_file()
    holder.wait()


def test_a_changed_unpacked_build_is_unpacked_again(toy_series, capsys):
    ws = Workspace.find(toy_series.root)
    folder = builds.unpacked(ws, "toy", PRISTINE_ONLY)["pristine"]
    core = folder / "toypkg" / "core.py"
    first = core.read_bytes()
    core.write_bytes(first[:10])
    capsys.readouterr()
    assert builds.unpacked(ws, "toy", PRISTINE_ONLY)["pristine"] == folder
    assert "differs from its wheel's RECORD" in capsys.readouterr().err
    assert core.read_bytes() == first


# Drill: a read-only workspace ended in a traceback, even for `kbb check`.

UNSHARE = (
    shutil.which("unshare")
    and not subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode
)
namespaces = pytest.mark.skipif(not UNSHARE, reason="needs root and `unshare -m`")


def in_namespace(script, **kwargs):
    """Runs the shell `script` in a mount namespace of its own (its mounts
    vanish with it)."""
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, **kwargs
    )


@namespaces
def test_a_read_only_workspace_says_so(toy_series):
    toy = toy_series
    root = toy.root
    kbb = f"{sys.executable} -m kbb --root {root}"
    done = in_namespace(
        f"mount --bind {root} {root} && mount -o remount,bind,ro {root} && "
        f"{kbb} check toy && {kbb} apply toy"
    )
    assert "patches/toy: 2 patches, headers ok" in done.stdout
    [line] = errors(done.stderr)
    assert "cannot take the lock" in line and "Read-only file system" in line
    assert "run it in a writable clone" in line


# Drill: a full disk left truncated files under their real names: export's
# patches (then "headers ok"), a wheel copied with --output; a cached wheel
# truncated later was reused without a word; ENOSPC in a temporary folder
# ended in a traceback.

BIG = "".join(
    f"    y{i} = x + {i}  # a line that makes the patch big\n" for i in range(300)
)


def grow_the_last_commit(toy):
    """Amends the last commit of series so that its patch grows by pages."""
    toy.kbb("apply", "toy")
    file = toy.checkout / "toypkg" / "core.py"
    file.write_text(
        file.read_text().replace("    return x + 90\n", BIG + "    return x + 90\n")
    )
    toy.git("commit", "-q", "-a", "--amend", "--no-edit")


def full_tmpfs(folder, free=0):
    """Shell: a tmpfs of 64 pages on `folder`, filled up but `free` pages."""
    return (
        f"mount -t tmpfs -o size=256k tmpfs {folder} && (dd if=/dev/zero "
        f"of={folder}/filler bs=4k count={64 - free} 2>/dev/null; true)"
    )


@namespaces
def test_an_export_on_a_full_disk_leaves_patches_as_they_were(toy_series):
    toy = toy_series
    grow_the_last_commit(toy)
    before = toy.tmp / "before"
    shutil.copytree(toy.patches, before)
    patches = toy.root / "patches"
    done = in_namespace(
        f"mount -t tmpfs -o size=256k tmpfs {patches} && cp -a {before} "
        f"{patches}/toy && (dd if=/dev/zero of={patches}/filler bs=4k "
        f"2>/dev/null; true) && {sys.executable} -m kbb --root {toy.root} export "
        f"toy; echo rc=$?; diff -r {before} {patches}/toy && echo same; "
        f"ls -a {patches}"
    )
    assert "rc=2\nsame\n.\n..\nfiller\ntoy\n" in done.stdout, done.stdout + done.stderr
    assert "No space left on device" in errors(done.stderr)[0]


def test_an_export_that_cannot_write_leaves_patches_as_they_were(
    toy_series, monkeypatch
):
    toy = toy_series
    grow_the_last_commit(toy)
    before = toy.snapshot()
    real = Path.write_bytes

    def half_then_full(path, data):
        real(path, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patched:
        patched.setattr(Path, "write_bytes", half_then_full)
        _, err = toy.kbb("export", "toy", expect=2)
    assert "No space left on device" in errors(err)[0]
    assert toy.snapshot() == before
    assert not list(toy.patches.parent.glob(".toy-*"))
    toy.kbb("export", "toy")
    assert toy.snapshot() != before


@namespaces
def test_a_wheel_output_on_a_full_disk_leaves_no_wheel(toy_series):
    toy = toy_series
    out = toy.tmp / "out"
    out.mkdir()
    done = in_namespace(
        f"{full_tmpfs(out)} && {sys.executable} -m kbb --root {toy.root} wheel "
        f"toy --output {out}; echo rc=$?; ls -a {out}"
    )
    assert "rc=2\n.\n..\nfiller\n" in done.stdout, done.stdout + done.stderr
    assert "No space left on device" in errors(done.stderr)[0]


def test_a_wheel_output_that_cannot_be_written_leaves_no_wheel(toy_series, monkeypatch):
    toy = toy_series
    toy.kbb("wheel", "toy")  # cached: only the copy to --output is left

    def half_then_full(source, dest, **kwargs):
        Path(dest).write_bytes(Path(source).read_bytes()[:100])
        raise OSError(errno.ENOSPC, "No space left on device", str(dest))

    out = toy.tmp / "out"
    with monkeypatch.context() as patched:
        patched.setattr(shutil, "copyfile", half_then_full)
        _, err = toy.kbb("wheel", "toy", "--output", str(out), expect=2)
    assert "No space left on device" in errors(err)[0]
    assert list(out.iterdir()) == []
    out_, _ = toy.kbb("wheel", "toy", "--output", str(out))
    assert zipfile.is_zipfile(out_.strip())


def test_a_truncated_cached_wheel_is_built_again(toy_series):
    toy = toy_series
    out, _ = toy.kbb("wheel", "toy")
    wheel = Path(out.strip())
    first = wheel.read_bytes()
    wheel.write_bytes(first[: len(first) // 2])
    out, err = toy.kbb("wheel", "toy")
    assert "does not match the sha256 recorded in SHA256SUM" in err
    assert "moved to .upstream/wheels/" in err and "building it again" in err
    assert Path(out.strip()).read_bytes() == first


@namespaces
def test_a_full_temporary_folder_is_one_line(toy_series):
    toy = toy_series
    tmp = toy.tmp / "tmp"
    tmp.mkdir()
    done = in_namespace(
        f"{full_tmpfs(tmp, free=2)} && TMPDIR={tmp} {sys.executable} -m kbb --root "
        f"{toy.root} wheel toy; echo rc=$?"
    )
    assert "rc=2" in done.stdout, done.stdout + done.stderr
    [line] = errors(done.stderr)
    assert "No space left on device" in line and "TMPDIR" in line


# Drill: `kbb check` said "headers ok" of a truncated patch; apply said
# "hunk 6 of 6 does not apply" where git says "corrupt patch".


def test_a_truncated_patch_is_named_as_such(toy_series):
    toy = toy_series
    path = toy.patches / "fix" / "0002-Change-f9.patch"
    path.write_text(path.read_text()[:-60])
    _, err = toy.kbb("check", "toy", expect=2)
    [line] = errors(err)
    assert "fix/0002-Change-f9.patch: error: corrupt patch at line" in line
    assert "cut short or damaged" in line
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "corrupt patch at line" in errors(err)[0]


# Drill: an empty series ended in an IndexError (HEAD left detached), and
# `check` said "0 patches, headers ok".


def test_an_empty_series_is_one_line(toy):
    toy.kbb("fetch", "toy")
    for command in ("check", "apply"):
        _, err = toy.kbb(command, "toy", expect=2)
        [line] = errors(err)
        assert "lists no patch: start a group with `kbb export toy --new-group" in line
    assert toy.git("symbolic-ref", "--short", "HEAD") == "pristine"


# Drill: a series line given twice was accepted ("applied 5 patches", 4
# commits; export dropped one); `--new-group bessel` did not say that the
# group exists.


def test_a_patch_listed_twice_is_one_line(toy_series):
    toy = toy_series
    series = toy.patches / "series"
    series.write_text(series.read_text() + "fix/0001-Change-f3.patch\n")
    for command in ("check", "apply"):
        _, err = toy.kbb(command, "toy", expect=2)
        [line] = errors(err)
        assert (
            "series:4: fix/0001-Change-f3.patch is listed twice (also on line 2)"
            in line
        )


def test_new_group_says_the_group_exists(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 5\n", "x + 50\n", "More" + PROVENANCE)
    _, err = toy.kbb("export", "toy", "--new-group", "fix", expect=2)
    [line] = errors(err)
    assert "--new-group fix: group fix exists in patches/toy/series" in line
    assert "into the last group, fix" in line


# Drill: a results file of valid JSON but the wrong structure ended in a
# KeyError or TypeError (and stopped `kbb pr` before its next target).


@pytest.mark.parametrize(
    "data,error",
    [
        ({"format": 2, "env": "patched", "builds": {}}, "KeyError"),
        ({"format": 2, "builds": {"toy": {"x": 1}}, "records": []}, "TypeError"),
        ({"format": 2, "builds": [], "records": []}, "AttributeError"),
        ({"format": 2, "builds": {}, "records": [1, 2]}, "TypeError"),
        ({"format": 2, "builds": {}, "records": 3}, "TypeError"),
    ],
)
def test_a_results_file_of_the_wrong_structure_is_stale(
    toy_series, tmp_path, monkeypatch, data, error
):
    from test_pr import configure

    toy = toy_series
    configure(toy, tmp_path, monkeypatch)
    path = toy.root / "out" / "results" / "patched.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    out, err = toy.kbb("pr", "toy", "--offline")
    assert "Traceback" not in err
    said = [line for line in out.splitlines() if "patched.json" in line]
    assert said and "is not a results file of format 2" in said[0]
    assert f"({error}: " in said[0] and "rerun `tox -e patched`" in said[0]


# Drill: an index that accepts connections and never answers left `kbb
# fetch` silent for minutes; a killed download left .upstream/downloads/tmp*
# behind, which `clean --leftovers` missed.


@pytest.fixture
def silent_index():
    """The URL of a package index that accepts connections, never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/simple/"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_silent_index_times_out_with_a_message(toy, silent_index, monkeypatch):
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("PIP_FIND_LINKS")
    monkeypatch.setenv("PIP_INDEX_URL", silent_index)
    monkeypatch.setenv("KBB_FETCH_TIMEOUT", "3")
    started = time.monotonic()
    _, err = toy.kbb("fetch", "toy", expect=2)
    assert time.monotonic() - started < 30
    assert "(for 3 s at most)" in err
    [line] = errors(err)
    assert "the package index did not answer within 3 s (pip download)" in line
    assert "KBB_FETCH_TIMEOUT" in line
    assert toy.leftovers() == []


def test_clean_removes_what_a_killed_download_or_export_left(toy):
    toy.kbb("fetch", "toy")
    downloads = toy.root / ".upstream" / "downloads"
    for name in ("tmpab12cd34", ".download-ef56"):
        (downloads / name).mkdir()
        (downloads / name / "toypkg-1.0.tar.gz").write_bytes(b"partial")
    _, err = toy.kbb("clean", "toy", "--leftovers")
    assert "removed .upstream/downloads/tmpab12cd34" in err
    assert "removed .upstream/downloads/.download-ef56" in err
    assert sorted(p.name for p in downloads.iterdir()) == [f"{toy.sha256}.tar.gz"]
    (toy.root / "patches" / ".toy-x1y2" / "toy").mkdir(parents=True)  # an export
    _, err = toy.kbb("clean", "toy", "--leftovers")
    assert "removed patches/.toy-x1y2" in err
    assert [p.name for p in (toy.root / "patches").iterdir()] == ["toy"]


# Drill: a concurrent git process (an editor's `git status`) made `kbb
# apply` fail on index.lock; git's hint was dropped; `clean --leftovers`
# would delete a live index.lock.


def hold_git_lock(toy, seconds):
    """Another process holding .git/index.lock open for `seconds`, then
    removing it, as a git process does."""
    code = (
        "import os, sys, time\n"
        "lock = open(sys.argv[1], 'x')\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "os.unlink(sys.argv[1])\n"
    )
    lock = toy.checkout / ".git" / "index.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lock), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_apply_waits_for_another_git_process(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    holder = hold_git_lock(toy, 1)
    toy.kbb("apply", "toy")
    holder.wait()
    assert toy.git("symbolic-ref", "--short", "HEAD") == "series"


def test_a_live_git_lock_is_never_removed(toy_series, monkeypatch):
    toy = toy_series
    monkeypatch.setattr(git, "LOCK_WAIT", 0.5)
    holder = hold_git_lock(toy, 4)
    lock = toy.checkout / ".git" / "index.lock"
    _, err = toy.kbb("apply", "toy", expect=2)
    [line] = errors(err)
    assert f"{lock} exists, held by pid {holder.pid}" in line
    assert "let it finish, then rerun" in line
    _, err = toy.kbb("clean", "toy", "--leftovers")
    assert f"kept .upstream/toy/.git/index.lock: pid {holder.pid}" in err
    assert lock.exists()
    _, err = toy.kbb("clean", "toy", expect=2)
    assert "is held by pid" in errors(err)[0] and toy.checkout.is_dir()
    holder.wait()
