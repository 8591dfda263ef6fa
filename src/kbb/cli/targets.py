"""The commands on one or more targets' upstream checkouts, `kbb COMMAND
TARGET ...`: fetch, apply, export, wheel, install, tree, clean, check, pr;
and `report`, which writes docs/analysis.md."""

import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path

from kbb import KbbError
from kbb import build
from kbb import files
from kbb import lock
from kbb import log
from kbb import redact
from kbb.pr import prepare
from kbb.pr import push
from kbb.report import analysis
from kbb.series import provenance_missing
from kbb.series import unparsable
from kbb.upstream import apply
from kbb.upstream import checkout
from kbb.upstream import export


def _fetch(ws, pin, args):
    source = args.source or os.environ.get("KBB_SOURCE") or None
    return checkout.ensure(ws, pin, source, args.git_url)


def _built(ws, pin, args):
    """Fetches, and applies the series if needed for `args.ref`."""
    _fetch(ws, pin, args)
    apply.ensure_applied(ws, pin, args.ref)


def cmd_fetch(ws, pin, args):
    print(_fetch(ws, pin, args))


def cmd_apply(ws, pin, args):
    _fetch(ws, pin, args)
    apply.apply(ws, pin, force=args.force)


def cmd_export(ws, pin, args):
    for patch in export.export(ws, pin, args.new_group, args.force):
        print(f"patches/{pin.series}/{patch.name}")


def cmd_wheel(ws, pin, args):
    _built(ws, pin, args)
    path = build.wheel(ws, pin, args.ref)
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        path = files.copy(path, args.output / path.name)
    print(path)


def cmd_install(ws, pin, args):
    _built(ws, pin, args)
    print(build.install(ws, pin, args.ref, no_deps=not args.deps))


def cmd_tree(ws, pin, args):
    """Writes the files of a branch to a folder (for upstream's tests)."""
    _built(ws, pin, args)
    print(build.tree(ws, pin, args.ref, args.dest))


def cmd_clean(ws, pin, args):
    checkout.clean(ws, pin, force=args.force, checkout_too=not args.leftovers)


def cmd_check(ws, pin, args):
    """Checks the series file, that each patch parses and has its provenance
    headers, and with --applies that the series applies (in a temporary
    copy of the root)."""
    series = ws.series(pin)
    series.require_patches(pin.target)
    bad = [
        f"{p.name}: lacks {', '.join(k + ':' for k in missing)}"
        for p in series.patches
        if (missing := provenance_missing(p.path.read_text()))
    ] + [
        f"{p.name}: {problem}"
        for p in series.patches
        if (problem := unparsable(p.path.read_text()))
    ]
    if bad and not args.json:
        raise KbbError("; ".join(bad))
    applies = None
    if args.applies and not bad:
        applies = apply.applies_in_copy(ws, pin)
    if args.json:
        found = {"series": pin.series, "patches": len(series.patches)}
        print(json.dumps({**found, "problems": bad, "applies": applies}))
        return 2 if bad else 0
    print(f"patches/{pin.series}: {len(series.patches)} patches, headers ok")
    if applies:
        print(f"patches/{pin.series}: applies to {pin.spec}")
    return 0


def cmd_pr(ws, pin, args):
    """Prepares the upstream pull requests, or pushes one (see kbb.pr)."""
    _fetch(ws, pin, args)
    if args.push:
        push.push(ws, pin, args.push, args.group)
    else:
        prepare.prepare(ws, pin, args.group, args.newest_git, args.offline)
        if args.json:
            print(json.dumps(prepare.summary(ws, pin)))


def cmd_report(ws, args, argv):
    """Writes docs/analysis.md from the tests' recorded figures."""
    with lock.locked(ws, " ".join(["kbb", *argv])):
        path, notes = analysis.write(ws, args.results, args.output)
    for note in notes:
        log(note)
    print(path)
    return 0


def _source_options(sub):
    sub.add_argument(
        "--source",
        choices=("sdist", "git"),
        help="where a new checkout comes from (default: $KBB_SOURCE, else sdist)",
    )
    sub.add_argument("--git-url", help="override the pinned git-url")


def _target_command(command, name, func, help, examples, nargs="+"):
    sub = command(name, help, examples)
    sub.add_argument("targets", nargs=nargs, metavar="TARGET", help="keras, tf-keras")
    sub.set_defaults(func=func, run=run)
    return sub


def _build_commands(command):
    for name, func, help, example in (
        (
            "wheel",
            cmd_wheel,
            "build the wheel of a branch (cached, reproducible)",
            "kbb wheel keras --ref group/bessel --output dist",
        ),
        (
            "install",
            cmd_install,
            "install the wheel of a branch into this Python",
            "kbb install keras --ref pristine",
        ),
        (
            "tree",
            cmd_tree,
            "write the files of a branch to a folder",
            "kbb tree keras --ref group/bessel --dest /tmp/keras",
        ),
    ):
        sub = _target_command(command, name, func, help, [example])
        _source_options(sub)
        sub.add_argument("--ref", default="series", help="branch (default: series)")
        if name == "wheel":
            sub.add_argument("-o", "--output", type=Path, help="copy the wheel here")
        elif name == "install":
            sub.add_argument(
                "--deps", action="store_true", help="also its dependencies"
            )
        else:
            sub.add_argument(
                "--dest", type=Path, required=True, help="folder (replaced)"
            )


