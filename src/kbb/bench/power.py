"""`kbb bench power` (`tox -e bench-power`): can the timing method see a
known regression? (benchmarks/README.md, "The method's power".) Each
benchmark mutant, benchmarks/mutants/NAME.patch (a `Mutant:` and an
`Expect:` line, then a diff against group/bessel), is timed against
group/bessel by `kbb bench run`'s method. Exit status: 0 when every
expectation held, 1 when one failed, 3 when the load gate left fewer than
MIN_ROUNDS rounds, 2 on an error. A quick test: `--rounds 3 --no-record`.
"""

import gzip
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

from kbb import KbbError
from kbb import log
from kbb.bench import builds
from kbb.bench import record
from kbb.bench import report
from kbb.bench import run
from kbb.bench import stats
from kbb.bench import tables
from kbb.bench import workers
from kbb.git import commit_patch

MUTANTS = Path("benchmarks") / "mutants"
SLOW_BLOCKS = 15  # of the true ratio's measure, in one process
# Three eager layer steps: small (511x64: Python overhead), a dense layer
# of 4M values, and a convolutional map (torch runs eagerly: jit False).
CASES = (
    r"^layer\.BatchNormLayer\.time_forward_backward\('(511x64|4096x1024|32x28x28x64)'"
)
ROUNDS = 20  # 5 processes each, about 50 s a round on 2 cores (run 017)
# At 0.2 s per benchmark the 50 ms steps got 4 samples, and their medians
# spread by +-30 % in a quiet window (run 016).
BUDGET, MIN_SAMPLES = 1.0, 12
POWER_AT = 1.10  # the regression the method should call with 80 % power
SCRATCH = Path("out") / "bench" / "power"
BASE = "group/bessel"
WHO = {"NAME": "kbb bench-power", "EMAIL": "bench-power@kbb.invalid"}
WHO["DATE"] = "2026-01-01T00:00:00+0000"  # a fixed author and date
GIT_ENV = {f"GIT_{r}_{k}": v for r in ("AUTHOR", "COMMITTER") for k, v in WHO.items()}


def mutants(root):
    """{name: (what, expected verdict, patch)} of benchmarks/mutants."""
    out = {}
    for patch in sorted((Path(root) / MUTANTS).glob("*.patch")):
        text = patch.read_text()
        what, expect = (
            re.search(rf"^{k}: (.+)$", text, re.M) for k in ("Mutant", "Expect")
        )
        if not what or not expect:
            raise KbbError(f"{patch} lacks its `Mutant:` or `Expect:` line")
        out[patch.stem] = (what[1], expect[1], patch)
    return out


def commit(checkout, name, patch):
    """Commits `patch` on group/bessel as refs/kbb/bench/NAME; the ref."""
    ref = f"refs/kbb/bench/{name}"
    message = f"Benchmark mutant {name}\n"
    commit_patch(checkout, BASE, patch, ref, message, GIT_ENV)
    return ref


