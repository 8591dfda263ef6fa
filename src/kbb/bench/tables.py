"""Markdown of the benchmark runs: labels, numbers, named tables.

A table that other documents may quote (README, docs, `kbb pr`) is
preceded by a line `<!-- table: NAME -->`.
"""

import re

from kbb.bench import builds

_NAME = re.compile(r"^(\w+) (\w+)\.(\w+)\.(\w+)\((.*)\)$")
WHAT = {
    "BatchNormLayer": "layer, forward + backward",
    "BatchNormInference": "layer, inference",
    "BatchNormTrainStep": "train step, BN first",
    "ConvBlock": "Conv-BN-ReLU, forward + backward",
    "PeerKernel": "peer kernel, forward + backward",
}
MODES = {
    ("tensorflow", "False"): "graph",
    ("tensorflow", "True"): "XLA",
    ("jax", "True"): "jit",
    ("torch", "False"): "eager",
}


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
    if build == builds.AA:
        return "aa (pristine again)"
    return build if build == builds.PRISTINE else f"group/{build}"


def ms(seconds):
    return f"{seconds * 1e3:.3g}"


def ratio(row):
    text = f"{row['ratio']:.3f}"
    if "lo" in row:
        text += f" [{row['lo']:.3f}, {row['hi']:.3f}]"
    return text


def percent(x):
    return f"{100 * x:.0f} %" if x is not None else "n/a"


def table(name, header, rows):
    """Markdown table with its name line; rows of strings."""
    lines = [f"<!-- table: {name} -->"] if name else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(map(str, r)) + " |" for r in rows)
    return "\n".join(lines)


def comparison_table(name, rows, quick=False):
    """Per benchmark: times, ratio with its interval, verdict, CPU ratio."""
    header = [
        "backend",
        "benchmark",
        "case",
        "mode",
        "pristine ms",
        "ms",
        "ratio [interval]",
        "verdict",
        "CPU-time ratio",
        "% of triad",
    ]
    body = []
    for key in sorted(rows, key=label):
        r = rows[key]
        verdict = r.get("verdict", "smoke run" if quick else "n/a (< 3 rounds)")
        body.append(
            [
                *label(key),
                ms(r["before_s"]),
                ms(r["after_s"]),
                ratio(r),
                verdict,
                f"{r['cpu_ratio']:.3f}",
                percent(r.get("fraction")),
            ]
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
        row = [
            backend,
            case,
            mode,
            ms(first[key]["before_s"]),
            percent(first[key].get("peer_fraction")),
        ]
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
        true = (
            f"{t['ratio']:.3f} [{t['lo']:.3f}, {t['hi']:.3f}]" if t else "1 (by design)"
        )
        interval = f"[{_num(r['lo'])}, {_num(r['hi'])}]"
        rows.append(
            [
                r["mutant"],
                " ".join(label(r["benchmark"])[1:3]),
                true,
                f"{r['ratio']:.3f} {interval}",
                r["verdict"],
                _num(r["detectable"], "{:.2f}x"),
                _num(r.get("sd")),
                _num(r.get("power"), "{:.0%}"),
                f"{r['group']} (expected {r['expect']})",
            ]
        )
    header = [
        "mutant over bessel",
        "benchmark",
        "true ratio, in process [95 %]",
        "timed ratio [joint interval]",
        "verdict",
        "smallest detectable",
        "paired noise (sd)",
        f"power at {power_at:.2f}",
        "group verdict",
    ]
    return table(name, header, rows)
