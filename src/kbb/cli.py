"""The `kbb` command (also `python -m kbb`): `kbb COMMAND TARGET ...`; see
`kbb --help`. It parses the command line and calls the modules with plain
arguments; nothing below it sees argparse."""

import argparse
import os
import sys
from contextlib import nullcontext
from pathlib import Path

from kbb import KbbError
from kbb import apply
from kbb import build
from kbb import checkout
from kbb import export
from kbb import files
from kbb import lock
from kbb import log
from kbb import redact
from kbb import report
from kbb.pr import prepare
from kbb.pr import push
from kbb.series import provenance_missing
from kbb.series import unparsable
from kbb.workspace import Workspace


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
    if bad:
        raise KbbError("; ".join(bad))
    print(f"patches/{pin.series}: {len(series.patches)} patches, headers ok")
    if args.applies and apply.applies_in_copy(ws, pin):
        print(f"patches/{pin.series}: applies to {pin.spec}")


def cmd_pr(ws, pin, args):
    """Prepares the upstream pull requests, or pushes one (see kbb.pr)."""
    _fetch(ws, pin, args)
    if args.push:
        push.push(ws, pin, args.push, args.group)
    else:
        prepare.prepare(ws, pin, args.group, args.newest_git, args.offline)


def cmd_report(ws, args):
    """Writes docs/analysis.md from the tests' recorded figures."""
    path, notes = report.write(ws, args.results, args.output)
    for note in notes:
        log(note)
    print(path)


def _source_options(sub):
    sub.add_argument(
        "--source",
        choices=("sdist", "git"),
        help="where a new checkout comes from (default: $KBB_SOURCE, else sdist)",
    )
    sub.add_argument("--git-url", help="override the pinned git-url")


def _build_commands(command):
    for name, func, help in (
        ("wheel", cmd_wheel, "build the wheel of a branch (cached, reproducible)"),
        ("install", cmd_install, "install the wheel of a branch into this Python"),
        ("tree", cmd_tree, "write the files of a branch to a folder"),
    ):
        sub = command(name, func, help)
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
    sub = command(
        "pr", cmd_pr, "prepare the upstream pull requests: out/pr/TARGET/GROUP/"
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


def parser():
    top = argparse.ArgumentParser(
        prog="kbb",
        description="Pinned upstreams and their patch series (keras-bn-bessel).",
    )
    top.add_argument(
        "--root",
        help="workspace root (default: the folder with pins.toml from the current "
        "one upward, else $KBB_ROOT)",
    )
    commands = top.add_subparsers(dest="command", required=True)

    def command(name, func, help, nargs="+"):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("targets", nargs=nargs, metavar="TARGET")
        sub.set_defaults(func=func)
        return sub

    _source_options(command("fetch", cmd_fetch, "make .upstream/TARGET (cached)"))
    sub = command("apply", cmd_apply, "apply the series as branches group/* and series")
    _source_options(sub)
    sub.add_argument(
        "--force",
        action="store_true",
        help="even with commits the series does not hold (kept under refs/kbb/backup/)",
    )
    sub = command("export", cmd_export, "write branch series back to patches/SERIES")
    sub.add_argument(
        "--new-group",
        metavar="NAME",
        help="put the commits after branch group/LAST into a new group NAME",
    )
    sub.add_argument(
        "--force",
        action="store_true",
        help="even with commits off branch series (kept under refs/kbb/backup/)",
    )
    _build_commands(command)
    sub = command(
        "clean", cmd_clean, "remove .upstream/TARGET and what interrupted runs left"
    )
    sub.add_argument(
        "--force",
        action="store_true",
        help="even with unexported work (kept in .upstream/backups/TARGET-*.bundle)",
    )
    sub.add_argument(
        "--leftovers",
        action="store_true",
        help="only what interrupted runs left; keep the checkout",
    )
    sub = command(
        "check",
        cmd_check,
        "check the series and the patches' provenance headers (default: every target)",
        nargs="*",
    )
    sub.add_argument(
        "--applies",
        action="store_true",
        help="also apply the series to the cached pinned sdist, in a temporary copy",
    )
    _pr_command(command)
    help = "write docs/analysis.md from out/results/*.json (the tests' figures)"
    sub = commands.add_parser("report", help=help, description=help)
    sub.add_argument("--results", type=Path, help="results folder (out/results)")
    sub.add_argument("--output", type=Path, help="output file (docs/analysis.md)")
    return top


def _run(ws, args, argv):
    """Runs the command for each target, holding the workspace lock unless
    it changes nothing (`check` without --applies); `kbb pr keras
    tf-keras`: one upstream's pull request not being ready does not keep
    the next one from being made. Returns the exit status."""
    changes = args.command != "check" or args.applies
    held = lock.locked(ws, " ".join(["kbb", *argv])) if changes else nullcontext()
    if args.command == "report":
        with held:
            cmd_report(ws, args)
        return 0
    pins = [ws.pin(target) for target in args.targets] or [
        pin for pin in ws.pins().values() if pin.series == pin.target
    ]
    failed = False
    with held:
        for count, pin in enumerate(pins, 1):
            try:
                args.func(ws, pin, args)
            except KbbError as e:
                if args.command != "pr" or count == len(pins):
                    raise
                print(f"kbb: error: {redact(e)}", file=sys.stderr, flush=True)
                failed = True
    return 2 if failed else 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    ws = None
    try:
        ws = Workspace.find(args.root)
        return _run(ws, args, argv)
    except (KbbError, OSError) as e:
        error = e if isinstance(e, KbbError) else files.disk_error(e)
        if error is None:
            raise
        print(f"kbb: error: {redact(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kbb: interrupted", file=sys.stderr)
        if ws is not None:
            targets = getattr(args, "targets", None) or list(ws.pins())
            for line in checkout.interrupted(ws, targets):
                print(f"kbb: {line}", file=sys.stderr)
            print("kbb: then rerun the command to resume", file=sys.stderr)
        return 130
