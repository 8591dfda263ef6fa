"""Markdown of the benchmark runs: labels, numbers, named tables (quoted
by name: kbb.markdown), and the index of the runs (benchmarks/runs/
README.md, and the runs table of docs/benchmarks.md).
"""

import json
import re
import statistics
from pathlib import Path

from kbb import markdown
from kbb.bench import builds
from kbb.bench import stats

_NAME = re.compile(r"^(\w+) (\w+)\.(\w+)\.(\w+)\((.*)\)$")
WHAT = {
    "BatchNormLayer": "layer, forward + backward",
    "BatchNormInference": "layer, inference",
    "BatchNormTrainStep": "train step, BN first",
    "ConvBlock": "Conv-BN-ReLU, forward + backward",
    "PeerKernel": "peer kernel, forward + backward",
}
MODES = {("tensorflow", "False"): "graph", ("tensorflow", "True"): "XLA"}
MODES.update({("jax", "True"): "jit", ("torch", "False"): "eager"})


def label(key):
    """(backend, what, case, mode) of "backend module.Class.time_x(params)"."""
    match = _NAME.match(key)
    if not match:
        return "", key, "", ""
    backend, _, cls, _, params = match.groups()
    parts = [p.strip().strip("'") for p in params.split(",")]
    mode = MODES.get((backend, parts[-1]), parts[-1])
    case = ", ".join(parts[:-1])
    if cls == "BatchNormInference":
        case = f"batch {case}, 14x14x256"
    if cls == "ConvBlock":
        case = f"{case} (stage)"
    return backend, WHAT.get(cls, cls), case, mode


def branch(build):
    """
    >>> branch("aa"), branch("pristine"), branch("bessel")
    ('aa (pristine again)', 'pristine', 'group/bessel')
    """
    if build == builds.AA:
        return "aa (pristine again)"
    return build if build == builds.PRISTINE else f"group/{build}"


def ms(seconds):
    return f"{seconds * 1e3:.3g}"


def ratio(row):
    """
    >>> ratio({"ratio": 1.0, "lo": 0.95, "hi": 1.05}), ratio({"ratio": 2})
    ('1.000 [0.950, 1.050]', '2.000')
    """
    text = f"{row['ratio']:.3f}"
    if "lo" in row:
        text += f" [{row['lo']:.3f}, {row['hi']:.3f}]"
    return text


def percent(x):
    return f"{100 * x:.0f} %" if x is not None else "n/a"


def table(name, header, rows):
    """A named markdown table (kbb.markdown.table; `header` "a | b" or a
    list), without the blank line that follows it there."""
    return "\n".join(markdown.table(header, rows, name)[:-1])


def comparison_table(name, rows, quick=False):
    """Per benchmark: times, ratio with its interval, verdict, CPU ratio."""
    body = []
    for key in sorted(rows, key=label):
        r = rows[key]
        verdict = r.get("verdict", "smoke run" if quick else "n/a (< 3 rounds)")
        row = [*label(key), ms(r["before_s"]), ms(r["after_s"]), ratio(r), verdict]
        body.append([*row, f"{r['cpu_ratio']:.3f}", percent(r.get("fraction"))])
    header = (
        "backend | benchmark | case | mode | pristine ms | ms | ratio [interval] "
        "| verdict | CPU-time ratio | % of triad"
    )
    return table(name, header, body)


def peer_table(name, peers):
    """Each build's layer against the peer kernel, with the bandwidths."""
    names = [b for b in peers if peers[b]]
    if not names:
        return "No peer kernel ran (JAX has none; TensorFlow's takes 4D only)."
    first = peers[names[0]]
    header = ["backend", "case", "mode", "peer ms", "peer % of triad"]
    for b in names:
        header += [f"{branch(b)} / peer", f"{branch(b)} % of triad"]
    body = []
    for key in sorted(first, key=label):
        backend, _, case, mode = label(key)
        peer = [ms(first[key]["before_s"]), percent(first[key].get("peer_fraction"))]
        row = [backend, case, mode, *peer]
        for b in names:
            r = peers[b].get(key)
            row += [ratio(r), percent(r.get("fraction"))] if r else ["", ""]
        body.append(row)
    return table(name, header, body)


def _num(value, fmt="{:.3f}"):
    return fmt.format(value) if value is not None else "-"


