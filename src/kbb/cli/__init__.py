"""The `kbb` command (also `python -m kbb`): every job of the workspace is
a subcommand; `kbb --help` lists them, `kbb COMMAND --help` gives each
one's options and examples. It parses the command line and calls the jobs
with plain arguments: the upstream checkout's commands per target
(kbb.cli.targets), the benchmarks, the study, the mutants and the status
(kbb.cli.jobs).

Exit status, the same for every command (the table in docs/workflow.md
says each one's meaning): 0 done, every check held; 1 a check failed; 2 an
error, said in one line with its mend (and argparse's usage errors); 3
inconclusive timings; 130 interrupted, saying what was left.
"""

import argparse
import sys
from importlib import metadata

from kbb import KbbError
from kbb import log
from kbb import redact
from kbb import set_verbosity
from kbb.cli import jobs
from kbb.cli import targets
from kbb.files import disk_error
from kbb.upstream import checkout
from kbb.workspace import Workspace

EPILOG = """examples:
  kbb apply keras              # branches group/* of .upstream/keras
  kbb export keras             # write them back to patches/keras/
  kbb status --json            # the checkout, results, documents, PRs
  kbb bench run --quick        # a smoke run of the timings
  kbb pr keras tf-keras        # prepare the pull requests in out/pr/

exit status: 0 done, 1 a check failed, 2 an error, 3 inconclusive
timings, 130 interrupted (see `kbb.cli`'s docstring)."""


def version():
    try:
        return metadata.version("keras-bn-bessel")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser():
    top = argparse.ArgumentParser(
        prog="kbb",
        description="Pinned upstreams, their patch series, tests' figures, "
        "benchmarks and pull requests (keras-bn-bessel).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"kbb {version()}")
    top.add_argument(
        "--root",
        help="workspace root (default: the folder with pins.toml from the current "
        "one upward, else $KBB_ROOT)",
    )
    loud = top.add_mutually_exclusive_group()
    loud.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines, only errors"
    )
    loud.add_argument(
        "-v", "--verbose", action="store_true", help="also every git command run"
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, examples=(), doc=None, under=commands):
        """A subcommand (of `under`): its help, a job's docstring, examples."""
        text = "\n".join(["examples:", *(f"  {e}" for e in examples)])
        return under.add_parser(
            name,
            help=help,
            description=help + (f"\n\n{doc.strip()}" if doc else ""),
            epilog=text if examples else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    targets.register(command)
    jobs.register(command)
    return top


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    set_verbosity(0 if args.quiet else 2 if args.verbose else 1)
    ws = None
    try:
        ws = Workspace.find(args.root)
        return args.run(ws, args, argv)
    except (KbbError, OSError) as e:
        error = e if isinstance(e, KbbError) else disk_error(e)
        if error is None:
            raise
        print(f"kbb: error: {redact(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kbb: interrupted", file=sys.stderr)
        if ws is not None:
            names = getattr(args, "targets", None) or list(ws.pins())
            for line in checkout.interrupted(ws, names):
                log(line, level=0)
            log("then rerun the command to resume", level=0)
        return 130
