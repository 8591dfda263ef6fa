"""kbb.bench's plan, and a run's analysis, record, index and aggregate, on
fixture samples (no ML framework, no worker)."""

import collections
import doctest
import inspect
import json
import random
import sys
from pathlib import Path

import pytest

from kbb import KbbError
from kbb.bench import aggregate
from kbb.bench import record
from kbb.bench import report
from kbb.bench import run
from kbb.bench import stats
from kbb.bench import tables
from kbb.bench import workers

ROOT = Path(__file__).parents[2]
LAYER = "layer.BatchNormLayer.time_forward_backward('32x28x28x64', False)"
PEER = "peer.PeerKernel.time_forward_backward('32x28x28x64', False)"
BLOCK = "block.ConvBlock.time_forward_backward('7x7x2048', False)"
TIMES = {  # ms per build: the fix costs nothing, native halves the layer
    "pristine": {LAYER: 10.0, BLOCK: 50.0, PEER: 4.0},
    "aa": {LAYER: 10.0, BLOCK: 50.0, PEER: 4.0},
    "bessel": {LAYER: 10.0, BLOCK: 50.0, PEER: 4.0},
    "native": {LAYER: 5.0, BLOCK: 45.0, PEER: 4.0},
}


@pytest.fixture(autouse=True)
def fewer_resamples(monkeypatch):
    monkeypatch.setattr(stats, "REPS", 300)


SERIES = {"bessel": "1" * 64, "native": "2" * 64}
STAMP = "<!-- kbb-stamp: keras upto=all series=... pin=... -->"


def raw(times=TIMES, rounds=4, seed=0, load=None, bases=None):
    rng = random.Random(seed)
    processes, shifts = [], {}
    for r, build, backend in workers.plan(list(times), ["torch"], rounds, seed):
        # Each round meets its own load, the same for all its builds.
        shift = shifts.setdefault(r, rng.lognormvariate(0, 0.2))
        shift *= rng.lognormvariate(0, 0.01) * (load or {}).get((r, build), 1)
        benchmarks = {}
        for name, ms in times[build].items():
            wall = [ms / 1e3 * shift * rng.lognormvariate(0, 0.02) for _ in range(20)]
            benchmarks[name] = {
                "wall": wall,
                "cpu": [2 * w for w in wall],
                "model_bytes": 8 * 32 * 28 * 28 * 64 * 4 if name != BLOCK else None,
                "memory_peak": None,
            }
        processes.append(
            {
                "build": build,
                "backend": backend,
                "round": r,
                "benchmarks": benchmarks,
                "triad_gbps": 40.0,
                "triad_gbps_after": 40.0,
            }
        )
    rounds_info = {
        str(r): {"foreign_cores": 0.05, "triad_before": 40.0, "triad_after": 40.0}
        for r in range(rounds)
    }
    for r, _ in load or {}:
        rounds_info[str(r)]["foreign_cores"] = 1.5
    meta = {
        "bases": bases or {"bessel": "pristine", "native": "pristine"},
        "series": SERIES,
        "date": "2026-11-30 08:00 UTC",
        "cpu": "Test CPU",
        "cpu_flags": ["avx2"],
        "cpu_mhz": 2100.0,
        "cpus": 2,
        "threads": 2,
        "rounds": rounds,
        "seed": seed,
        "backends": ["torch"],
        "settings": {},
        "python": "3.11",
        "load_before": [0.1, 0.1, 0.1],
        "load_after": [0.2, 0.2, 0.2],
        "quick": False,
        "minutes": 30.0,
        "commits": {b: f"{i}" * 40 for i, b in enumerate(times)},
    }
    return {"meta": meta, "processes": processes, "rounds": rounds_info}


def test_plan_shuffles_each_round_and_runs_every_pair_once_per_round():
    order = workers.plan(["pristine", "bessel", "aa"], ["jax", "torch"], 3, seed=7)
    assert order == workers.plan(["pristine", "bessel", "aa"], ["jax", "torch"], 3, 7)
    rounds = collections.defaultdict(list)
    for r, build, backend in order:
        rounds[r].append((build, backend))
    assert all(sorted(p) == sorted(rounds[0]) for p in rounds.values())
    assert len(set(map(tuple, rounds.values()))) > 1  # not one fixed order
    # The builds of one backend run in adjacent processes of the round.
    for pairs in rounds.values():
        backends = [k for _, k in pairs]
        assert backends in (["jax"] * 3 + ["torch"] * 3, ["torch"] * 3 + ["jax"] * 3)


def test_one_thread_by_default_on_two_cores():
    assert run.default_threads(2) == run.default_threads(1) == 1
    assert run.default_threads(8) == 8


