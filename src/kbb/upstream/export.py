"""`kbb export`: the branches of the checkout written back to patches/SERIES/
as `git format-patch` files, each group but the last ending at its branch
group/NAME, the last at branch series."""

import re
import shutil
import tempfile
from pathlib import Path

from kbb import KbbError
from kbb import files
from kbb import layout
from kbb import log
from kbb.git import config
from kbb.git import git
from kbb.git import is_ancestor
from kbb.git import rev
from kbb.git import update_refs
from kbb.series import SOURCES
from kbb.series import Patch
from kbb.series import Series
from kbb.series import provenance_missing
from kbb.upstream import mirror
from kbb.upstream.checkout import require_idle
from kbb.upstream.checkout import source_of
from kbb.upstream.checkout import verify
from kbb.upstream.keep import require_exported

FORMAT_PATCH = (
    "format-patch --no-numbered --zero-commit --no-signature --full-index --no-renames"
).split()


def export(ws, pin, new_group=None, force=False):
    """Writes the branches back to patches/SERIES/. `new_group` starts a
    group after the last one: it gets the commits from group/LAST to
    series. Refuses while a branch, a detached HEAD or a stash holds
    commits that branch series does not (`force`: keeps them, goes on).
    Returns the new patches."""
    checkout = ws.checkout(pin.target)
    verify(checkout, pin)
    require_idle(checkout, pin)
    upto, omitted = config(checkout, "kbb.upto"), config(checkout, "kbb.omitted")
    if upto:
        raise KbbError(
            f"{checkout} has the groups up to {upto} only: "
            f"`kbb apply {pin.target}` the whole series before exporting"
        )
    if omitted not in ("", "0"):
        raise KbbError(
            f"{checkout} lacks upstream's tests, so its commits lack {omitted} "
            f"hunk(s) of the series: export from the checkout that has them "
            f"(`kbb export {pin.series}`)"
        )
    series = ws.series(pin)
    groups = _groups(pin, series, new_group)
    source = source_of(checkout)
    translator = layout.translator(pin.layout(source), pin.series_layout)
    branches = ranges = group_ranges(checkout, groups)
    require_exported(ws, pin, "export anyway", force, held=["refs/heads/series"])
    if translator is not None:
        ranges = mirror.mirror_ranges(checkout, branches, translator)
    where = (source, pin.target)
    with tempfile.TemporaryDirectory() as tmp:
        new = []
        for group, start, end in ranges:
            new += _format(checkout, series, where, group, start, end, Path(tmp))
        _write_series(series, new)
    tip = rev(checkout, "refs/heads/series")
    updates = {f"refs/heads/group/{group}": end for group, _, end in branches}
    update_refs(checkout, {**updates, "refs/kbb/applied": tip})
    git("config", "kbb.series", Series.load(series.directory).digest(), cwd=checkout)
    log(f"exported {len(new)} patches to patches/{pin.series}/ from {tip[:12]}")
    return new


def _groups(pin, series, new_group):
    groups = series.groups
    if new_group:
        if new_group in groups:
            raise KbbError(
                f"--new-group {new_group}: group {new_group} exists in "
                f"patches/{pin.series}/series; pick a new name (without it, "
                f"`kbb export {pin.target}` puts the new commits of branch "
                f"series into the last group, {groups[-1]})"
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", new_group):
            raise KbbError(f"--new-group {new_group!r}: a new name of a-z, 0-9 and -")
        return groups + [new_group]
    series.require_patches(pin.target)
    return groups


def _format(checkout, series, where, group, start, end, tmp):
    """The patches of one group: format-patch of its commits, and the
    stored patches of another source (only=), which this one skipped."""
    out = tmp / group
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
    kept = [p for p in series.group_patches(group) if not p.applies_to(where)]
    other = [p.name for p in kept if p.only not in SOURCES]
    if other:
        raise KbbError(
            f"{', '.join(other)} only apply to another target than "
            f"{where[1]}: export from that target's checkout; nothing was written"
        )
    for patch in kept:
        shutil.copy(patch.path, out / patch.path.name)
    if not names and not kept:
        raise KbbError(f"group {group!r} has no commits; nothing was written")
    # An exported patch keeps the only= of the patch of the same name.
    only = {p.name: p.only for p in series.group_patches(group)}
    made = [Patch(tmp, f"{group}/{n}", only.get(f"{group}/{n}")) for n in names]
    return made + [Patch(tmp, patch.name, patch.only) for patch in kept]


def group_ranges(checkout, groups):
    """[(group, start, end)]: the commits of each group, checked stacked."""
    ranges, start = [], rev(checkout, "refs/heads/pristine")
    for i, group in enumerate(groups):
        branch = "series" if i == len(groups) - 1 else f"group/{group}"
        end = rev(checkout, f"refs/heads/{branch}")
        if end is None:
            raise KbbError(f"{checkout} has no branch {branch}: run `kbb apply` first")
        if not is_ancestor(checkout, start, end):
            raise KbbError(
                f"branch {branch} is not based on the group before it: rebase "
                f"it (`git rebase --onto {start[:12]} ...`) before exporting"
            )
        if git("rev-list", "--merges", f"{start}..{end}", cwd=checkout).strip():
            raise KbbError(
                f"branch {branch} has merge commits: a series must be linear"
            )
        ranges.append((group, start, end))
        start = end
    return ranges


def _write_series(series, new):
    """Writes patches/SERIES/ whole or not at all: the new folder is made
    beside the old one (its other files copied), then swapped in by one
    rename; an unchanged folder is left as it is."""
    directory = series.directory
    prefix = f".{directory.name}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=directory.parent) as tmp:
        made = Path(tmp) / directory.name
        for path in sorted(directory.rglob("*")):  # but the groups' patches
            if path.is_file() and (path.suffix != ".patch" or path.parent == directory):
                copy = made / path.relative_to(directory)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
        made.mkdir(exist_ok=True)
        for patch in new:
            (made / patch.name).parent.mkdir(exist_ok=True)
            (made / patch.name).write_bytes(patch.path.read_bytes())
        for folder in made.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        Series(made, series.header, []).write(new)
        if _contents(made) != _contents(directory):
            files.swap(made, directory)


def _contents(directory):
    return {
        path.relative_to(directory): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
