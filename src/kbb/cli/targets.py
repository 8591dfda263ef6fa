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
from kbb.report import tf_keras
from kbb.series import provenance_missing
from kbb.series import unparsable
from kbb.upstream import apply
from kbb.upstream import checkout
from kbb.upstream import export


def _fetch(ws, pin, args):
    """The checkout; for a command with --ref, the series applied if needed
    for it."""
    source = args.source or os.environ.get("KBB_SOURCE") or None
    checkout.ensure(ws, pin, source, args.git_url)
    if "ref" in args:
        apply.ensure_applied(ws, pin, args.ref)


def cmd_fetch(ws, pin, args):
    print(ws.checkout(pin.target))


def cmd_apply(ws, pin, args):
    apply.apply(ws, pin, force=args.force)


def cmd_export(ws, pin, args):
    for patch in export.export(ws, pin, args.new_group, args.force):
        print(f"patches/{pin.series}/{patch.name}")


def cmd_wheel(ws, pin, args):
    path = build.wheel(ws, pin, args.ref)
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        path = files.copy(path, args.output / path.name)
    print(path)


def cmd_install(ws, pin, args):
    print(build.install(ws, pin, args.ref, no_deps=not args.deps))


def cmd_tree(ws, pin, args):
    print(build.tree(ws, pin, args.ref, args.dest))


def cmd_clean(ws, pin, args):
    checkout.clean(ws, pin, force=args.force, checkout_too=not args.leftovers)


def cmd_check(ws, pin, args):
    """Checks the series file, that each patch parses and has its provenance
    headers, and with --applies that the series applies (in a temporary
    copy of the root)."""
    series = ws.series(pin)
    series.require_patches(pin.target)
    bad = []
    for patch in series.patches:
        text = patch.path.read_text()
        if missing := provenance_missing(text):
            bad.append(f"{patch.name}: lacks {', '.join(k + ':' for k in missing)}")
        if problem := unparsable(text):
            bad.append(f"{patch.name}: {problem}")
    applies = None
    if args.applies and not bad:
        try:
            applies = apply.applies_in_copy(ws, pin)
        except KbbError as e:
            if not args.json:
                raise
            bad.append(str(e))
    if args.json:
        found = {"series": pin.series, "patches": len(series.patches)}
        print(json.dumps({**found, "problems": bad, "applies": applies}))
        return 2 if bad else 0
    if bad:
        raise KbbError("; ".join(bad))
    print(f"patches/{pin.series}: {len(series.patches)} patches, headers ok")
    if applies:
        print(f"patches/{pin.series}: applies to {pin.spec}")
    return 0


def cmd_pr(ws, pin, args):
    """Prepares the upstream pull requests, or pushes one (see kbb.pr)."""
    if args.push:
        push.push(ws, pin, args.push, args.group)
    else:
        prepare.prepare(ws, pin, args.group, args.newest_git, args.offline)
        if args.json:
            print(json.dumps(prepare.summary(ws, pin)))


def cmd_report(ws, args, argv):
    """Writes docs/analysis.md (or docs/tf-keras.md's tables) from the
    tests' recorded figures."""
    with lock.locked(ws, " ".join(["kbb", *argv])):
        if args.tf_keras and args.output:
            raise KbbError("--tf-keras writes docs/tf-keras.md: leave out --output")
        if args.tf_keras:
            path, notes = tf_keras.write(ws, args.results), []
        else:
            path, notes = analysis.write(ws, args.results, args.output)
    for note in notes:
        log(note)
    print(path)
    return 0


# name: (function, help, examples after `kbb NAME`, whether it runs on the
# checkout, made or verified first: --source, --git-url).
COMMANDS = {
    "fetch": (cmd_fetch, "make .upstream/TARGET (cached)", ["keras"], True),
    "apply": (
        cmd_apply,
        "apply the series as branches group/* and series",
        ["keras", "tf-keras --source git"],
        True,
    ),
    "export": (
        cmd_export,
        "write branch series back to patches/SERIES",
        ["keras", "keras --new-group native"],
        False,
    ),
    "wheel": (
        cmd_wheel,
        "build the wheel of a branch (cached, reproducible)",
        ["keras --ref group/bessel --output dist"],
        True,
    ),
    "install": (
        cmd_install,
        "install the wheel of a branch into this Python",
        ["keras --ref pristine"],
        True,
    ),
    "tree": (
        cmd_tree,
        "write the files of a branch to a folder",
        ["keras --ref group/bessel --dest /tmp/keras"],
        True,
    ),
    "clean": (
        cmd_clean,
        "remove .upstream/TARGET and what interrupted runs left",
        ["keras --leftovers"],
        False,
    ),
    "check": (
        cmd_check,
        "check the series and the patches' provenance headers (default: every target)",
        ["", "keras --applies --json"],
        False,
    ),
    "pr": (
        cmd_pr,
        "prepare the upstream pull requests: out/pr/TARGET/GROUP/",
        [
            "keras tf-keras --offline",
            "keras --newest-git https://github.com/keras-team/keras",
            "keras --push fork --group bessel",
        ],
        True,
    ),
}
FORCE = {
    "apply": "even with commits the series does not hold (kept under refs/kbb/backup/)",
    "export": "even with commits off branch series (kept under refs/kbb/backup/)",
    "clean": "even with unexported work (kept in .upstream/backups/TARGET-*.bundle)",
}