def test_worker_env_fixes_every_thread_pool(tmp_path):
    env = run.worker_env(tmp_path, "jax", 2, quick=False)
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path)
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "2"
    assert env["KBB_BENCH_THREADS"] == "2" and env["KERAS_BACKEND"] == "jax"
    assert "intra_op_parallelism_threads=2" in env["XLA_FLAGS"]
    # Every worker environment of the workspace builds on threads_env.
    from kbb.bench import counters
    from kbb.bench import threads_env

    assert threads_env(2).items() <= env.items()
    counting = inspect.getsource(counters.measure)
    assert "workers.env(" in counting and "os.cpu_count()" in counting
    native = (ROOT / "src" / "kbb" / "bench" / "models.py").read_text()
    assert "workers.env(" in native and "OMP_NUM_THREADS" not in native


def test_a_worker_is_launched_and_its_record_read(tmp_path):
    out = tmp_path / "out.json"
    script = tmp_path / "w.py"
    script.write_text(
        "import json, os, sys\n"
        "if sys.argv[2] == 'fail': sys.exit('it broke')\n"
        "threads = os.environ['OMP_NUM_THREADS']\n"
        "record = {'keras_file': sys.argv[2], 'threads': threads}\n"
        "open(sys.argv[1], 'w').write(json.dumps(record))\n"
    )
    env = workers.env("torch", 3)
    found = workers.launch([script, out, tmp_path / "k"], env, out, "w", tmp_path)
    assert found["threads"] == "3"
    with pytest.raises(KbbError, match="it broke"):
        workers.launch([script, out, "fail"], env, out, "w on torch")
    with pytest.raises(KbbError, match="take the other keras off PYTHONPATH"):
        workers.launch([script, out, "/elsewhere"], env, out, "w", tmp_path)


def test_the_plan_runs_in_rounds_with_the_meter_around_each():
    class Meter:
        def start(self):
            events.append("start")

        def stop(self):
            events.append("stop")
            return {"foreign_cores": 0.0}

    events = []

    def start(slot, name, group, output):
        events.append((name, group))
        assert output.parent.is_dir()
        return {"slot seen": slot}

    order = workers.plan(["a", "b"], ["x"], 2, seed=1)
    records, met = workers.run_plan(order, start, Meter())
    assert events[0] == "start" and events[3] == "stop" and events[4] == "start"
    assert [r["round"] for r in records] == [0, 0, 1, 1]
    assert [r["slot"] for r in records] == [r["slot seen"] for r in records]
    assert set(met) == {"0", "1"}


def test_analysis_of_a_quiet_run():
    summary = report.analyse(raw())
    assert list(summary["comparisons"]) == ["bessel", "native", "aa"]
    assert summary["verdicts"] == {
        "bessel": "no regression",
        "native": "no regression",
        "aa": "no regression",
    }
    assert summary["verdict"] == "no regression"
    native = summary["comparisons"]["native"][f"torch {LAYER}"]
    assert 0.45 < native["lo"] < native["ratio"] < native["hi"] < 0.55
    assert abs(native["cpu_ratio"] - native["ratio"]) < 1e-9
    peer = summary["peers"]["native"][f"torch {LAYER}"]
    assert 1.1 < peer["ratio"] < 1.4  # 5 ms against the kernel's 4
    # The rounds shift the level by 20 %: the bandwidth follows.
    assert abs(peer["peer_fraction"] / (51380224 / 0.004 / 1e9 / 40) - 1) < 0.25


def test_a_slower_a_a_copy_makes_the_run_inconclusive():
    times = {**TIMES, "aa": {k: 1.15 * v for k, v in TIMES["aa"].items()}}
    summary = report.analyse(raw(times))
    assert summary["aa_outside"] and summary["verdict"] == "inconclusive"


def test_round_to_round_load_cancels_in_the_pairs():
    # Rounds differ by 20 % (raw: the round's shift), builds by 1 % within
    # a round: the paired intervals stay narrow.
    summary = report.analyse(raw(rounds=6))
    row = summary["comparisons"]["bessel"][f"torch {LAYER}"]
    assert row["hi"] / row["lo"] < 1.06
    assert summary["detectable"]["bessel"]["best"] < 1.1


def test_a_loaded_round_is_dropped_and_counted():
    # Round 2's A/A process ran 40 % slower, and others used 1.5 cores.
    load = {(2, "aa"): 1.4}
    summary = report.analyse(raw(rounds=6, load=load))
    assert summary["rounds"]["dropped"] == {"2": "others used 1.50 cores"}
    assert summary["comparisons"]["aa"][f"torch {LAYER}"]["processes"] == [5, 5]
    assert not summary["aa_outside"]
    text = record.markdown(summary, "Run")
    assert "Load gate: 1 of 6 rounds dropped" in text
    # With the gate off, the loaded round widens the A/A intervals.
    data = raw(rounds=6, load=load)
    data["meta"]["max_load"] = 99
    loaded = report.analyse(data)["comparisons"]["aa"][f"torch {LAYER}"]
    kept = summary["comparisons"]["aa"][f"torch {LAYER}"]
    assert loaded["hi"] / loaded["lo"] > 1.1 > kept["hi"] / kept["lo"]


