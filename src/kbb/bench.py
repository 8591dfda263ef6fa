"""`tox -e bench`: asv, pristine against patched, with an A/A control.

    python -m kbb.bench [--target keras|tf-keras] [--quick] [--factor F]
        [--output FILE] [-b REGEX] [-- ASV_RUN_ARGS...]

1. Makes the upstream checkout (`kbb apply`), and in it branch `aa`: a
   commit whose tree is the pristine tree, the A/A control.
2. One `asv run --interleave-rounds` of upstream, each patch group's branch
   (group/bessel, group/native: each has the groups before it) and aa: what
   `asv continuous upstream group/NAME` runs, with the control measured in
   the same rounds, under the same load.
3. `asv compare --split --factor F upstream group/NAME` (A/B) and
   `upstream aa` (A/A), saved in .asv/TARGET/, turned by kbb.benchsummary
   into docs/benchmarks.md: per group, the A/B tables with the A/A ratio of
   each benchmark, the noise floor (the largest A/A time ratio) and the
   factor.
4. `asv publish`: the html report in .asv/TARGET/html.

Exit status: 1 when an A/B comparison has a regression (what asv marks
worse or newly failing, as `asv continuous` does); when the gate flags the
A/A control too, its noise floor is above the factor, and a flagged timing
counts only beyond that floor: 3 (inconclusive, rerun on a quieter
machine) when none does; 2 on an error.
`--quick` (asv's: one sample per benchmark, one shape) is a
smoke run of upstream and the group branches: its timings are single samples, so its
gate is on failures and on the exact counters (track_) only, and its
summary goes to .asv/TARGET/benchmarks-quick.md.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kbb import KbbError
from kbb import apply
from kbb import benchsummary
from kbb import checkout as upstream_checkout
from kbb.git import git
from kbb.git import identity_env
from kbb.git import rev
from kbb.series import Series
from kbb.workspace import Workspace

# Calibrated by the A/A control on the 2-core machine (benchmarks/README.md):
# with the suite's TIMING settings and the CPU-time clock, its time_ ratios
# reached 1.32 and 1.37 in two runs; the factor sits above both.
FACTOR = 1.5
CONFIGS = {"keras": "asv.conf.json", "tf-keras": "asv-tf-keras.conf.json"}
AA_BRANCH = "aa"


# Environment variables that change what a run measures, named in its summary:
# the clock, the backends measured (benchmarks/keras3/common.py), and
# TensorFlow's oneDNN optimizations (they change its fused kernel's path).
SETTINGS = ("KBB_BENCH_TIMER", "KBB_BENCH_BACKENDS", "TF_ENABLE_ONEDNN_OPTS")

TIMER_NOTE = {
    "cpu": "CPU time of the benchmark process, all threads (time.process_time): "
    "other jobs on the machine disturb it far less than wall time",
    "wall": "wall time (time.perf_counter)",
}


def timer():
    """The clock of the time_ benchmarks, as benchmarks/keras3/common.py
    chooses it: KBB_BENCH_TIMER, else wall time where there is a GPU."""
    default = "wall" if shutil.which("nvidia-smi") else "cpu"
    return os.environ.get("KBB_BENCH_TIMER") or default


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
    path = upstream_checkout.ensure(ws, pin)
    apply.ensure_applied(ws, pin)
    upstream = rev(path, "refs/heads/pristine")
    message = "A/A control: the pristine tree again, for asv's noise floor\n"
    env = identity_env(date="2000-01-01T00:00:00+0000")
    tree = git("rev-parse", f"{upstream}^{{tree}}", cwd=path).strip()
    commit = git(
        "commit-tree", tree, "-p", upstream, input=message, cwd=path, env=env
    ).strip()
    git("branch", "-f", AA_BRANCH, commit, cwd=path)
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
    parser.add_argument("--factor", type=float, default=FACTOR)
    parser.add_argument("--output", type=Path, help="the markdown summary")
    parser.add_argument("-b", "--bench", action="append", default=[])
    parser.add_argument("asv_args", nargs="*", help="more asv run options")
    args = parser.parse_args(argv)

    ws = Workspace.find(None)
    config = str(ws.root / CONFIGS[args.target])
    try:
        path = checkout(ws, args.target)
    except KbbError as e:
        log(f"error: {e}")
        return 2
    results = ws.root / ".asv" / args.target
    suffix = "" if args.target == "keras" else f"-{args.target}"
    if args.output is None:
        if args.quick:
            args.output = results / "benchmarks-quick.md"
        else:
            args.output = ws.root / "docs" / f"benchmarks{suffix}.md"
    # Each patch group stacked on the ones before it: group/bessel (the fix)
    # against upstream proves it costs nothing; group/native (the fused
    # kernels, on the fix) against upstream measures that change.
    groups = Series.load(ws.patches(ws.pin(args.target).series)).groups
    heads = [f"group/{group}" for group in groups]
    refs = ["pristine", *heads] + ([] if args.quick else [AA_BRANCH])
    hashes = [rev(path, f"refs/heads/{ref}") for ref in refs]

    if asv(config, "machine", "--yes", capture=True, echo=False).returncode:
        return 2
    # This run measures these commits anew: results of benchmarks that no
    # longer exist, or of another mode, must not linger in their files.
    for stale in (results / "results").glob("*/*.json"):
        if stale.name.split("-", 1)[0] in {h[:8] for h in hashes}:
            stale.unlink()
    started, load_before = time.time(), load()
    bench = [a for b in args.bench for a in ("-b", b)]
    # asv --quick takes one sample of each benchmark; -a rounds=1 spares the
    # empty interleaved rounds (and their reinstalls) it would go through;
    # KBB_BENCH_QUICK=1: the suite takes one shape and n = 2 only.
    quick = ["--quick", "-a", "rounds=1"] if args.quick else []
    os.environ["KBB_BENCH_QUICK"] = "1" if args.quick else "0"
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as hashfile:
        hashfile.write("\n".join(hashes) + "\n")
        hashfile.flush()
        run = asv(
            config,
            "run",
            *quick,
            "--interleave-rounds",
            "--record-samples",
            "--show-stderr",
            *bench,
            *args.asv_args,
            f"HASHFILE:{hashfile.name}",
        )
    minutes = (time.time() - started) / 60
    # asv run exits with 2 when a benchmark failed: the comparison marks it.
    if run.returncode not in (0, 2):
        log(f"asv run exited with {run.returncode}")
        return 2

    factor = ["--factor", str(args.factor)]
    compared = {}
    # By the commits run, not the branch names: a branch that moved during
    # the run (an export, say) has no results under its new commit.
    for head, commit in zip(refs[1:], hashes[1:], strict=True):
        compare = asv(
            config, "compare", "--split", *factor, hashes[0], commit, capture=True
        )
        if compare.returncode:
            return 2
        quick_suffix = "-quick" if args.quick else ""
        name = head.replace("/", "-")
        text = results / f"compare-upstream-{name}{quick_suffix}.txt"
        text.write_text(compare.stdout)
        compared[head] = benchsummary.parse(compare.stdout)
    aa_rows = compared.get(AA_BRANCH)

    gate = "counters" if args.quick else "all"
    mode = "smoke run (--quick: one sample each)" if args.quick else "full run"
    against = ", ".join(f"`{head}`" for head in heads)
    notes = [
        f"Generated by `python -m kbb.bench{' --quick' if args.quick else ''}` "
        f"(`tox -e bench`) from one asv run: {args.target}, `upstream` against "
        f"{against}{' and `aa`' if aa_rows else ''}, {mode}, rounds "
        f"interleaved, {minutes:.0f} min; do not edit. Each group branch has "
        "the groups before it (patches/ series order).",
        "",
        f"- Machine: {os.cpu_count()} CPUs; {load_before} before the run, "
        f"{load()} after it.",
    ]
    if not args.quick:
        notes.append(
            f"- time_: {TIMER_NOTE[timer()]}; one sample is one call, asv "
            "reports the median of all samples."
        )
    settings = [f"`{k}={os.environ[k]}`" for k in SETTINGS if os.environ.get(k)]
    if settings:
        notes.append(f"- Settings of this run: {', '.join(settings)}.")
    before = benchsummary.exact_values(results / "results", hashes[0])
    sections, statuses = [], []
    for head, commit in zip(heads, hashes[1:], strict=False):
        title = f"{args.target}: upstream against {head}"
        exact = (before, benchsummary.exact_values(results / "results", commit))
        rows = compared[head]
        sections.append(
            benchsummary.markdown(rows, aa_rows, args.factor, gate, title, notes, exact)
        )
        notes = []  # once, in the first section
        status, real, unresolved = benchsummary.verdict(rows, aa_rows, gate)
        for r in real:
            log(f"{head}: regression: {r.mark} {r.ratio} {r.name} [{r.backend}]")
        if status == "inconclusive":
            log(
                f"{head}: INCONCLUSIVE: the gate flags the A/A control, and "
                f"{len(unresolved)} A/B timing(s) within its noise floor"
            )
        statuses.append(status)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(sections))
    log(f"wrote {args.output}")

    if asv(config, "publish", capture=True, echo=False).returncode == 0:
        log(f"html report: {results / 'html'} (`asv preview` to open it)")
    if "failed" in statuses:
        log("FAILED: a patch group regressed (see the tables above)")
        return 1
    if "inconclusive" in statuses:
        log("INCONCLUSIVE: rerun on a quieter machine")
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
