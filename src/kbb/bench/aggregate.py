"""`kbb bench aggregate`: docs/benchmarks.md, the aggregate of the
recorded runs and counters, and the runs' index. Only runs whose A/A
control held count; a speed-up is claimed at the lower bound that two of
them reach (the second-largest), never from one run.
"""

import json
from pathlib import Path

from kbb.bench import builds
from kbb.bench import tables
from kbb.bench.tables import index
from kbb.bench.tables import label
from kbb.bench.tables import runs
from kbb.bench.tables import table
from kbb.files import write_text
from kbb.results import stamp_line

RUNS = Path("benchmarks") / "runs"
COUNTERS = Path("benchmarks") / "counters" / "expected.json"
OUTPUT = Path("docs") / "benchmarks.md"
NONE = "No conclusive run yet."
JAX = "jaxpr equations|xla instructions|xla flops|xla bytes_accessed|xla temp_bytes"
SHOWN = {  # counters shown per backend: "part counter"
    "tensorflow": ["graph ops", "xla instructions"],
    "tensorflow-onednn": ["graph ops", "xla instructions"],
    "jax": JAX.split("|"),
    "torch": ["aten ops", "aten bytes"],
}


def conclusive(all_runs, series):
    """The runs whose A/A control held, of the patches as they are now
    (`series`: {build: digest}, as kbb.bench.builds.series gives it)."""
    return [
        (n, s)
        for n, s in all_runs
        if "aa" in s.get("comparisons", {})
        and not s["meta"].get("quick")
        and s["meta"].get("kind") != "power"
        and not s.get("aa_outside")
        and s["meta"].get("series") == series
    ]


def fix_table(good, build="bessel"):
    """Per run and backend: the largest upper bound of the fix's ratios,
    and the smallest regression the run could have seen there."""
    rows = []
    for name, s in good:
        highs, seen = {}, {}
        for key, r in s["comparisons"].get(build, {}).items():
            if "hi" in r:
                b = label(key)[0]
                highs[b] = max(highs.get(b, 0), r["hi"])
                seen[b] = min(seen.get(b, r["detectable"]), r["detectable"])
        tolerance = f"{100 * s['delta']:.0f} %"
        for b, hi in sorted(highs.items()):
            verdict = "no regression" if hi < 1 + s["delta"] else "not shown"
            rows.append([name, b, f"{hi:.3f}", tolerance, verdict, f"{seen[b]:.2f}x"])
    header = (
        "run | backend | largest upper bound of the ratio | tolerance "
        "| at the tolerance | smallest detectable regression"
    )
    return table(f"bench-{build}", header, rows)


def changed_backends(expected, build, base="bessel"):
    """The backends whose exact counters differ between `build` and `base`:
    where the group compiles other programs (the native group: PyTorch)."""
    counters = expected.get("counters", {})
    after, before = counters.get(build, {}), counters.get(base, {})
    return {b for b in after if after[b] != before.get(b)}


def claims(good, name, backends, build="native"):
    """Per benchmark on `backends`: each run's speed-up [lower bound], and
    the claim."""
    lows = {}
    for run, s in good:
        for key, r in s["comparisons"].get(build, {}).items():
            if "hi" in r and label(key)[0] in backends:
                lows.setdefault(key, []).append((run, 1 / r["ratio"], 1 / r["hi"]))
    rows = []
    for key in sorted(lows, key=label):
        seen = lows[key]
        bounds = sorted((lo for _, _, lo in seen), reverse=True)
        claim = f"{bounds[1]:.2f}x" if len(bounds) > 1 and bounds[1] > 1 else "none"
        runs_text = "; ".join(f"{n[:3]}: {s:.2f}x (>= {lo:.2f})" for n, s, lo in seen)
        rows.append([*label(key), runs_text, claim])
    header = (
        "backend | benchmark | case | mode | speed-up (lower bound) per run "
        "| claimed (two runs)"
    )
    return table(name, header, rows)


def _number(value):
    return int(value) if float(value).is_integer() else value


def counter_table(expected, build):
    rows = []
    counters = expected.get("counters", {})
    for backend, shown in SHOWN.items():
        before = counters.get("pristine", {}).get(backend, {})
        after = counters.get(build, {}).get(backend, {})
        deltas = expected.get("deltas", {}).get(build, {}).get(backend, {})
        for case in sorted(after):
            for part, name in map(str.split, shown):
                if part in after[case] and case.endswith("N16"):
                    a, b = before[case][part][name], after[case][part][name]
                    added = deltas[case][part]["added"]
                    ops = ", ".join(f"{k} x {op}[{n}]" for op, n, k in added) or "-"
                    a, b = _number(a), _number(b)
                    rows.append([backend, case, f"{part} {name}", a, b, b - a, ops])
    header = (
        "backend | case | counter | pristine | group | delta "
        "| ops added (x count, [output elements])"
    )
    return table(f"counters-{build}", header, rows)