def test_a_group_is_compared_with_its_base_too():
    times = {**TIMES, "native": {**TIMES["native"], BLOCK: 60.0}}
    data = raw(times, bases={"bessel": "pristine", "native": "bessel"})
    summary = report.analyse(data)
    assert summary["pairs"]["native over bessel"] == ["bessel", "native"]
    row = summary["comparisons"]["native over bessel"][f"torch {BLOCK}"]
    assert 1.15 < row["ratio"] < 1.25 and row["verdict"] == "regression"
    assert summary["verdicts"]["native over bessel"] == "regression"
    assert "## group/bessel against group/native" in record.markdown(summary, "R")


def test_a_regression_of_the_fix_is_one():
    times = {**TIMES, "bessel": {**TIMES["bessel"], LAYER: 13.0}}
    summary = report.analyse(raw(times))
    assert summary["verdicts"]["bessel"] == "regression"
    assert summary["verdict"] == "regression"


def test_labels():
    assert tables.label(f"tensorflow {LAYER[:-7]}True)") == (
        "tensorflow",
        "layer, forward + backward",
        "32x28x28x64",
        "XLA",
    )


def test_records_index_and_aggregate(tmp_path, monkeypatch):
    root = tmp_path
    (root / "docs").mkdir()
    runs = root / record.RUNS
    legacy = runs / "001-2026-11-20"
    legacy.mkdir(parents=True)
    (legacy / "meta.json").write_text(
        json.dumps(
            {
                "date": "2026-11-20",
                "clock": "CPU time",
                "verdict": "passed (factor 1.5)",
            }
        )
    )

    # The native group compiles other programs on torch only (its counters
    # differ from group/bessel's there): its rows form table bench-native.
    counters = root / aggregate.COUNTERS
    counters.parent.mkdir(parents=True)
    same = {"layer/static/N8": {"aten": {"ops": 10}}}
    counters.write_text(
        json.dumps(
            {
                "counters": {
                    "bessel": {"jax": same, "torch": same},
                    "native": {"jax": same, "torch": {"layer/static/N8": {}}},
                }
            }
        )
    )

    class Ws:
        def pin(self, target):
            return target

    ws = Ws()
    ws.root = root
    monkeypatch.setattr(record.results, "stamp_line", lambda ws, pin: STAMP)
    for seed in (1, 2):
        data = raw(seed=seed)
        record.save(ws, data, report.analyse(data), "Benchmark run {:03d}")
    assert sorted(p.name for p in runs.iterdir()) == [
        "001-2026-11-20",
        "002-2026-11-30",
        "003-2026-11-30",
        "README.md",
    ]
    assert (runs / "002-2026-11-30" / "raw.json.gz").stat().st_size < 100_000
    index = (runs / "README.md").read_text()
    assert "<!-- table: runs -->" in index and "passed (factor 1.5)" in index
    doc = (root / "docs" / "benchmarks.md").read_text()
    for name in ("bench-bessel", "bench-native", "bench-peer"):
        assert f"<!-- table: {name} -->" in doc
    assert "2 of 3 runs count" in doc
    assert "(exact counters: torch)" in doc
    native = doc.split("<!-- table: bench-native -->")[1].split("\n\n")[0]
    assert "| torch | layer, forward" in native
    # Two runs: the claim is the lower bound both reach.
    claim = [
        line
        for line in doc.splitlines()
        if "layer, forward" in line and "x (>=" in line
    ][0]
    claimed = float(claim.rstrip(" |").rsplit("| ", 1)[1].rstrip("x"))
    assert 1.7 < claimed < 2.0  # below the true 2x: a lower bound
    assert doc.rstrip().endswith(STAMP)
    # Runs of other patches than the series' now do not count.
    other = {**SERIES, "native": "3" * 64}
    doc = aggregate.document(root, other, STAMP)
    assert "0 of 3 runs count" in doc


def test_asv_runs_the_branches_of_the_builds():
    from kbb.bench import builds
    from kbb.workspace import Workspace

    root = ROOT
    text = (root / "asv.conf.json").read_text()
    config = json.loads(
        "\n".join(
            line for line in text.splitlines() if not line.lstrip().startswith("//")
        )
    )
    chain = builds.default_builds(Workspace.find(root))
    assert config["branches"] == [b.ref for b in chain]


