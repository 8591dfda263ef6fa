"""A mirror of the checkout in the series' layout (see kbb.layout): the
series is applied to, and exported from, mirror commits in the same
repository: the pristine tree translated file by file, then one commit per
patch, replayed back and forth. Mirror commits have a fixed identity and
date, so their ids are stable."""

from kbb import KbbError
from kbb import layout
from kbb.git import BOT
from kbb.git import commit_tree
from kbb.git import commits
from kbb.git import git
from kbb.git import identity_env
from kbb.git import meta
from kbb.git import read_blobs
from kbb.git import rev
from kbb.git import scratch
from kbb.git import tree_entries
from kbb.git import write_blobs
from kbb.git import write_tree
from kbb.upstream import am


def translate_tree(repo, commit, translate):
    """A commit of `commit`'s tree with every file translated."""
    entries = tree_entries(repo, commit)
    blobs = read_blobs(repo, [blob for _, blob, _ in entries])
    mapped = []
    for mode, blob, path in entries:
        found = translate(path, blobs[blob])
        if found is not None:
            mapped.append((mode, blob, *found))
    changed = [data for _, blob, _, data in mapped if data != blobs[blob]]
    new = iter(write_blobs(repo, changed))
    tree = write_tree(
        repo,
        [
            (mode, blob if data == blobs[blob] else next(new), path)
            for mode, blob, path, data in mapped
        ],
    )
    message = f"Mirror of {commit[:12]} in the series layout\n"
    return commit_tree(repo, tree, [], message, identity_env())


def in_layout(repo, commit, spelled, series_layout):
    """`commit`, or its mirror when `spelled` (the checkout's layout) is not
    the series' layout."""
    translator = layout.translator(spelled, series_layout)
    if translator is None:
        return commit
    return translate_tree(repo, commit, translator.to_series)


def replay(repo, commit, onto, translate):
    """Replays `commit` on `onto`, translating every file it changes."""
    parent = rev(repo, f"{commit}^")
    options = ("-r", "-z", "--no-renames", "--name-status")
    changes = git("diff-tree", *options, parent, commit, cwd=repo)
    fields = [f for f in changes.split("\0") if f]
    entries = {path: (mode, blob) for mode, blob, path in tree_entries(repo, onto)}
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
            entries.pop(mapped[0], None)
            continue
        mode = git("ls-tree", commit, "--", path, cwd=repo).split()[0]
        entries[mapped[0]] = (mode, write_blobs(repo, [mapped[1]])[0])
    tree = write_tree(repo, [(m, b, p) for p, (m, b) in sorted(entries.items())])
    name, email, date, message = meta(repo, commit)
    env = identity_env(author=(name, email), date=date, committer=BOT)
    return commit_tree(repo, tree, [onto], message.rstrip("\n") + "\n", env)


def am_translated(checkout, series, where, base, translator):
    """The series applied to a mirror of `base`, replayed onto `base`:
    returns (attempt of the mirror, {group: tip in the checkout})."""
    mirror = translate_tree(checkout, base, translator.to_series)
    omit = am.missing_tests(checkout, mirror, series.files())
    with scratch(checkout, mirror) as worktree:
        attempt = am.try_series(worktree, series, where, omit)
    if attempt.failed is not None:
        return attempt, {}
    mapped, tip = {mirror: base}, base
    last = attempt.tips.get(series.groups[-1], mirror)
    for commit in commits(checkout, f"{mirror}..{last}"):
        tip = mapped[commit] = replay(checkout, commit, tip, translator.to_checkout)
    tips = {group: mapped[attempt.tips.get(group, mirror)] for group in series.groups}
    return attempt, tips


def mirror_ranges(checkout, ranges, translator):
    """The group ranges [(group, start, end)] of the checkout, replayed as
    mirror commits."""
    tip = translate_tree(checkout, ranges[0][1], translator.to_series)
    mirrored = []
    for group, start, end in ranges:
        first = tip
        for commit in commits(checkout, f"{start}..{end}"):
            tip = replay(checkout, commit, tip, translator.to_series)
        mirrored.append((group, first, tip))
    return mirrored
