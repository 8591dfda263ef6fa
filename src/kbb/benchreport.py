"""One benchmark run: its samples turned into intervals, verdicts, tables.

`analyse(raw)` takes what kbb.bench recorded ({"meta", "processes"}: one
record per worker process, with its build, round and samples) and returns
the run's summary (JSON): per comparison (each patch group and the A/A
control against pristine) a row per benchmark with the ratio of the wall
clock, its simultaneous interval and verdict (benchstats), and the ratio
of the CPU time beside it; the peer table (each build's layer against the
backend's own kernel) with the bandwidth each reaches as a fraction of the
triad; the verdict of the run. `markdown(summary)` is its record.
"""

import math
import re
import statistics

from kbb import benchbuilds
from kbb import benchstats

PRISTINE, AA = benchbuilds.PRISTINE, benchbuilds.AA
PEER = re.compile(r"^(\w+) peer\.PeerKernel\.time_forward_backward(\(.*\))$")
LAYER = "{} layer.BatchNormLayer.time_forward_backward{}"


def by_build(processes, clock="wall"):
    """{build: {"backend name": [samples of each process]}}."""
    data = {}
    for p in processes:
        for name, values in p["benchmarks"].items():
            key = f"{p['backend']} {name}"
            data.setdefault(p["build"], {}).setdefault(key, []).append(values[clock])
    return data


def model_bytes(processes):
    return {
        f"{p['backend']} {name}": v["model_bytes"]
        for p in processes
        for name, v in p["benchmarks"].items()
        if v.get("model_bytes")
    }


def seconds(processes_samples):
    return math.exp(benchstats.statistic(processes_samples))


def _row(before, after, cpu_before, cpu_after, interval, delta):
    row = {
        "before_s": seconds(before),
        "after_s": seconds(after),
        "ratio": seconds(after) / seconds(before),
        "cpu_ratio": seconds(cpu_after) / seconds(cpu_before),
        "processes": [len(before), len(after)],
    }
    if interval:
        row.update(lo=interval.lo, hi=interval.hi, verdict=interval.verdict(delta))
    return row


def families(before, after):
    """{key: Interval}: one Bonferroni family per backend (the claims are
    per backend: "the fix costs at most X on JAX")."""
    intervals = {}
    for backend in sorted({key.split(" ", 1)[0] for key in after}):
        prefix = backend + " "
        mine_before = {k: v for k, v in before.items() if k.startswith(prefix)}
        mine_after = {k: v for k, v in after.items() if k.startswith(prefix)}
        intervals.update(benchstats.compare(mine_before, mine_after))
    return intervals


def comparison(data, cpu, build, delta, reference=PRISTINE):
    """{key: row} of `build` against `reference`."""
    before, after = data[reference], data[build]
    intervals = families(before, after)
    return {
        key: _row(
            before[key],
            after[key],
            cpu[reference][key],
            cpu[build][key],
            interval,
            delta,
        )
        for key, interval in intervals.items()
    }


def _verdict_of(rows, delta):
    intervals = {
        k: benchstats.Interval(r["ratio"], r["lo"], r["hi"], 0)
        for k, r in rows.items()
        if "lo" in r
    }
    return intervals, benchstats.group_verdict(intervals, delta)


def peers(data, cpu, bytes_, triad, delta):
    """{build: {layer key: row}}: each build's layer against the peer
    kernel (timed in the pristine processes), with the bandwidths."""
    pooled, pooled_cpu = {}, {}
    for build in data:
        for key, processes in data[build].items():
            match = PEER.match(key)
            if match:
                layer = LAYER.format(*match.groups())
                pooled.setdefault(layer, []).extend(processes)
                pooled_cpu.setdefault(layer, []).extend(cpu[build][key])
    out = {}
    for build in data:
        if build == AA:
            continue
        own = {k: v for k, v in data[build].items() if k in pooled}
        own_cpu = {k: cpu[build][k] for k in own}
        rows = comparison(
            {"peer": pooled, build: own},
            {"peer": pooled_cpu, build: own_cpu},
            build,
            delta,
            reference="peer",
        )
        for key, row in rows.items():
            size = bytes_.get(key)
            if size and triad:
                row["peer_fraction"] = size / row["before_s"] / 1e9 / triad
                row["fraction"] = size / row["after_s"] / 1e9 / triad
        out[build] = rows
    return out


def _ordered(data):
    """The builds in benchbuilds' order (pristine, the groups), aa last."""
    order = [*benchbuilds.REFS, AA]
    return {b: data[b] for b in sorted(data, key=lambda b: (order + [b]).index(b))}


def analyse(raw, delta=benchstats.DELTA, quick=False):
    processes = raw["processes"]
    data, cpu = _ordered(by_build(processes)), by_build(processes, "cpu")
    triads = [p[k] for p in processes for k in ("triad_gbps", "triad_gbps_after")]
    triad = statistics.median(triads) if triads else None
    summary = {
        "meta": raw["meta"],
        "delta": delta,
        "alpha": benchstats.ALPHA,
        "correction": "Bonferroni",
        "triad_gbps": triad,
        "comparisons": {},
        "verdicts": {},
    }
    sizes = model_bytes(processes)
    for build in data:
        if build != PRISTINE:
            rows = comparison(data, cpu, build, delta)
            for key, row in rows.items():
                if sizes.get(key) and triad:
                    row["fraction"] = sizes[key] / row["after_s"] / 1e9 / triad
            summary["comparisons"][build] = rows
            intervals, verdict = _verdict_of(rows, delta)
            summary["verdicts"][build] = verdict
            if build == AA:
                summary["aa_outside"] = benchstats.aa_outside(intervals)
    summary["peers"] = peers(data, cpu, sizes, triad, delta)
    if quick:
        summary["verdict"] = "smoke"
    else:
        aa_rows = summary["comparisons"].get(AA, {})
        aa_intervals, _ = _verdict_of(aa_rows, delta)
        groups = {b: v for b, v in summary["verdicts"].items() if b != AA}
        summary["verdict"] = benchstats.run_verdict(aa_intervals, groups)
    return summary
