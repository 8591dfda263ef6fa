"""Git plumbing: git runs without the user's configuration (so that `git
format-patch` writes the same bytes everywhere) and commits with a fixed
identity and dates (so that the same series on the same release always gives
the same commit ids), except where the user's own git is meant: network
access, and the identity of the commits of a pull request."""

import contextlib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from kbb import KbbError
from kbb import log
from kbb import redact

BOT = ("keras-bn-bessel", "keras-bn-bessel@users.noreply.github.com")
FIXED_DATE = "@0 +0000"
# A git operation in progress, by the file or folder that marks it.
IN_PROGRESS = {
    "rebase-merge": "a rebase (git rebase --continue or --abort)",
    "rebase-apply": "a rebase or `git am` (--continue or --abort)",
    "MERGE_HEAD": "a merge (git merge --continue or --abort)",
    "CHERRY_PICK_HEAD": "a cherry-pick (git cherry-pick --continue or --abort)",
    "REVERT_HEAD": "a revert (git revert --continue or --abort)",
    "BISECT_LOG": "a bisect (git bisect reset)",
}
# Git's lock of another process, and how long kbb waits for it (seconds).
_LOCKED = re.compile(r"Unable to create '([^']+\.lock)': File exists")
LOCK_WAIT = 10.0
# Lines of git's and pip's output that say why a command failed.
_CAUSE = re.compile(
    r"error|fatal|refused|denied|rejected|timed out|not found|unable|cannot|"
    r"could not|no matching|errno|unreachable|resolve|certificate|http|"
    r"does not|conflict|patch failed",
    re.IGNORECASE,
)


def cause(text, most=4):
    """The lines of a failed command's output that say why, whole and
    without repeats (the last `most` of them), else its last line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    relevant = [line for line in lines if _CAUSE.search(line)]
    chosen = list(dict.fromkeys(relevant))[-most:] or lines[-1:]
    return redact(" | ".join(chosen) or "(no output)")


def identity_env(author=BOT, date=FIXED_DATE, committer=BOT):
    """The environment of a commit by `author` (name, email) at `date`."""
    return {
        "GIT_AUTHOR_NAME": author[0],
        "GIT_AUTHOR_EMAIL": author[1],
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": committer[0],
        "GIT_COMMITTER_EMAIL": committer[1],
        "GIT_COMMITTER_DATE": date,
    }


def git(*args, cwd=None, check=True, input=None, env=None, user_config=False):
    """Runs git; returns its stdout, or with check=False the completed
    process. Raises KbbError, with the cause, on failure if `check`."""
    environment = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    if not user_config:
        environment.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
        environment.update(i for i in identity_env().items() if "DATE" not in i[0])
    environment.update(env or {})
    log(f"git {' '.join(args)}" + (f" (in {cwd})" if cwd else ""), level=2)
    waited = 0.0
    while True:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input,
            capture_output=True,
            env=environment,
            text=isinstance(input, str) or input is None,
        )
        stderr = result.stderr
        stderr = stderr if isinstance(stderr, str) else stderr.decode(errors="replace")
        locked = result.returncode and _LOCKED.search(stderr)
        lock = Path(locked.group(1)) if locked else None
        holder = lock and lock.exists() and lock_holder(lock)
        # The lock of another live git process (an editor's `git status`):
        # wait for it, as git fails before changing anything (not `git am`,
        # which stops half-way).
        if not locked or args[0] == "am" or waited >= LOCK_WAIT:
            break
        if lock.exists() and not holder:
            break  # left by a git process that ended
        time.sleep(0.1)
        waited += 0.1
    if check and locked:
        said = f", held by {holder}: let it finish, then rerun"
        if not holder:
            said = ", left by a git process that ended: `kbb clean TARGET --leftovers`"
            said += " removes it"
        raise KbbError(f"git {args[0]} failed: {lock} exists{said}")
    if check and result.returncode:
        raise KbbError(f"git {args[0]} failed: {cause(stderr)}")
    return result if not check else result.stdout


def lock_holder(lock):
    """'pid N (command)' of another live process that has the git lock file
    `lock` open, or that is a git process in its repository; else None."""
    lock = Path(lock)
    repo = str(lock.parent.parent if lock.parent.name == ".git" else lock.parent)
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            here = os.readlink(proc / "cwd")
            opened = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in command if word]
        is_git = bool(words) and Path(words[0]).name == "git"
        if str(lock) in opened or (is_git and (here + "/").startswith(repo + "/")):
            return f"pid {proc.name} ({' '.join(' '.join(words).split())[:80]})"
    return None


def config(repo, key):
    """The value of `kbb.KEY`-style config `key` in `repo`, or ""."""
    return git("config", key, cwd=repo, check=False).stdout.strip()


def config_keys(repo):
    """{key: value} of the config keys kbb.* of `repo`."""
    args = ("config", "--local", "-z", "--get-regexp", r"^kbb\.")
    out = git(*args, cwd=repo, check=False).stdout
    return dict((e.split("\n", 1) + [""])[:2] for e in out.split("\0") if e)


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


def commits(repo, *spec):
    """The commit ids of `git rev-list --reverse SPEC...`, oldest first."""
    return git("rev-list", "--reverse", *spec, cwd=repo).split()


def update_refs(repo, updates):
    """Moves (commit) or deletes (None) refs in one transaction: all or none,
    so that no interrupt leaves some moved and others not."""
    lines = ["start"]
    for ref, commit in updates.items():
        lines.append(f"update {ref} {commit}" if commit else f"delete {ref}")
    lines += ["prepare", "commit"]
    git("update-ref", "--stdin", cwd=repo, input="\n".join(lines) + "\n")


def in_progress(repo):
    """What git operation is in progress in `repo`'s worktree, or None."""
    git_dir = Path(repo) / git("rev-parse", "--git-dir", cwd=repo).strip()
    found = (
        what for marker, what in IN_PROGRESS.items() if (git_dir / marker).exists()
    )
    return next(found, None)


