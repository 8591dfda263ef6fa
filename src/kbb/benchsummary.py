"""The markdown summary of an asv comparison, and the gate on it.

Input: the text of `asv compare --split --factor F BEFORE AFTER` (the A/B
run), and optionally that of the A/A run (the pristine tree against itself,
same settings), whose ratios are the noise floor. Output: one markdown
table per asv section (improved, same, worse, not comparable), with the
ratio, the A/A ratio of the same benchmark and, for the exact counters
(track_ benchmarks), the difference after - before, exact when asv's
result files are given (`asv compare` rounds some columns).

    python -m kbb.benchsummary COMPARE [--aa AA_COMPARE] [--factor F]
        [--gate all|counters] [--title T] [--note LINE ...] [-o FILE]
        [--results DIR --before HASH --after HASH]

The exit status is 1 when the gate finds a regression: with `--gate all`,
any benchmark that asv marks worse (`+`) or newly failing (`!`); with
`--gate counters` (smoke runs, whose single timings are noise), only those
among the track_ benchmarks and the failures. When the gate flags the A/A
control too, a flagged timing counts only beyond the A/A noise floor, and
the status is 3 (inconclusive) if none does (see `verdict`).
"""

import argparse
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SECTIONS = {
    "Benchmarks that have improved:": "improved",
    "Benchmarks that have stayed the same:": "same",
    "Benchmarks that have got worse:": "worse",
    "Benchmarks that are not comparable:": "not comparable",
    "All benchmarks:": "all",
}
TITLES = {
    "improved": "Improved",
    "same": "Not significantly changed",
    "worse": "Worse",
    "not comparable": "Not comparable (benchmark code changed)",
    "all": "All benchmarks",
}


@dataclass
class Row:
    section: str
    mark: str
    before: str
    after: str
    ratio: str
    name: str
    env: str

    @property
    def key(self):
        return self.name, self.env

    @property
    def kind(self):
        method = self.name.split("(", 1)[0].rsplit(".", 1)[-1]
        return method.split("_", 1)[0]

    @property
    def backend(self):
        match = re.search(r"KERAS_BACKEND([A-Za-z]+)", self.env)
        return match.group(1) if match else ""

    def ratio_value(self):
        try:
            return float(self.ratio.lstrip("~"))
        except ValueError:
            return math.nan


