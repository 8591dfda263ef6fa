"""kbb.benchstats: intervals and verdicts on synthetic samples (no ML)."""

import math
import random

from kbb import benchstats
from kbb.benchstats import Interval


def processes(median, spread, rng, n=4, samples=20, between=0.02):
    """n processes of `samples` log-normal samples around median, each
    process shifted by its own factor (the between-process variation)."""
    out = []
    for _ in range(n):
        shift = rng.lognormvariate(0, between)
        out.append(
            [median * shift * rng.lognormvariate(0, spread) for _ in range(samples)]
        )
    return out


def test_statistic_is_the_mean_of_the_process_medians_in_log():
    # mean(log 2, log 8) = log 4
    assert abs(benchstats.statistic([[1.0, 2.0, 4.0], [8.0]]) - math.log(4)) < 1e-12


def test_identical_code_contains_one_and_a_real_slowdown_does_not():
    rng = random.Random(1)
    before = {f"b{i}": processes(1.0, 0.05, rng) for i in range(5)}
    same = {f"b{i}": processes(1.0, 0.05, rng) for i in range(5)}
    slower = {f"b{i}": processes(1.5, 0.05, rng) for i in range(5)}
    assert all(iv.contains_one for iv in benchstats.compare(before, same).values())
    for iv in benchstats.compare(before, slower).values():
        assert iv.lo > 1.2 and iv.verdict() == "regression"


def test_student_quantiles_widen_with_the_comparisons_and_few_processes():
    # Tables: t(0.975) with 3, 6 and 30 degrees of freedom.
    for df, t in ((3, 3.182), (6, 2.447), (30, 2.042)):
        assert abs(benchstats.critical(1, df) - t) < 1e-3
    assert (
        benchstats.critical(1, 6)
        < benchstats.critical(10, 6)
        < benchstats.critical(100, 6)
    )
    assert abs(benchstats.critical(1, 10**6) - 1.960) < 1e-3


def test_a_a_intervals_hold_at_least_as_often_as_they_claim():
    # 4 processes per side, 2 % between processes: 100 A/A pairs, each a
    # single 95 % interval. The normal quantile left out 1 in about 12 %.
    rng = random.Random(5)
    outside = 0
    for t in range(100):
        before = processes(1, 0.03, rng)
        after = processes(1, 0.03, rng)
        boots = [
            benchstats.bootstrap(p, 200, random.Random(t + k))
            for k, p in enumerate((before, after))
        ]
        outside += not benchstats.interval(before, after, 1, *boots).contains_one
    assert outside <= 8


def test_between_process_variation_widens_the_interval():
    # Samples within each process are tight, but processes disagree: a
    # bootstrap over the samples only would call this a difference.
    rng = random.Random(2)
    before = {"b": processes(1.0, 0.01, rng, between=0.10)}
    after = {"b": processes(1.0, 0.01, rng, between=0.10)}
    iv = benchstats.compare(before, after)["b"]
    assert iv.hi / iv.lo > 1.15


def test_one_process_gives_no_interval():
    rng = random.Random(3)
    iv = benchstats.compare(
        {"b": processes(1, 0.1, rng, n=1)}, {"b": processes(1, 0.1, rng, n=1)}
    )
    assert iv == {"b": None}


def test_verdicts_against_the_tolerance():
    assert Interval(0.9, 0.85, 0.95, 0).verdict() == "faster"
    assert Interval(1.0, 0.98, 1.04, 0).verdict(0.05) == "no regression"
    assert Interval(1.0, 0.90, 1.10, 0).verdict(0.05) == "undecided"
    assert Interval(1.3, 1.2, 1.4, 0).verdict(0.05) == "regression"
    assert Interval(0.5, 0.4, 0.625, 0).speedup == (2.0, 1.6)


def test_group_and_run_verdicts():
    ok = {"a": Interval(1.0, 0.98, 1.02, 0), "b": Interval(0.5, 0.4, 0.6, 0)}
    wide = {**ok, "c": Interval(1.0, 0.8, 1.2, 0)}
    bad = {**ok, "d": Interval(1.4, 1.3, 1.5, 0)}
    assert benchstats.group_verdict(ok) == "no regression"
    assert benchstats.group_verdict(wide) == "inconclusive"
    assert benchstats.group_verdict(bad) == "regression"
    aa_ok = {"a": Interval(1.0, 0.97, 1.03, 0)}
    aa_off = {"a": Interval(1.06, 1.02, 1.10, 0)}
    groups = {"bessel": "no regression", "native": "no regression"}
    assert benchstats.run_verdict(aa_ok, groups) == "no regression"
    # The A/A control outside its interval: never "passed".
    assert benchstats.run_verdict(aa_off, groups) == "inconclusive"
    assert benchstats.run_verdict({}, groups) == "inconclusive"
    assert benchstats.run_verdict(aa_ok, {**groups, "x": "regression"}) == "regression"
    assert benchstats.bound(wide) == 1.2


def test_a_loaded_a_a_control_is_caught():
    # The A/A copy ran while the machine was busy: 10 % slower in every
    # process, tightly. Its interval leaves out 1: the run is inconclusive.
    rng = random.Random(4)
    before = {"b": processes(1.0, 0.02, rng, between=0.01)}
    loaded = {"b": processes(1.1, 0.02, rng, between=0.01)}
    intervals = benchstats.compare(before, loaded)
    assert benchstats.aa_outside(intervals) == ["b"]