def meta(repo, commit):
    """(author name, author email, raw date, message) of a commit."""
    out = git(
        "log", "-1", "--format=%an%x00%ae%x00%ad%x00%B", "--date=raw", commit, cwd=repo
    )
    return tuple(out.split("\0", 3))


def commit_tree(repo, tree, parents, message, env):
    """A new commit of `tree` on `parents`; returns its id."""
    args = [arg for parent in parents for arg in ("-p", parent)]
    return git("commit-tree", tree, *args, cwd=repo, input=message, env=env).strip()


def commit_patch(repo, base, patch, ref, message, env):
    """Commits `patch` on `base` as `ref` (by the identity and date of
    `env`), in a temporary index: the checkout's files and branches stay as
    they are. Returns the commit."""
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        git("read-tree", base, cwd=repo, env=index)
        git("apply", "--cached", str(patch), cwd=repo, env=index)
        tree = git("write-tree", cwd=repo, env=index).strip()
    sha = commit_tree(repo, tree, [base], message, env)
    git("update-ref", ref, sha, cwd=repo)
    return sha


def read_blobs(repo, ids):
    """{id: bytes} of the blobs `ids`, read by one `git cat-file --batch`."""
    unique = list(dict.fromkeys(ids))
    asked = "".join(i + "\n" for i in unique).encode()
    output = git("cat-file", "--batch", cwd=repo, input=asked)
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
        paths = "".join(f"{Path(tmp) / str(n)}\n" for n in range(len(datas)))
        for number, data in enumerate(datas):
            (Path(tmp) / str(number)).write_bytes(data)
        options = ("-w", "--no-filters", "--stdin-paths")
        return git("hash-object", *options, cwd=repo, input=paths).split()


def write_tree(repo, entries):
    """A tree of `entries` [(mode, blob, path)], from an index of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        lines = "".join(f"{mode} {blob}\t{path}\0" for mode, blob, path in entries)
        git("update-index", "-z", "--index-info", cwd=repo, env=index, input=lines)
        return git("write-tree", cwd=repo, env=index).strip()


def tree_entries(repo, commit):
    """[(mode, blob, path)] of every file of `commit`."""
    entries = []
    for entry in filter(None, git("ls-tree", "-r", "-z", commit, cwd=repo).split("\0")):
        info, path = entry.split("\t", 1)
        mode, _, blob = info.split()
        entries.append((mode, blob, path))
    return entries


def temporary_prefix(repo):
    """The prefix of the temporary folders beside the checkout `repo`, which
    `kbb clean` removes when an interrupted run left them."""
    return f".{Path(repo).name}-"


@contextlib.contextmanager
def temporary_dir(repo):
    """A temporary folder beside the checkout `repo` (same file system)."""
    with tempfile.TemporaryDirectory(
        prefix=temporary_prefix(repo), dir=Path(repo).parent
    ) as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def scratch(repo, commit):
    """A temporary worktree of `repo`, detached at `commit`."""
    with temporary_dir(repo) as tmp:
        tree = tmp / "tree"
        git("worktree", "add", "-q", "--detach", str(tree), commit, cwd=repo)
        try:
            yield tree
        finally:
            git("worktree", "remove", "--force", str(tree), cwd=repo, check=False)
            git("worktree", "prune", cwd=repo, check=False)
