"""`kbb apply`: the series as branches group/* and series of the checkout,
and the one decision of when to apply again (`ensure_applied`)."""

import contextlib
import io
import os
import shutil
import tempfile

from kbb import KbbError
from kbb import layout
from kbb import log
from kbb.git import config
from kbb.git import git
from kbb.git import rev
from kbb.git import update_refs
from kbb.upstream import am
from kbb.upstream import fetch
from kbb.upstream import mirror
from kbb.upstream.checkout import ensure as ensure_checkout
from kbb.upstream.checkout import require_idle
from kbb.upstream.checkout import source_of
from kbb.upstream.checkout import verify
from kbb.upstream.keep import require_exported
from kbb.workspace import Workspace


def applied(ws, pin):
    """The group that branch series was applied up to ("": every group), or
    None when it is not the series as patches/SERIES/ holds it now."""
    checkout = ws.checkout(pin.target)
    if rev(checkout, "refs/heads/series") is None:
        return None
    if config(checkout, "kbb.series") != ws.series(pin).digest():
        return None
    return config(checkout, "kbb.upto")


def ensure_applied(ws, pin, ref="series"):
    """Applies the series unless branch series is current. A series branch
    with commits not yet exported is used as it is, so that a contributor
    can test an edit before exporting it, unless the series changed too:
    then `apply` refuses to discard those commits. When `ref` is a group
    and the series applies only up to a later group (a newer upstream),
    the groups up to `ref`'s are applied."""
    verify(ws.checkout(pin.target), pin)
    upto = applied(ws, pin)
    if upto == "":
        return
    if upto is not None:
        groups = ws.series(pin).upto(upto).groups
        if ref in ("pristine", *(f"group/{g}" for g in groups)):
            return
    try:
        apply(ws, pin)
    except KbbError as e:
        series = ws.series(pin)
        group = ref.removeprefix("group/")
        if not ref.startswith("group/") or group not in series.groups[:-1]:
            raise
        log(f"{e}; applying the groups up to {group} only, as {ref} needs")
        apply(ws, pin, upto=group)


def apply(ws, pin, force=False, upto=None):
    """Applies the series (with `upto`, its groups up to that one) as
    branches group/* and series; returns the tip of series. On failure,
    HEAD and every branch are as they were."""
    checkout = ws.checkout(pin.target)
    verify(checkout, pin)
    require_idle(checkout, pin)
    require_exported(ws, pin, "apply anyway", force)
    full = ws.series(pin)
    full.require_patches(pin.target)
    series = full.upto(upto) if upto else full
    source = source_of(checkout)
    base = rev(checkout, "refs/heads/pristine")
    where = _head(checkout)
    git("checkout", "-q", "-f", "--detach", base, cwd=checkout)
    try:
        attempt, tips = _am(checkout, pin, series, source, base)
        _report(pin, series, source, attempt)
        if attempt.failed is None:
            _set_refs(checkout, full, series, tips)
    except BaseException:
        _back_to(checkout, where)
        raise
    if attempt.failed is not None:
        raise KbbError(
            f"{attempt.failed.name} does not apply to {pin.spec}: "
            f"{attempt.reason}; {_back_to(checkout, where)}"
        )
    for key, value in (
        ("series", full.digest()),
        ("upto", upto or ""),
        ("omitted", str(sum(n for _, n in attempt.dropped()))),
    ):
        git("config", f"kbb.{key}", value, cwd=checkout)
    tip = tips[series.groups[-1]]
    count = len(series.patches) - len(attempt.skipped)
    done = f"on {pin.spec}: branch series ({tip[:12]})"
    log(f"applied {count} patches of patches/{pin.series}/ {done}")
    return tip


def _head(checkout):
    """Where HEAD is, as `_back_to` takes it: the user's branch, else the
    commit. Never branch pristine: a commit there would move it off its
    tag; HEAD goes to its commit, detached, instead."""
    branch = git("symbolic-ref", "-q", "--short", "HEAD", cwd=checkout, check=False)
    name = branch.stdout.strip()
    if name and name != "pristine" and rev(checkout, f"refs/heads/{name}"):
        return name
    return rev(checkout, "HEAD") or rev(checkout, "refs/heads/pristine")


def _back_to(checkout, where):
    """After a failure: no `git am` left, HEAD back where it was (`_head`),
    the branches as they were. Says where HEAD is."""
    git("am", "--abort", cwd=checkout, check=False)
    if rev(checkout, f"refs/heads/{where}"):
        git("checkout", "-q", "-f", where, cwd=checkout, check=False)
        return f"the checkout is back on branch {where}, as it was"
    git("checkout", "-q", "-f", "--detach", where, cwd=checkout, check=False)
    return (
        f"HEAD is back at {where[:12]}, detached: `git switch -c NAME` to "
        "work on a branch (kbb refuses to drop commits on any branch)"
    )


def _am(checkout, pin, series, source, base):
    """The one git am loop, on the checkout or on its mirror."""
    translator = layout.translator(pin.layout(source), pin.series_layout)
    where = (source, pin.target)
    if translator is not None:
        return mirror.am_translated(checkout, series, where, base, translator)
    omit = am.missing_tests(checkout, base, series.files())
    attempt = am.try_series(checkout, series, where, omit)
    return attempt, {group: attempt.tips.get(group, base) for group in series.groups}


def _report(pin, series, source, attempt):
    for name in attempt.skipped:
        only = next(p.only for p in series.patches if p.name == name)
        log(f"skipping {name} (only={only}; this is {pin.target}, {source})")
    dropped = attempt.dropped()
    if dropped:
        log(
            f"left out {sum(n for _, n in dropped)} hunk(s) of upstream test "
            f"files that {pin.spec} does not ship: "
            + ", ".join(sorted({f for f, _ in dropped}))
        )


def _set_refs(checkout, full, series, tips):
    """Moves group/*, series and refs/kbb/applied in one transaction, with
    HEAD detached meanwhile, then checks out series."""
    tip = tips[series.groups[-1]]
    git("checkout", "-q", "--detach", tip, cwd=checkout)
    updates = {f"refs/heads/group/{group}": tips[group] for group in series.groups}
    for group in full.groups[len(series.groups) :]:
        if rev(checkout, f"refs/heads/group/{group}"):
            updates[f"refs/heads/group/{group}"] = None
    updates["refs/heads/series"] = tip
    updates["refs/kbb/applied"] = tip
    update_refs(checkout, updates)
    git("checkout", "-q", "series", cwd=checkout)


def applies_in_copy(ws, pin):
    """Applies the series to the pinned sdist in a temporary copy of the
    workspace (pins.toml, patches/SERIES/, the cached download), so that
    .upstream/TARGET stays as it is. Returns False, having said why, when
    the sdist is neither cached nor downloadable."""
    try:
        archive = fetch.download_sdist(ws, pin)
    except fetch.Unreachable as e:
        log(f"not checked whether patches/{pin.series}/ applies: {e}")
        return False
    with tempfile.TemporaryDirectory(prefix="kbb-check-") as tmp:
        copy = Workspace.at(tmp)
        shutil.copy(ws.pins_file, copy.pins_file)
        shutil.copytree(ws.patches(pin.series), copy.patches(pin.series))
        copy.downloads.mkdir(parents=True)
        os.symlink(archive, copy.downloads / archive.name)
        with contextlib.redirect_stderr(io.StringIO()):  # about the copy
            ensure_checkout(copy, pin, "sdist")
            apply(copy, pin)
    return True