def _pr_command(command):
    sub = _target_command(
        command,
        "pr",
        cmd_pr,
        "prepare the upstream pull requests: out/pr/TARGET/GROUP/",
        [
            "kbb pr keras tf-keras --offline",
            "kbb pr keras --newest-git https://github.com/keras-team/keras",
            "kbb pr keras --push fork --group bessel",
        ],
    )
    _source_options(sub)
    sub.add_argument(
        "--newest-git",
        nargs="?",
        const=True,
        metavar="URL",
        help="check against the default branch of this git remote (default: the "
        "pinned git-url) rather than the pinned newest sdist; a branch that "
        "applies there is based there, ready to push",
    )
    sub.add_argument(
        "--offline",
        action="store_true",
        help="download nothing: check against the cached pinned newest sdist, if any",
    )
    sub.add_argument(
        "--group", action="append", help="only this patch group (repeatable)"
    )
    sub.add_argument(
        "--push",
        metavar="REMOTE",
        help="push branch pr/GROUP to REMOTE and open its pull request, once "
        "you have reviewed PR.md, ticked its boxes and filled in its marks",
    )
    sub.add_argument(
        "--json", action="store_true", help="also print each group's state as JSON"
    )


def _force(sub, help):
    sub.add_argument("--force", action="store_true", help=help)


def register(command):
    """Adds the commands on targets, and `report`, to the `kbb` parser."""
    sub = _target_command(
        command,
        "fetch",
        cmd_fetch,
        "make .upstream/TARGET (cached)",
        ["kbb fetch keras"],
    )
    _source_options(sub)
    sub = _target_command(
        command,
        "apply",
        cmd_apply,
        "apply the series as branches group/* and series",
        ["kbb apply keras", "kbb apply tf-keras --source git"],
    )
    _source_options(sub)
    _force(
        sub, "even with commits the series does not hold (kept under refs/kbb/backup/)"
    )
    sub = _target_command(
        command,
        "export",
        cmd_export,
        "write branch series back to patches/SERIES",
        ["kbb export keras", "kbb export keras --new-group native"],
    )
    sub.add_argument(
        "--new-group",
        metavar="NAME",
        help="put the commits after branch group/LAST into a new group NAME",
    )
    _force(sub, "even with commits off branch series (kept under refs/kbb/backup/)")
    _build_commands(command)
    sub = _target_command(
        command,
        "clean",
        cmd_clean,
        "remove .upstream/TARGET and what interrupted runs left",
        ["kbb clean keras --leftovers"],
    )
    _force(sub, "even with unexported work (kept in .upstream/backups/TARGET-*.bundle)")
    sub.add_argument(
        "--leftovers",
        action="store_true",
        help="only what interrupted runs left; keep the checkout",
    )
    sub = _target_command(
        command,
        "check",
        cmd_check,
        "check the series and the patches' provenance headers (default: every target)",
        ["kbb check", "kbb check keras --applies --json"],
        nargs="*",
    )
    sub.add_argument(
        "--applies",
        action="store_true",
        help="also apply the series to the cached pinned sdist, in a temporary copy",
    )
    sub.add_argument("--json", action="store_true", help="one JSON line per target")
    _pr_command(command)
    sub = command(
        "report",
        "write docs/analysis.md from out/results/*.json (the tests' figures)",
        ["kbb report", "kbb report --output /tmp/analysis.md"],
    )
    sub.add_argument("--results", type=Path, help="results folder (out/results)")
    sub.add_argument("--output", type=Path, help="output file (docs/analysis.md)")
    sub.set_defaults(run=cmd_report)


def run(ws, args, argv):
    """Runs the command for each target, holding the workspace lock unless
    it changes nothing (`check` without --applies); `kbb pr keras
    tf-keras`: one upstream's pull request not being ready does not keep
    the next one from being made. Returns the exit status."""
    changes = args.command != "check" or args.applies
    held = lock.locked(ws, " ".join(["kbb", *argv])) if changes else nullcontext()
    pins = [ws.pin(target) for target in args.targets] or [
        pin for pin in ws.pins().values() if pin.series == pin.target
    ]
    status = 0
    with held:
        for count, pin in enumerate(pins, 1):
            try:
                status = max(status, args.func(ws, pin, args) or 0)
            except KbbError as e:
                if args.command != "pr" or count == len(pins):
                    raise
                print(f"kbb: error: {redact(e)}", file=sys.stderr, flush=True)
                status = 2
    return status
