"""`tox -e bench`: asv, pristine against patched, gated, summarized.

    python -m kbb.bench [--target keras|tf-keras] [--quick] [--aa]
        [--factor F] [--output FILE] [-b REGEX] [-- ASV_ARGS...]

1. Makes the upstream checkout (`kbb apply`), and in it branch `aa`: a
   commit whose tree is the pristine tree (the A/A control).
2. `asv continuous --factor F upstream patched` (with `--aa`: upstream aa),
   rounds interleaved between the two commits.
3. `asv compare --split` of the same pair (saved in .asv/TARGET/), turned by
   kbb.benchsummary into docs/benchmarks.md (A/B) or docs/benchmarks-aa.md
   (A/A), with the A/A ratio of each benchmark from the last A/A run's
   saved comparison, when there is one.
4. `asv publish`: the html report in .asv/TARGET/html.

The exit status is 1 on a regression: what `asv continuous` flags, or
what the summary's gate flags. `--quick` (asv's: one sample per benchmark)
is a smoke run: its timings are single samples, so its gate is on failures
and on the exact counters (track_) only, and its summary goes to
.asv/TARGET/benchmarks-quick.md.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kbb import KbbError
from kbb import benchsummary
from kbb import gitops
from kbb.pins import Workspace

# Calibrated by the A/A run (docs/benchmarks.md): the A/A ratios of the
# time_ benchmarks stay well inside it with the suite's TIMING settings.
FACTOR = 1.25
CONFIGS = {"keras": "asv.conf.json", "tf-keras": "asv-tf-keras.conf.json"}
AA_BRANCH = "aa"


def log(message):
    print(f"kbb.bench: {message}", file=sys.stderr, flush=True)


def checkout(ws, target):
    """The applied upstream checkout, with branch `aa` made (idempotent)."""
    try:
        pin = ws.pin(target)
    except KbbError as e:
        raise KbbError(
            f"{e} (the {target} target is not in this workspace's pins.toml yet)"
        ) from None
    path = gitops.fetch(ws, pin)
    if not gitops.is_current(ws, pin):
        gitops.apply(ws, pin)
    upstream = gitops.rev(path, "refs/heads/upstream")
    message = "A/A control: the pristine tree again, for asv's noise floor\n"
    env = gitops._bot_env("2000-01-01T00:00:00+0000")
    tree = gitops.git("rev-parse", f"{upstream}^{{tree}}", cwd=path).strip()
    commit = gitops.git(
        "commit-tree", tree, "-p", upstream, input=message, cwd=path, env=env
    ).strip()
    gitops.git("branch", "-f", AA_BRANCH, commit, cwd=path)
    return path


def asv(config, *args, capture=False, echo=True):
    command = [sys.executable, "-m", "asv", "--config", config, *args]
    log(" ".join(command[2:]))
    result = subprocess.run(command, text=True, capture_output=capture)
    if capture and (echo or result.returncode):
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
    return result


def load():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kbb.bench", description=__doc__)
    parser.add_argument("--target", choices=sorted(CONFIGS), default="keras")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--aa", action="store_true", help="upstream against aa")
    parser.add_argument("--factor", type=float, default=FACTOR)
    parser.add_argument("--output", type=Path, help="the markdown summary")
    parser.add_argument("-b", "--bench", action="append", default=[])
    parser.add_argument("asv_args", nargs="*", help="more asv continuous options")
    args = parser.parse_args(argv)

    ws = Workspace.find(None)
    config = str(ws.root / CONFIGS[args.target])
    try:
        checkout(ws, args.target)
    except KbbError as e:
        log(f"error: {e}")
        return 2
    base, head = "upstream", AA_BRANCH if args.aa else "patched"
    results = ws.root / ".asv" / args.target
    if args.output is None:
        name = "benchmarks-aa.md" if args.aa else "benchmarks.md"
        if args.target != "keras":
            name = name.replace("benchmarks", f"benchmarks-{args.target}")
        folder = results if args.quick else ws.root / "docs"
        args.output = folder / (
            name.replace(".md", "-quick.md") if args.quick else name
        )

    if asv(config, "machine", "--yes", capture=True, echo=False).returncode:
        return 2
    started, load_before = time.time(), load()
    bench = [a for b in args.bench for a in ("-b", b)]
    # asv --quick takes one sample of each benchmark; -a rounds=1 spares
    # the empty interleaved rounds (and their reinstalls) it would go through.
    # KBB_BENCH_QUICK=1: the suite takes its two smaller shapes only.
    quick = ["--quick", "-a", "rounds=1"] if args.quick else []
    os.environ["KBB_BENCH_QUICK"] = "1" if args.quick else "0"
    factor = ["--factor", str(args.factor)]
    run = asv(
        config,
        "continuous",
        *factor,
        *quick,
        "--interleave-rounds",
        "--show-stderr",
        *bench,
        *args.asv_args,
        base,
        head,
    )
    minutes = (time.time() - started) / 60
    compare = asv(config, "compare", "--split", *factor, base, head, capture=True)
    if compare.returncode:
        return 2
    results.mkdir(parents=True, exist_ok=True)
    pair = f"{base}-{head}{'-quick' if args.quick else ''}"
    (results / f"compare-{pair}.txt").write_text(compare.stdout)
    # The A/A ratios come from the A/A run's own comparison, saved when it
    # ran: this run has replaced the results of `upstream` since.
    aa_rows = None
    aa_text = (
        results / f"compare-{base}-{AA_BRANCH}{'-quick' if args.quick else ''}.txt"
    )
    if not args.aa and aa_text.is_file():
        aa_rows = benchsummary.parse(aa_text.read_text()) or None
    rows = benchsummary.parse(compare.stdout)
    gate = "counters" if args.quick else "all"
    mode = "smoke run (--quick: one sample each)" if args.quick else "full run"
    notes = [
        f"Generated by `python -m kbb.bench{' --quick' if args.quick else ''}"
        f"{' --aa' if args.aa else ''}` (`tox -e bench`) from asv results: "
        f"{args.target}, `{base}` against `{head}`, {mode}, "
        f"{minutes:.0f} min; do not edit.",
        "",
        f"- Machine: {os.cpu_count()} CPUs; {load_before} before the run, "
        f"{load()} after it.",
    ]
    if not args.aa and aa_rows is None:
        notes.append("- No A/A run in these results (`tox -e bench -- --aa`).")
    title = f"{args.target}: {base} against {head}"
    text = benchsummary.markdown(rows, aa_rows, args.factor, gate, title, notes)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output}")

    html = asv(config, "publish", capture=True)
    if html.returncode == 0:
        log(f"html report: {results / 'html' / 'index.html'} (asv preview)")
    bad = benchsummary.regressions(rows, gate)
    for r in bad:
        log(f"regression: {r.mark} {r.ratio} {r.name} [{r.backend or r.env}]")
    if bad or (run.returncode and not args.quick):
        log("FAILED: see the tables above")
        return 1
    return 0


if __name__ == "__main__":
    if shutil.which("git") is None:
        raise SystemExit("kbb.bench: git is required")
    raise SystemExit(main())