def test_the_machine_fields_pyperf_records(tmp_path):
    cpu = tmp_path / "cpu"
    for n, governor in ((0, "performance"), (1, "powersave")):
        (cpu / f"cpu{n}" / "cpufreq").mkdir(parents=True)
        (cpu / f"cpu{n}" / "cpufreq" / "scaling_governor").write_text(governor)
    (cpu / "intel_pstate").mkdir()
    (cpu / "intel_pstate" / "no_turbo").write_text("1\n")
    (cpu / "isolated").write_text("\n")
    assert record.cpu_settings(cpu) == {
        "governor": "performance, powersave",
        "turbo": "off (intel_pstate)",
        "isolated": "none",
    }
    (cpu / "intel_pstate" / "no_turbo").unlink()
    (cpu / "cpufreq").mkdir()
    (cpu / "cpufreq" / "boost").write_text("1")
    (cpu / "isolated").write_text("2-3")
    assert record.cpu_settings(cpu)["turbo"] == "on (cpufreq boost)"
    assert record.cpu_settings(cpu)["isolated"] == "2-3"
    meta = record.machine()
    assert {"governor", "turbo", "isolated", "cpu", "date"} <= set(meta)
    # A new run's record states them; an old one's renders as it did.
    data = raw()
    summary = report.analyse(data)
    assert "governor" not in record.markdown(summary, "Run")
    data["meta"].update(governor="performance", turbo="n/a", isolated="none")
    text = record.markdown(report.analyse(data), "Run")
    assert "governor performance, turbo n/a, isolated CPUs none;" in text


def test_doctests_of_the_small_helpers():
    from kbb import bench
    from kbb.bench import builds
    from kbb.bench import decisions

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import worker

    for module in (bench, builds, decisions, record, report, stats, tables, worker):
        assert doctest.testmod(module).failed == 0, module.__name__


def decision_samples(rounds, kernel=0.5, seed=3):
    """{config: {"PATH KIND CASE": [[seconds] per round]}}: each round meets
    its own load, the same on the three paths of its process."""
    rng = random.Random(seed)
    levels = [rng.lognormvariate(0, 0.3) for _ in range(rounds)]
    cases = ["layer 64x64", "layer 32x28x28x64", "train 256x64"]
    paths = {"kernel": kernel, "composite": 1.0, "aa": 1.0}
    return {
        "torch": {
            f"{path} {case}": [
                [1e-3 * f * lvl * rng.lognormvariate(0, 0.01) for _ in range(5)]
                for lvl in levels
            ]
            for path, f in paths.items()
            for case in cases
        }
    }


def test_decisions_from_an_earlier_runs_samples(tmp_path, capsys):
    from argparse import Namespace

    from kbb.bench import decisions

    old = tmp_path / "old.json"  # the first runs' files: samples only
    old.write_text(json.dumps(decision_samples(6)))
    args = Namespace(samples=old, record=False)
    assert decisions.main(None, args) == 0
    out = capsys.readouterr().out
    assert "<!-- table: native-decisions -->" in out
    assert "| torch | layer 64x64 | " in out and "| faster |" in out
    assert "torch: no minimum size (no interval says slower below 32768" in out
    # A kernel 30 % slower below 32768 values brings the minimum size back.
    found = decisions.intervals(decision_samples(6, kernel=1.3))
    assert "the minimum size comes back" in decisions.decisions(found)[0]
    # A loaded round is left out by the gate; two rounds give no interval.
    new = tmp_path / "new.json"
    loaded = {"foreign_cores": 1.5}
    data = {"samples": decision_samples(3), "rounds": {"1": loaded}}
    new.write_text(json.dumps(data))
    assert decisions.main(None, Namespace(samples=new, record=False)) == 0
    out = capsys.readouterr().out
    assert "torch: inconclusive (fewer than 3 rounds)" in out
    assert "| n/a | n/a | n/a |" in out


def test_the_minimum_leaves_out_the_calls_other_work_slowed():
    # Interference: in each process 60 % of the calls of the
    # fix's build (not the others') take 1.5 to 3 times as long. The
    # median sees it; the minimum, the run's default statistic, does not.
    data = raw(rounds=8, seed=4)
    rng = random.Random(9)
    for p in data["processes"]:
        for v in p["benchmarks"].values():
            if p["build"] == "bessel":
                v["wall"] = [
                    w * rng.uniform(1.5, 3) if rng.random() < 0.6 else w
                    for w in v["wall"]
                ]
    key = f"torch {LAYER}"
    median = report.analyse(data)["comparisons"]["bessel"][key]
    data["meta"]["statistic"] = "min"
    minimum = report.analyse(data)["comparisons"]["bessel"][key]
    assert median["ratio"] > 1.2 and abs(minimum["ratio"] - 1) < 0.03
    text = record.markdown(report.analyse(data), "Run")
    assert "wall clock, the min of each process's samples" in text