def native_section(good, expected):
    """The native group's section: its counters, its speed-ups where its
    programs differ from the fix's, and on the other backends."""
    changed = changed_backends(expected, "native")
    others = {
        label(key)[0] for _, s in good for key in s["comparisons"].get("native", {})
    } - changed
    return [
        "## The native kernels: pristine against group/native",
        "",
        counter_table(expected, "native"),
        "",
        "Speed-ups (pristine time / native time) with the lower bound of each "
        "run's interval; the claim is the bound that two runs reach. On the "
        f"backends where the group compiles other programs than group/bessel "
        f"(exact counters: {', '.join(sorted(changed)) or 'none'}):",
        "",
        claims(good, "bench-native", changed) if good else NONE,
        "",
        "On the other backends the two groups run the same programs (equal "
        "counters); their ratios show the noise of the method:",
        "",
        claims(good, "bench-native-unchanged", others) if good else NONE,
        "",
    ]


def power_section(all_runs):
    """The latest `tox -e bench-power` run: can the method see a known
    regression (benchmarks/mutants), and the true ratio beside it."""
    found = [(n, s) for n, s in all_runs if s.get("power")]
    if not found:
        return ["## The method's power", "", "No `tox -e bench-power` run yet.", ""]
    name, s = found[-1]
    held = s["power"].get("status", "held" if s["power"]["held"] else "FAILED")
    return [
        "## The method's power",
        "",
        f"Run {name} (`tox -e bench-power`, {len(found)} such run(s)): {held}. "
        "The slow mutant adds one full-size multiply to group/bessel; its "
        "true ratio is measured in one process, the op on and off.",
        "",
        tables.power_table(s["power"], "bench-power"),
        "",
    ]


def document(root, series, stamp):
    """The aggregate, counting the runs of the patches whose digests are
    `series`, with the `stamp` line of that series."""
    root = Path(root)
    all_runs = runs(root / RUNS)
    good = conclusive(all_runs, series)
    path = root / COUNTERS
    expected = json.loads(path.read_text()) if path.is_file() else {}
    latest = good[-1] if good else None
    parts = [
        "# Benchmarks: what the patch groups cost, and what they save",
        "",
        "Generated by `kbb bench aggregate` from the recorded runs "
        "(benchmarks/runs/, made by `tox -e bench`) and the exact counters "
        "(benchmarks/counters/expected.json, checked by `tox -e counters`); do "
        "not edit. The method: benchmarks/README.md.",
        "",
        "## Runs",
        "",
        index(root / RUNS, prefix="../benchmarks/runs/").split("\n\n", 2)[2],
        f"{len(good)} of {len(all_runs)} runs count: those whose A/A control "
        "held, of the patches as they are now (the earlier asv runs, on "
        "another method, do not).",
        "",
        "## The fix: pristine against group/bessel",
        "",
        "Exact counters (each case at N = 16; the ops added are the same at "
        "N = 8, which the O(C) check of `tox -e counters` asserts):",
        "",
        counter_table(expected, "bessel"),
        "",
        "Timings: the largest upper bound of the fix's time ratios per run and "
        "backend (simultaneous intervals); below 1 + tolerance is no regression.",
        "",
        fix_table(good) if good else NONE,
        "",
        *native_section(good, expected),
        *power_section(all_runs),
        "## Against the backend's own kernel (the peer)",
        "",
    ]
    if latest:
        parts += [
            f"From run {latest[0]}: each build's layer time over the "
            "peer's, with the bandwidth each reaches as a share of the "
            f"triad ({latest[1]['triad_gbps']:.1f} GB/s).",
            "",
            tables.peer_table("bench-peer", latest[1].get("peers", {})),
        ]
    else:
        parts.append(NONE)
    return "\n".join(parts) + "\n\n" + stamp + "\n"


def write(root, series, stamp):
    """Rewrites the runs' index and the aggregate (see `document`)."""
    root = Path(root)
    write_text(root / RUNS / "README.md", index(root / RUNS))
    return write_text(root / OUTPUT, document(root, series, stamp))


def arguments(parser):
    """No options: it reads benchmarks/ and writes OUTPUT."""


def main(ws, args):
    series = builds.series(ws, "keras")
    print(write(ws.root, series, stamp_line(ws, ws.pin("keras"))))
    return 0