def power_table(power, name="power", power_at=1.10):
    """The mutants' verdicts with the true ratio beside them (markdown)."""
    rows = []
    for r in power["rows"]:
        t = r["true"]
        true = f"{t['ratio']:.3f} [{t['lo']:.3f}, {t['hi']:.3f}]" if t else None
        timed = f"{r['ratio']:.3f} [{_num(r['lo'])}, {_num(r['hi'])}]"
        what = " ".join(label(r["benchmark"])[1:3])
        row = [r["mutant"], what, true or "1 (by design)", timed, r["verdict"]]
        row += [_num(r["detectable"], "{:.2f}x"), _num(r.get("sd"))]
        group = f"{r['group']} (expected {r['expect']})"
        rows.append([*row, _num(r.get("power"), "{:.0%}"), group])
    header = (
        "mutant over bessel | benchmark | true ratio, in process [95 %] "
        "| timed ratio [joint interval] | verdict | smallest detectable "
        f"| paired noise (sd) | power at {power_at:.2f} | group verdict"
    )
    return table(name, header, rows)


_INTERVAL = re.compile(r"(\d+\.\d+) \[(\d+\.\d+), (\d+\.\d+)\]")
_FLOOR = re.compile(r"floor (\d+\.\d+)")


def detectable_cell(s, folder):
    """The smallest regression a run could have seen, as a table cell: from
    its summary, from the intervals its record.md shows (runs kept as
    meta.json), or the A/A floor of the earlier asv runs' factor gate."""
    if "record" in s:
        return "n/a (two paths of one build)"
    if "comparisons" in s:
        cells = []
        for name, found in s["detectable"].items():
            if found and name != "aa":
                best, median = found["best"], found["median"]
                cells.append(f"{name} {best:.2f}x (median {median:.2f}x)")
        return ", ".join(cells) or "none (no interval)"
    record = folder / "record.md"
    text = record.read_text() if record.is_file() else ""
    intervals = [(float(lo), float(hi)) for _, lo, hi in _INTERVAL.findall(text)]
    if intervals:
        values = [stats.detectable(lo, hi) for lo, hi in intervals]
        median = statistics.median(values)
        return f"{min(values):.2f}x (median {median:.2f}x; from record.md's intervals)"
    floor = _FLOOR.search(s.get("verdict", ""))
    if floor:
        return f"A/A floor {floor[1]} (asv factor gate, no interval)"
    return "n/a (no interval recorded)"


# The file each kind of run folder keeps; for the runs without a record.md
# (`kbb bench models`, tests/keras/test_native_equivalence.py), what they
# compare: two paths of one build, not builds.
RECORDS = {
    "summary.json": None,
    "meta.json": None,
    "models.json": "whole training steps, kernel against composed path",
    "equivalence.json": "outputs, kernel against composed path",
}


def runs(folder):
    """[(name, summary or meta)] of the run folders, in order; a run without
    a record.md as {"meta", "verdict": what it compares, "record": its file}."""
    out = []
    for path in sorted(p for p in Path(folder).glob("[0-9]*") if p.is_dir()):
        for name, compared in RECORDS.items():
            if (path / name).is_file():
                found = json.loads((path / name).read_text())
                if compared:
                    meta = {"clock": "n/a", **found["meta"]}
                    found = {"meta": meta, "verdict": compared, "record": name}
                out.append((path.name, found))
                break
    return out


def _index_row(folder, name, s, prefix):
    meta = s.get("meta", s)
    commits = ", ".join(c[:8] for c in meta.get("commits", {}).values()) or "n/a"
    cpu = f"{meta.get('cpu', '?')} ({', '.join(meta.get('cpu_flags', [])) or '-'})"
    mhz = meta.get("cpu_mhz")
    clock = meta.get("clock", "wall") + (f", {mhz:.0f} MHz" if mhz else "")
    record = s.get("record", "record.md")
    row = [f"[{name}]({prefix}{name}/{record})", meta.get("date", "?"), commits]
    row += [cpu, clock, meta.get("threads", "?"), meta.get("onednn", "not recorded")]
    return row + [s.get("verdict", "?"), detectable_cell(s, Path(folder) / name)]


def index(folder, prefix=""):
    header = (
        "run | date | commits | CPU (flags) | clock | threads | oneDNN | verdict "
        "| smallest detectable regression"
    )
    rows = [_index_row(folder, n, s, prefix) for n, s in runs(folder)]
    text = (
        "# Benchmark runs\n\nGenerated by `kbb bench aggregate` from the run "
        "folders (`tox -e bench` adds one); do not edit. The aggregate: "
        "[docs/benchmarks.md](../../docs/benchmarks.md).\n\n"
    )
    return text + table("runs", header, rows) + "\n"