def parse(text):
    """The rows of the tables that `asv compare` printed."""
    rows, section = [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped in SECTIONS:
            section = SECTIONS[stripped]
            continue
        if section is None or not stripped.startswith("|"):
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if len(cells) != 5 or cells[0] == "Change":
            continue
        if all(c and set(c) <= {"-", ":"} for c in cells):
            continue
        mark, before, after, ratio, name = cells
        env = ""
        match = re.fullmatch(r"(.*\)|[^\s\[]+) \[(.+)\]", name)
        if match:
            name, env = match.groups()
        rows.append(Row(section, mark, before, after, ratio, name, env))
    return rows


def exact_values(results_dir, commit_hash):
    """{(name(params), "machine/env"): value} from asv's result files.

    `asv compare` prints values through tabulate, which rounds a column of
    plain numbers to 6 significant digits: the exact counters come from
    here instead.
    """
    values = {}
    for path in sorted(Path(results_dir).glob("*/*.json")):
        data = json.loads(path.read_text())
        if data.get("commit_hash") != commit_hash or "results" not in data:
            continue
        env = f"{path.parent.name}/{data['env_name']}"
        columns = data["result_columns"]
        for name, entry in data["results"].items():
            entry = dict(zip(columns, entry, strict=False))  # track_: no stats
            params = entry.get("params") or []
            results = entry["result"]
            if not params:
                values[name, env] = results[0] if results else None
                continue
            combos = itertools.product(*params)
            for combo, value in zip(combos, results, strict=True):
                values[f"{name}({', '.join(combo)})", env] = value
    return values


def _exact(value):
    if value is None or value != value:
        return None
    return int(value) if float(value).is_integer() else value


def noise_floor(rows):
    """The largest A/A ratio (or its inverse) of the time_ benchmarks."""
    ratios = [r.ratio_value() for r in rows if r.kind == "time"]
    ratios = [max(r, 1 / r) for r in ratios if r == r and r > 0]
    return max(ratios) if ratios else math.nan


def regressions(rows, gate="all"):
    """The rows that fail the gate."""
    bad = [r for r in rows if r.mark in ("+", "!")]
    if gate == "counters":
        bad = [r for r in bad if r.mark == "!" or r.kind == "track"]
    return bad


def verdict(rows, aa_rows=None, gate="all"):
    """("passed" | "failed" | "inconclusive", real, unresolved).

    With an A/A control that the gate flags too, its noise floor exceeds the
    factor: a timing flagged in the A/B comparison is a real regression only
    if its ratio also exceeds that floor, and is left unresolved otherwise
    (the run is then inconclusive). Failures and counters are always real.
    """
    bad = regressions(rows, gate)
    floor = 0.0
    if aa_rows and regressions(aa_rows, gate):
        floor = noise_floor(aa_rows)
    real = [
        r for r in bad if r.mark == "!" or r.kind != "time" or r.ratio_value() > floor
    ]
    unresolved = [r for r in bad if r not in real]
    if real:
        return "failed", real, unresolved
    if floor:
        return "inconclusive", real, unresolved
    return "passed", real, unresolved


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def _delta(row, exact):
    if row.kind != "track":
        return ""
    if row.key in exact[0] and row.key in exact[1]:
        before, after = (_exact(e[row.key]) for e in exact)
    else:
        before, after = _number(row.before), _number(row.after)
    if before is None or after is None:
        return ""
    delta = after - before
    return f"{delta:+d}" if isinstance(delta, int) else f"{delta:+.6g}"


def _values(row, exact):
    """The before and after cells: exact for the counters when known."""
    if row.kind == "track" and row.key in exact[0] and row.key in exact[1]:
        values = [_exact(e[row.key]) for e in exact]
        return [
            shown if value is None else str(value)
            for value, shown in zip(values, (row.before, row.after), strict=True)
        ]
    return [row.before, row.after]


def _name(row):
    # module.Class.method(params) -> Class.method(params)
    head, paren, params = row.name.partition("(")
    return ".".join(head.split(".")[-2:]) + paren + params


def markdown(
    rows, aa_rows=None, factor=None, gate="all", title=None, notes=(), exact=None
):
    """The summary; `exact`: (before, after) maps from `exact_values`."""
    aa = {r.key: r for r in aa_rows or ()}
    exact = exact or ({}, {})
    lines = [f"# {title or 'Benchmarks'}", ""]
    lines += list(notes)
    if notes:
        lines.append("")
    if factor:
        lines.append(f"- Gate factor: {factor} (`asv compare --factor {factor}`).")
    if aa_rows:
        floor = noise_floor(aa_rows)
        lines.append(
            f"- A/A noise floor: {floor:.2f} (largest ratio, or inverse, of "
            "the time_ benchmarks between two copies of the pristine tree)."
        )
    status, real, unresolved = verdict(rows, aa_rows, gate)
    if aa_rows:
        flagged = len(regressions(aa_rows, gate))
        lines.append(
            f"- A/A control: the gate flags {flagged} of its benchmark(s)"
            + (" (the floor is above the factor)." if flagged else ".")
        )
    lines.append(
        f"- Gate ({gate}): {status.upper()}: {len(real)} regression(s)"
        + (
            f", {len(unresolved)} flagged timing(s) within the A/A noise floor."
            if unresolved
            else "."
        )
    )
    lines.append("")
    lines.append(
        "Ratio = after / before of asv's medians; `~` marks a ratio whose "
        "difference asv does not find significant. For the exact counters "
        "(track_), Δ = after - before."
    )
    backends = any(r.backend for r in rows)
    for section in ("worse", "improved", "same", "not comparable", "all"):
        selected = [r for r in rows if r.section == section]
        if not selected:
            continue
        lines += ["", f"## {TITLES[section]} ({len(selected)})", ""]
        header = ["benchmark"] + (["backend"] if backends else [])
        header += ["before", "after", "ratio"]
        header += ["A/A ratio"] if aa_rows else []
        header += ["Δ (track_)"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for r in sorted(selected, key=lambda r: (r.backend, r.name)):
            cells = [f"`{_name(r)}`"] + ([r.backend] if backends else [])
            cells += [*_values(r, exact), f"{r.mark} {r.ratio}".strip()]
            if aa_rows:
                cells.append(aa[r.key].ratio if r.key in aa else "")
            cells.append(_delta(r, exact))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kbb.benchsummary", description=__doc__)
    parser.add_argument("compare", help="output of asv compare --split")
    parser.add_argument("--aa", help="output of asv compare --split of the A/A run")
    parser.add_argument("--factor", type=float)
    parser.add_argument("--gate", choices=("all", "counters"), default="all")
    parser.add_argument("--title")
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--results", help="asv results folder, for exact counters")
    parser.add_argument("--before", help="commit hash of the first column")
    parser.add_argument("--after", help="commit hash of the second column")
    parser.add_argument("-o", "--output", help="markdown file (default: stdout)")
    args = parser.parse_args(argv)
    with open(args.compare) as f:
        rows = parse(f.read())
    aa_rows = None
    if args.aa:
        with open(args.aa) as f:
            aa_rows = parse(f.read())
    exact = None
    if args.results and args.before and args.after:
        exact = tuple(exact_values(args.results, h) for h in (args.before, args.after))
    text = markdown(rows, aa_rows, args.factor, args.gate, args.title, args.note, exact)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    status, real, unresolved = verdict(rows, aa_rows, args.gate)
    for r in real:
        print(f"regression: {r.mark} {r.ratio} {r.name} [{r.env}]", file=sys.stderr)
    return {"passed": 0, "failed": 1, "inconclusive": 3}[status]


if __name__ == "__main__":
    raise SystemExit(main())