def register(command):
    """Adds the commands on targets, and `report`, to the `kbb` parser."""
    subs = {}
    for name, (func, help, examples, fetch) in COMMANDS.items():
        sub = subs[name] = command(
            name, help, [f"kbb {name} {example}".rstrip() for example in examples]
        )
        nargs = "*" if name == "check" else "+"
        sub.add_argument(
            "targets", nargs=nargs, metavar="TARGET", help="keras, tf-keras"
        )
        sub.set_defaults(func=func, run=run, fetch=fetch)
        if fetch:
            sub.add_argument(
                "--source",
                choices=("sdist", "git"),
                help="where a new checkout comes from (default: $KBB_SOURCE, "
                "else sdist)",
            )
            sub.add_argument("--git-url", help="override the pinned git-url")
        if name in FORCE:
            sub.add_argument("--force", action="store_true", help=FORCE[name])
        if name in ("wheel", "install", "tree"):
            sub.add_argument("--ref", default="series", help="branch (default: series)")
    subs["export"].add_argument(
        "--new-group",
        metavar="NAME",
        help="put the commits after branch group/LAST into a new group NAME",
    )
    subs["wheel"].add_argument("-o", "--output", type=Path, help="copy the wheel here")
    flag = "store_true"
    subs["install"].add_argument("--deps", action=flag, help="also its dependencies")
    subs["tree"].add_argument(
        "--dest", type=Path, required=True, help="folder (replaced)"
    )
    subs["clean"].add_argument(
        "--leftovers",
        action=flag,
        help="only what interrupted runs left; keep the checkout",
    )
    subs["check"].add_argument(
        "--applies",
        action=flag,
        help="also apply the series to the cached pinned sdist, in a temporary copy",
    )
    subs["check"].add_argument("--json", action=flag, help="one JSON line per target")
    pr = subs["pr"]
    pr.add_argument(
        "--newest-git",
        nargs="?",
        const=True,
        metavar="URL",
        help="check against the default branch of this git remote (default: the "
        "pinned git-url) rather than the pinned newest sdist; a branch that "
        "applies there is based there, ready to push",
    )
    pr.add_argument(
        "--offline",
        action=flag,
        help="download nothing: check against the cached pinned newest sdist, if any",
    )
    pr.add_argument(
        "--group", action="append", help="only this patch group (repeatable)"
    )
    pr.add_argument(
        "--push",
        metavar="REMOTE",
        help="push branch pr/GROUP to REMOTE and open its pull request, once "
        "you have reviewed PR.md, ticked its boxes and filled in its marks",
    )
    pr.add_argument("--json", action=flag, help="also print each group's state as JSON")
    sub = command(
        "report",
        "write docs/analysis.md (--tf-keras: docs/tf-keras.md's tables) from "
        "out/results/*.json, the tests' figures",
        ["kbb report", "kbb report --output /tmp/analysis.md", "kbb report --tf-keras"],
    )
    sub.add_argument("--results", type=Path, help="results folder (out/results)")
    sub.add_argument("--output", type=Path, help="output file (docs/analysis.md)")
    tables = "write the named tables of docs/tf-keras.md instead (no --output)"
    sub.add_argument("--tf-keras", action="store_true", help=tables)
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
                if args.fetch:
                    _fetch(ws, pin, args)
                status = max(status, args.func(ws, pin, args) or 0)
            except KbbError as e:
                if args.command != "pr" or count == len(pins):
                    raise
                print(f"kbb: error: {redact(e)}", file=sys.stderr, flush=True)
                status = 2
    return status
