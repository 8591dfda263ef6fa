"""`analyse(raw)`: the summary (JSON) of what `kbb bench run` recorded
({"meta", "processes", "rounds"}): the rounds the load gate dropped; per
comparison (each build against pristine, each group against the one it
stacks on: "native over bessel") a row per benchmark with the paired
ratio, its interval and verdict (kbb.bench.stats), the CPU-time ratio and
the share of the triad's bandwidth; each build's layer against the peer.
"""

import math
import re
import statistics

from kbb.bench import builds
from kbb.bench import stats
from kbb.bench import workers

PRISTINE, AA = builds.PRISTINE, builds.AA
PEER = re.compile(r"^(\w+) peer\.PeerKernel\.time_forward_backward(\(.*\))$")
LAYER = "{} layer.BatchNormLayer.time_forward_backward{}"


def by_build(processes, clock="wall", drop=()):
    """{build: {"backend name": {round: samples}}}, without the rounds in
    `drop`."""
    data = {}
    for p in processes:
        if str(p["round"]) in drop:
            continue
        for name, values in p["benchmarks"].items():
            key = f"{p['backend']} {name}"
            by_round = data.setdefault(p["build"], {}).setdefault(key, {})
            by_round[str(p["round"])] = values[clock]
    return data


def located(data, statistic):
    """`data` with each process's samples reduced to the one value of
    `statistic` (stats.STATISTICS), which every later step then reads.

    >>> located({"b": {"k": {"0": [3.0, 1.0, 2.0]}}}, "min")
    {'b': {'k': {'0': [1.0]}}}
    """
    if statistic == "median":
        return data
    reduce = stats.STATISTICS[statistic]
    return {
        build: {k: {r: [reduce(s)] for r, s in v.items()} for k, v in by_key.items()}
        for build, by_key in data.items()
    }


def model_bytes(processes):
    return {
        f"{p['backend']} {name}": v["model_bytes"]
        for p in processes
        for name, v in p["benchmarks"].items()
        if v.get("model_bytes")
    }


def _paired(before, after):
    d = stats.differences(before, after)
    return math.exp(statistics.fmean(d)) if d else math.nan


def _row(before, after, cpu_before, cpu_after, interval, delta):
    row = {"before_s": math.exp(stats.statistic(before))}
    row["after_s"] = math.exp(stats.statistic(after))
    row.update(ratio=_paired(before, after), cpu_ratio=_paired(cpu_before, cpu_after))
    row["processes"] = [len(before), len(after)]
    if interval:
        row.update(lo=interval.lo, hi=interval.hi, verdict=interval.verdict(delta))
        row["detectable"] = stats.detectable(interval.lo, interval.hi, delta)
    return row


def families(before, after):
    """{key: Interval}: one simultaneous family per backend (the claims are
    per backend: "the fix costs at most X on JAX")."""
    intervals = {}
    for backend in sorted({key.split(" ", 1)[0] for key in after}):
        prefix = backend + " "
        mine_before = {k: v for k, v in before.items() if k.startswith(prefix)}
        mine_after = {k: v for k, v in after.items() if k.startswith(prefix)}
        intervals.update(stats.compare(mine_before, mine_after))
    return intervals


def comparison(data, cpu, build, delta, reference=PRISTINE):
    """{key: row} of `build` against `reference`."""
    before, after = data[reference], data[build]
    intervals = families(before, after)
    return {
        k: _row(before[k], after[k], cpu[reference][k], cpu[build][k], iv, delta)
        for k, iv in intervals.items()
    }


def peers(data, cpu, bytes_, triad, delta):
    """{build: {layer key: row}}: each build's layer against the peer
    kernel (timed in the pristine processes of the same rounds), with the
    bandwidths."""
    pooled, pooled_cpu = {}, {}
    for build in data:
        for key, rounds in data[build].items():
            match = PEER.match(key)
            if match:
                layer = LAYER.format(*match.groups())
                pooled.setdefault(layer, {}).update(rounds)
                pooled_cpu.setdefault(layer, {}).update(cpu[build][key])
    out = {}
    for build in data:
        if build == AA:
            continue
        own = {k: v for k, v in data[build].items() if k in pooled}
        own_cpu = {k: cpu[build][k] for k in own}
        data_, cpu_ = {"peer": pooled, build: own}, {"peer": pooled_cpu, build: own_cpu}
        rows = comparison(data_, cpu_, build, delta, reference="peer")
        for key, row in rows.items():
            size = bytes_.get(key)
            if size and triad:
                row["peer_fraction"] = size / row["before_s"] / 1e9 / triad
                row["fraction"] = size / row["after_s"] / 1e9 / triad
        out[build] = rows
    return out


def _ordered(data, meta):
    """The builds in the run's order (pristine, the groups), aa last."""
    order = [PRISTINE, *(b for b in meta.get("commits", {}) if b != AA), AA]
    return {b: data[b] for b in sorted(data, key=lambda b: (order + [b]).index(b))}


def pairs(data, meta):
    """{comparison: (before, after)}: each build against pristine, then
    each against the build it stacks on (when that is not pristine)."""
    out = {b: (PRISTINE, b) for b in data if b != PRISTINE}
    for build, base in meta.get("bases", {}).items():
        if base not in (None, PRISTINE) and base in data and build in data:
            out[f"{build} over {base}"] = (base, build)
    return out


def analyse(raw, delta=stats.DELTA, quick=False):
    processes, meta = raw["processes"], raw["meta"]
    max_load = meta.get("max_load", workers.MAX_LOAD)
    drop = workers.dropped(raw.get("rounds", {}), max_load)
    statistic = meta.get("statistic", "median")
    data = located(_ordered(by_build(processes, drop=drop), meta), statistic)
    cpu = located(by_build(processes, "cpu", drop), statistic)
    triads = [p[k] for p in processes for k in ("triad_gbps", "triad_gbps_after")]
    triad = statistics.median(triads) if triads else None
    run = len({str(p["round"]) for p in processes})
    rounds = dict(run=run, dropped=drop, max_load=max_load, triad_min=workers.TRIAD_MIN)
    correction = "max-t bootstrap over paired rounds"
    summary = dict(meta=meta, delta=delta, alpha=stats.ALPHA, correction=correction)
    summary.update(triad_gbps=triad, rounds=rounds)
    summary.update({k: {} for k in ("pairs", "comparisons", "verdicts", "detectable")})
    sizes = model_bytes(processes)
    for name, (before, after) in pairs(data, meta).items():
        rows = comparison(data, cpu, after, delta, reference=before)
        for key, row in rows.items():
            if sizes.get(key) and triad:
                row["fraction"] = sizes[key] / row["after_s"] / 1e9 / triad
        summary["pairs"][name] = [before, after]
        summary["comparisons"][name] = rows
        intervals = stats.from_rows(rows)
        summary["verdicts"][name] = stats.group_verdict(intervals, delta)
        summary["detectable"][name] = stats.smallest(rows, delta)
        if name == AA:
            summary["aa_outside"] = stats.aa_outside(intervals)
    summary["peers"] = peers(data, cpu, sizes, triad, delta) if PRISTINE in data else {}
    if quick:
        summary["verdict"] = "smoke"
    else:
        aa_intervals = stats.from_rows(summary["comparisons"].get(AA, {}))
        groups = {b: v for b, v in summary["verdicts"].items() if b != AA}
        summary["verdict"] = stats.run_verdict(aa_intervals, groups)
    return summary
