"""kbb.stats: paired intervals, joint levels, verdicts and power, on
synthetic samples (no ML)."""

import math
import random

import pytest

from kbb.bench import stats
from kbb.bench.stats import Interval


@pytest.fixture(autouse=True)
def fewer_resamples(monkeypatch):
    monkeypatch.setattr(stats, "REPS", 400)


def rounds(rng, names, n, ratio=1.0, paired=0.03, load=0.3, common=0.0, spread=0.02):
    """({name: {round: samples}} before, after): each round meets its own
    load (shared by both sides: `load`), each process its own noise
    (`paired`), and the benchmarks of one process a common part (`common`:
    they are correlated)."""
    before, after = {n_: {} for n_ in names}, {n_: {} for n_ in names}
    for r in range(n):
        level = rng.lognormvariate(0, load)
        for side, factor in ((before, 1.0), (after, ratio)):
            shared = rng.gauss(0, common)
            for name in names:
                shift = math.exp(shared + rng.gauss(0, paired))
                side[name][str(r)] = [
                    level * factor * shift * rng.lognormvariate(0, spread)
                    for _ in range(10)
                ]
    return before, after


def test_statistic_is_the_mean_of_the_process_medians_in_log():
    assert abs(stats.statistic([[1.0, 2.0, 4.0], [8.0]]) - math.log(4)) < 1e-12


def test_the_round_load_cancels_in_the_pairs():
    # 30 % between rounds, 2 % within a pair: the interval sees the 2 %.
    before, after = rounds(random.Random(1), ["b"], 8, ratio=1.10, paired=0.02)
    iv = stats.compare(before, after)["b"]
    assert 1.05 < iv.lo < iv.ratio < iv.hi < 1.16
    assert iv.verdict() == "regression"


def test_student_quantiles():
    for df, t in ((3, 3.182), (6, 2.447), (30, 2.042)):
        assert abs(stats.critical(1, df) - t) < 1e-3
    assert abs(stats.t_quantile(0.05, 10**6) - 1.960) < 1e-3


def test_the_joint_level_lies_between_bonferroni_and_none():
    rng = random.Random(2)
    names = [f"b{i}" for i in range(10)]
    # Independent benchmarks: near Bonferroni (0.005); one common cause:
    # near a single interval's 0.05.
    alone = rounds(rng, names, 12, paired=0.03)
    together = rounds(rng, names, 12, paired=0.003, common=0.03)
    level = {}
    for key, (before, after) in (("alone", alone), ("together", together)):
        diffs = {n: stats.differences(before[n], after[n]) for n in names}
        level[key] = stats.joint_level(diffs)
    assert 0.005 <= level["alone"] < 0.012
    assert 0.015 < level["together"] <= 0.05


def test_a_a_intervals_hold_together_as_often_as_they_claim():
    # 200 A/A comparisons of 6 correlated benchmarks over 8 rounds: all six
    # intervals contain 1 in at least 95 % of them, less the simulation's
    # error (3 of 200 at most above 5 %).
    rng = random.Random(5)
    names = [f"b{i}" for i in range(6)]
    failed = 0
    for _ in range(200):
        before, after = rounds(rng, names, 8, paired=0.02, common=0.02)
        ivs = stats.compare(before, after, reps=100)
        failed += bool(stats.aa_outside(ivs))
    assert failed <= 13


def test_power_of_a_ten_percent_regression():
    # What bench-power needs: 3 layer benchmarks, each 10 % slower, noise of
    # 2 % per process: each benchmark's interval clears 1.05 (a regression)
    # in at least 80 % of runs with 8 rounds, not with 5. The normal
    # approximation `power` (at Bonferroni's level) is the lower one.
    rng = random.Random(6)
    names = ["a", "b", "c"]
    sd = 0.02 * math.sqrt(2)
    for n in (5, 8):
        called = 0
        for _ in range(40):
            before, after = rounds(rng, names, n, ratio=1.10, paired=0.02)
            ivs = stats.compare(before, after, reps=200)
            called += sum(iv.verdict() == "regression" for iv in ivs.values())
        expected = stats.power(1.10, sd, n, 3)
        assert expected - 0.1 < called / 120 < expected + 0.3
        assert (called / 120 >= 0.8) == (n == 8)


def test_few_rounds_give_no_interval():
    before, after = rounds(random.Random(3), ["b"], 2)
    assert stats.compare(before, after) == {"b": None}


def test_verdicts_against_the_tolerance():
    assert Interval(0.9, 0.85, 0.95, 0).verdict() == "faster"
    assert Interval(1.0, 0.98, 1.04, 0).verdict(0.05) == "no regression"
    assert Interval(1.0, 0.90, 1.10, 0).verdict(0.05) == "undecided"
    assert Interval(1.3, 1.2, 1.4, 0).verdict(0.05) == "regression"


def test_the_smallest_detectable_regression():
    # [0.9, 1.1]: half-width factor sqrt(1.1 / 0.9) = 1.106.
    assert abs(stats.detectable(0.9, 1.1, 0.05) - 1.05 * 1.1055) < 1e-3
    # Run 013's widest bessel interval, [0.487, 1.659]: 1.94x at even odds.
    assert 1.9 < stats.detectable(0.487, 1.659) < 1.95


def test_group_and_run_verdicts():
    ok = {"a": Interval(1.0, 0.98, 1.02, 0), "b": Interval(0.5, 0.4, 0.6, 0)}
    wide = {**ok, "c": Interval(1.0, 0.8, 1.2, 0)}
    bad = {**ok, "d": Interval(1.4, 1.3, 1.5, 0)}
    assert stats.group_verdict(ok) == "no regression"
    assert stats.group_verdict(wide) == "inconclusive"
    assert stats.group_verdict(bad) == "regression"
    aa_ok = {"a": Interval(1.0, 0.97, 1.03, 0)}
    aa_off = {"a": Interval(1.06, 1.02, 1.10, 0)}
    groups = {"bessel": "no regression", "native": "no regression"}
    assert stats.run_verdict(aa_ok, groups) == "no regression"
    assert stats.run_verdict(aa_off, groups) == "inconclusive"
    assert stats.run_verdict({}, groups) == "inconclusive"
    assert stats.run_verdict(aa_ok, {**groups, "x": "regression"}) == "regression"
    assert stats.bound(wide) == 1.2


def test_a_loaded_a_a_copy_is_caught():
    # The A/A copy ran 10 % slower in every round: its interval leaves out 1.
    before, after = rounds(random.Random(4), ["b"], 6, ratio=1.10, paired=0.01)
    assert stats.aa_outside(stats.compare(before, after)) == ["b"]