def in_process(ws, folder, args):
    """{key: {ratio, lo, hi, blocks}}: the slow mutant's true ratio, from the
    log ratios of the blocks of benchmarks/worker.py --slow (95 % Student)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "truth.json"
        command = [ws.root / run.WORKER, out, "--slow", SLOW_BLOCKS]
        command += ["--bench", args.bench, "--seed", args.seed]
        env = run.worker_env(folder, "torch", args.threads, False)
        found = workers.launch(command, env, out, "the slow mutant's cost", folder)
    truth = {}
    for key, logs in found["logs"].items():
        ratio, lo, hi = stats.mean_interval(logs)
        truth[key] = {"ratio": ratio, "lo": lo, "hi": hi, "blocks": len(logs)}
    return truth


def noise(raw, summary, name):
    """{key: standard deviation of the rounds' log ratio} of a comparison:
    the paired noise that sets the power (stats.power)."""
    before, after = summary["pairs"].get(name, (None, None))
    data = report.located(
        report.by_build(raw["processes"], drop=summary["rounds"]["dropped"]),
        raw.get("meta", {}).get("statistic", "median"),
    )
    out = {}
    for key in data.get(after, {}):
        d = stats.differences(data[before].get(key, {}), data[after][key])
        if len(d) > 1:
            out[key] = statistics.stdev(d)
    return out


def judge(summary, found, truth, raw):
    """The power table's rows, each with its paired noise and the power it
    gives a POWER_AT regression, and whether every expectation held."""
    rows, held = [], True
    for name, (_what, expect, _) in found.items():
        key = f"{name} over bessel"
        verdict = summary["verdicts"].get(key, "not run")
        ok = (verdict == "regression") == (expect == "regression")
        held &= ok
        sds, comparison = noise(raw, summary, key), summary["comparisons"].get(key, {})
        for bench_key, r in comparison.items():
            t = truth.get(bench_key) if name == "slow" else None
            sd, n = sds.get(bench_key), r["processes"][0]
            power = stats.power(POWER_AT, sd, n, len(comparison)) if sd else None
            row = {k: r.get(k) for k in ("ratio", "lo", "hi", "detectable")}
            row.update(mutant=name, expect=expect, benchmark=bench_key, true=t)
            row.update(verdict=r.get("verdict", "no interval"), sd=sd, power=power)
            rows.append({**row, "group": verdict, "held": ok})
    aa = summary.get("aa_outside")
    held &= aa == []
    seen = all(r["lo"] is not None for r in rows) and rows
    status = "held" if held else "FAILED" if seen else "inconclusive (no interval)"
    return {"rows": rows, "aa_outside": aa, "held": held, "status": status}


def arguments(parser):
    add = parser.add_argument
    add("--rounds", type=int, default=ROUNDS, help="rounds (default %(default)s)")
    add("--bench", default=CASES, help="regex of benchmark names (default: CASES)")
    add("--seed", type=int, default=int(time.time()), help="order (default: now)")
    gate = "drop rounds where others took more cores (default %(default)s)"
    add("--max-load", type=float, default=workers.MAX_LOAD, help=gate)
    add("--no-record", action="store_true", help="write out/bench/ only")
    add("--again", type=Path, metavar="RUN", help="re-analyse a recorded run")
    statistic = "each process's statistic (default: min; --again: the run's)"
    add("--statistic", choices=list(stats.STATISTICS), help=statistic)


def main(ws, args):
    given = {k: getattr(args, k) for k in ("bench", "rounds", "seed", "max_load")}
    given["statistic"] = args.statistic or "min"
    run_args = run.options(
        **given, backends=["torch"], threads=1, budget=BUDGET, min_samples=MIN_SAMPLES
    )
    if args.again:
        return again(ws, args.again, args.statistic)
    started = time.time()
    found = mutants(ws.root)
    builds.applied_checkout(ws, "keras")
    checkout = ws.checkout("keras")
    spec = ["pristine", "bessel"]
    spec += [f"{n}={commit(checkout, n, p)}" for n, (_, _, p) in found.items()]
    selected = builds.select(ws, ",".join(spec))
    raw, folders = run.collect(ws, run_args, selected)
    raw["meta"]["kind"] = "power"
    truth = in_process(ws, folders["slow"], run_args) if "slow" in folders else {}
    raw["meta"]["minutes_total"] = (time.time() - started) / 60
    summary = report.analyse(raw, run_args.delta)
    summary["power"] = judge(summary, found, truth, raw)
    kept = summary["rounds"]["run"] - len(summary["rounds"]["dropped"])
    where = write(ws, raw, summary, args.no_record)
    log(f"wrote {where}")
    if kept < stats.MIN_ROUNDS:
        log(f"inconclusive: the load gate left {kept} round(s)")
        return 3
    held = summary["power"]["held"]
    log("bench-power: " + ("the method sees the slow mutant" if held else "FAILED"))
    return 0 if held else 1


def again(ws, folder, statistic=None):
    """Re-analyses a recorded power run from its samples, in its folder
    (with `statistic`, each process's statistic instead of the run's)."""
    raw = json.loads(gzip.open(folder / "raw.json.gz", "rt").read())
    if statistic:
        raw["meta"]["statistic"] = statistic
    old = json.loads((folder / "summary.json").read_text())["power"]["rows"]
    truth = {r["benchmark"]: r["true"] for r in old if r["true"]}
    summary = report.analyse(raw)
    summary["power"] = judge(summary, mutants(ws.root), truth, raw)
    log(f"wrote {write(ws, raw, summary, folder)}")
    return 0


def write(ws, raw, summary, scratch):
    """Writes the run: into the folder `scratch` (--again), out/bench/power/
    (`scratch` true: --no-record), else recorded in benchmarks/runs/; its
    record.md, with the power table before the run's own tables."""
    power = summary["power"]
    aa = power["aa_outside"]
    held = {"held": "Every expectation held", "FAILED": "An expectation FAILED"}
    intro = [
        "## Power: the benchmark mutants (benchmarks/mutants)",
        "",
        "Generated by `kbb bench power` (`tox -e bench-power`). "
        + held.get(power["status"], "Inconclusive: a comparison has no interval")
        + "; A/A control: "
        + (f"{len(aa)} interval(s) leave out 1 ({', '.join(aa)})" if aa else "clean")
        + f"; {raw['meta']['minutes_total']:.1f} min in all.",
        "",
        tables.power_table(power, power_at=POWER_AT),
        "",
    ]
    if scratch:
        folder = scratch if isinstance(scratch, Path) else ws.root / SCRATCH
        number = re.match(r"\d{3}-", folder.name)  # a recorded run's folder
        name = number[0][:3] if number else folder.name
        title = f"Power run {name}: {power['status']}"
        return record.save(ws, raw, summary, title, intro, folder=folder)
    title = "Power run {:03d}: " + power["status"]
    return record.save(ws, raw, summary, title, intro, "power")
