"""kbb.bench.power's verdicts and kbb.bench.tables's smallest detectable
regression, on fixture summaries (no ML framework, no worker)."""

import json
from pathlib import Path

from kbb.bench import power
from kbb.bench import stats
from kbb.bench import tables

ROOT = Path(__file__).parents[2]
KEY = "torch layer.BatchNormLayer.time_forward_backward('511x64', False)"


def summary(slow_lo, null_hi=1.03, aa_outside=()):
    def row(ratio, lo, hi):
        verdict = "regression" if lo > 1.05 else "no regression" if hi < 1.05 else "x"
        return {
            "ratio": ratio,
            "lo": lo,
            "hi": hi,
            "verdict": verdict,
            "detectable": 1.05 * (hi / lo) ** 0.5,
            "processes": [3, 3],
        }

    slow = row(1.12, slow_lo, 1.16)
    return {
        "verdicts": {
            "slow over bessel": slow["verdict"] if slow_lo > 1.05 else "inconclusive",
            "null over bessel": "no regression" if null_hi < 1.05 else "inconclusive",
        },
        "comparisons": {
            "slow over bessel": {KEY: slow},
            "null over bessel": {KEY: row(1.0, 0.97, null_hi)},
        },
        "aa_outside": list(aa_outside),
        "pairs": {
            m: ["bessel", m.split()[0]]
            for m in ("slow over bessel", "null over bessel")
        },
        "rounds": {"dropped": {"2": "load"}},
    }


def raw(slow=1.12):
    """Three rounds (round 2 dropped): slow over bessel by 1.10, 1.14."""
    times = {"bessel": [1.0, 1.0, 5.0], "slow": [1.10, 1.14, 1.0], "null": [1, 1, 1]}
    return {
        "processes": [
            {
                "build": b,
                "round": r,
                "backend": "torch",
                "benchmarks": {KEY[6:]: {"wall": [t[r]] * 3}},
            }
            for b, t in times.items()
            for r in range(3)
        ]
    }


def test_the_mutants_state_what_they_expect():
    found = power.mutants(ROOT)
    assert {n: e for n, (_, e, _) in found.items()} == {
        "null": "no regression",
        "slow": "regression",
    }
    slow = found["slow"][2].read_text()
    assert "KBB_SLOW" in slow and "+                    inputs = inputs *" in slow


def test_power_holds_when_slow_is_called_and_null_and_a_a_are_clean():
    found = power.mutants(ROOT)
    truth = {KEY: {"ratio": 1.11, "lo": 1.09, "hi": 1.13}}
    judged = power.judge(summary(1.08), found, truth, raw())
    assert judged["held"]
    slow = [r for r in judged["rows"] if r["mutant"] == "slow"][0]
    assert slow["true"]["ratio"] == 1.11 and slow["verdict"] == "regression"
    # The paired noise of the kept rounds: log 1.10 and log 1.14.
    assert abs(slow["sd"] - 0.0253) < 1e-3 and 0 <= slow["power"] <= 1
    text = tables.power_table(judged)
    assert "1.110 [1.090, 1.130]" in text and "1 (by design)" in text
    # Slow not seen, or the A/A control off: it fails.
    assert not power.judge(summary(1.01), found, truth, raw())["held"]
    off = summary(1.08, aa_outside=[KEY])
    assert not power.judge(off, found, truth, raw())["held"]


def test_the_smallest_detectable_regression_of_each_kind_of_record(tmp_path):
    new = {
        "comparisons": {"bessel": {}},
        "delta": 0.05,
        "detectable": {"bessel": {"best": 1.1, "median": 1.2}},
    }
    assert tables.detectable_cell(new, tmp_path) == "bessel 1.10x (median 1.20x)"
    # Every recorded summary stores it (runs 012 and 013 since a migration),
    # per row too: what its intervals give.
    for name, s in tables.runs(ROOT / "benchmarks" / "runs"):
        if "comparisons" in s:
            rows = s["comparisons"].items()
            smallest = {n: stats.smallest(r, s["delta"]) for n, r in rows}
            assert s["detectable"] == smallest, name
            for r in (r for _, by_key in rows for r in by_key.values() if "hi" in r):
                assert r["detectable"] == stats.detectable(r["lo"], r["hi"], s["delta"])
    # Every run folder is in the index, each linked to a file it has.
    folders = sorted(p for p in (ROOT / "benchmarks" / "runs").iterdir() if p.is_dir())
    indexed = tables.runs(ROOT / "benchmarks" / "runs")
    assert [n for n, _ in indexed] == [p.name for p in folders]
    for name, s in indexed:
        assert (
            ROOT / "benchmarks" / "runs" / name / s.get("record", "record.md")
        ).is_file()
    (tmp_path / "record.md").write_text("| x | 0.66 [0.40, 1.08] | undecided |\n")
    assert tables.detectable_cell({}, tmp_path).startswith("1.73x")
    asv = {"verdict": "passed (A/A floor 1.41)"}
    assert tables.detectable_cell(asv, tmp_path / "none").startswith("A/A floor 1.41")
    assert json.dumps(tables.detectable_cell({}, tmp_path / "none"))


def test_a_power_run_is_written_with_its_table_first(tmp_path):
    import test_bench

    from kbb.bench import report

    layer = test_bench.LAYER
    times = {b: {layer: 10.0} for b in ("pristine", "aa", "bessel", "null")}
    times["slow"] = {layer: 12.0}
    bases = {"bessel": "pristine", "null": "bessel", "slow": "bessel"}
    raw = test_bench.raw(times, rounds=4, bases=bases)
    raw["meta"]["minutes_total"] = 3.0
    summary = report.analyse(raw)
    summary["power"] = power.judge(summary, power.mutants(ROOT), {}, raw)
    assert summary["power"]["held"]
    folder = tmp_path / "again"
    text = power.write(None, raw, summary, folder).read_text()
    assert text.startswith("# Power run again: held\n\n## Power: the benchmark")
    assert "<!-- table: power -->" in text and "## Against the peer kernel" in text
    assert (folder / "raw.json.gz").is_file() and (folder / "summary.json").is_file()
    # Re-analysed in a recorded run's folder: its number, as when it was kept;
    # the same samples give the same bytes.
    folder = tmp_path / "022-2026-12-05-power"
    text = power.write(None, raw, summary, folder).read_text()
    assert text.startswith("# Power run 022: held\n")
    before = (folder / "raw.json.gz").read_bytes()
    power.write(None, raw, summary, folder)
    assert (folder / "raw.json.gz").read_bytes() == before
