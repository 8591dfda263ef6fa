"""The one `git am` loop: a series applied with `git am --3way` onto a
worktree's HEAD, patch by patch, naming every conflicting hunk of the first
patch that does not apply. `kbb apply` and `kbb pr` use it alike."""

import dataclasses
import re
import tempfile
from pathlib import Path

from kbb import series as text
from kbb.git import cause
from kbb.git import git
from kbb.git import rev


@dataclasses.dataclass
class Attempt:
    """What became of a series applied onto `base` (see `try_series`)."""

    base: str
    tips: dict = dataclasses.field(default_factory=dict)  # group -> commit
    skipped: list = dataclasses.field(default_factory=list)  # only= patches
    omitted: dict = dataclasses.field(default_factory=dict)  # name -> [(f, n)]
    unchecked: list = dataclasses.field(default_factory=list)  # all omitted
    failed: object = None  # the Patch that does not apply
    reason: str = ""

    def dropped(self, patches=None):
        """[(file, hunks)] left out of `patches` (default: all)."""
        names = None if patches is None else {p.name for p in patches}
        return [
            d
            for name, found in self.omitted.items()
            if names is None or name in names
            for d in found
        ]


def missing_tests(repo, commit, files):
    """Of `files`, the test files that the tree of `commit` lacks, when it
    has no test file at all (a nightly sdist): their diffs are left out."""
    tree = set(git("ls-tree", "-r", "--name-only", commit, cwd=repo).split())
    if any(text.TEST_FILE.search(f) for f in tree):
        return frozenset()
    return frozenset(f for f in set(files) - tree if text.TEST_FILE.search(f))


def try_series(tree, series, where, omit=frozenset()):
    """Applies the series with `git am --3way` on HEAD of the worktree
    `tree`, leaving out the diffs of the files in `omit` and the patches
    only for another source or target (only=; `where` names this one's);
    stops at the first patch that does not apply, naming its conflicting
    files and hunks."""
    attempt = Attempt(base=rev(tree, "HEAD"))
    for patch in series.patches:
        if not patch.applies_to(where):
            attempt.skipped.append(patch.name)
        else:
            kept, dropped = text.drop_files(patch.path.read_text(), omit)
            if dropped:
                attempt.omitted[patch.name] = dropped
            if not text.patch_files(kept):
                attempt.unchecked.append(patch.name)
            elif not _am_text(tree, patch, kept, attempt):
                return attempt
        attempt.tips[patch.group] = rev(tree, "HEAD")
    return attempt


def _am_text(tree, patch, kept, attempt):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(patch.name).name
        path.write_text(kept)
        output = git_am(tree, path)
    if output is None:
        return True
    attempt.tips.pop(patch.group, None)
    attempt.failed = patch
    attempt.reason = _conflicts(tree, kept, output)
    return False


def git_am(repo, path):
    """`git am --3way` of one patch file; on failure, aborts it and returns
    git's output (None on success)."""
    options = ("-q", "--3way", "--committer-date-is-author-date")
    result = git("am", *options, str(path), cwd=repo, check=False)
    if result.returncode == 0:
        return None
    git("am", "--abort", cwd=repo, check=False)
    return result.stdout + result.stderr


def _conflicts(tree, patch, output):
    """Names every hunk of a patch that does not apply to HEAD of `tree`,
    even with a 3-way merge, each tried alone; or why git cannot parse it."""
    problem = text.unparsable(patch)
    if problem:
        return problem
    failing = {}
    for (file, number, count, header), single in zip(
        text.hunks(patch), text.hunk_patches(patch), strict=True
    ):
        result = git("apply", "--3way", "-", cwd=tree, input=single, check=False)
        git("reset", "-q", "--hard", cwd=tree)
        if "does not exist in index" in result.stderr:
            failing[file] = ["does not exist there"]
        elif result.returncode:
            failing.setdefault(file, []).append(f"hunk {number} of {count} ({header})")
    if not failing:  # only the hunks together conflict
        return _where(patch, output)
    return "; ".join(f"{file}, {', '.join(parts)}" for file, parts in failing.items())


def _where(patch, output):
    """Names the file and hunk of a patch that `git am` reported failing."""
    match = re.search(r"patch failed: (\S+):(\d+)", output)
    if match:
        path, line = match.group(1), match.group(2)
        for file, number, count, header in text.hunks(patch):
            if file == path and re.match(rf"@@ -{line}(,| )", header):
                return f"{file}, hunk {number} of {count} ({header})"
        return f"{path}, the hunk at line {line}"
    match = re.search(r"Merge conflict in (\S+)", output)
    if match:
        return f"{match.group(1)}: merge conflict"
    return cause(output)
