"""Timing statistics: paired rounds, joint intervals, verdicts (the method
and its checks: benchmarks/README.md, "Statistics").

The data of one benchmark in one build is {round: samples}, one process
per round. A process's statistic is the minimum of its samples by default
(`--statistic median` before run 022): the noise within a process is other
work slowing some calls down, which the minimum leaves out (Chen & Revels,
Robust benchmarking in noisy environments, arXiv:1608.04295, 2016). The
log ratio is the mean over the rounds of the paired differences, its
standard error their sd over sqrt(R) (Box, Hunter & Hunter, Statistics
for Experimenters, 2nd ed., 2005, ch. 3). The intervals of one comparison
and backend are simultaneous: a single-step studentized max-t bootstrap
over the rounds (Westfall & Young, Resampling-Based Multiple Testing,
1993, sect. 2.6; Romano & Wolf, Econometrica 73, 2005; resampling the top
level of nested data: Davison & Hinkley, Bootstrap Methods and their
Application, 1997, sect. 3.8 and ch. 5) whose quantile, with so few
rounds, is taken as a per-benchmark level kept between ALPHA / m and
ALPHA, for Student's quantile with R - 1 degrees of freedom; Bonferroni
below BOOT_ROUNDS rounds.
"""

import math
import random
import statistics
from dataclasses import dataclass

ALPHA = 0.05
STATISTICS = {"min": min, "median": statistics.median}  # `--statistic`
# The largest slowdown called "no regression": below what a user notices
# in a training step (benchmarks/README.md).
DELTA = 0.05
REPS = 2000
SEED = 20260
MIN_ROUNDS = 3  # fewer paired rounds give no interval
BOOT_ROUNDS = 8  # fewer have too few distinct resamples (4 rounds: 35)


def t_tail(t, df):
    """P(T > t) of Student's t (scipy.stats.t).

    >>> round(t_tail(2.0, 10), 4)
    0.0367
    """
    from scipy.stats import t as student  # kept out of `kbb --help`

    return float(student.sf(t, df))


def t_quantile(level, df):
    """Student's two-sided quantile: P(|T| > t) = level.

    >>> round(t_quantile(0.05, 6), 3)
    2.447
    """
    from scipy.stats import t as student

    return float(student.isf(level / 2, df))


def critical(m, df, alpha=ALPHA):
    """Student's quantile of the two-sided Bonferroni level 1 - alpha / m."""
    return t_quantile(alpha / max(m, 1), df)


def mean_interval(logs, m=1, alpha=ALPHA):
    """(ratio, lo, hi): the geometric mean of the ratios whose logs are
    `logs`, with Student's interval of level 1 - alpha, simultaneous over m
    of them (Bonferroni); lo and hi are nan with one value.

    >>> [round(v, 3) for v in mean_interval([0.1, 0.2, 0.3])]
    [1.221, 0.953, 1.566]
    """
    mean = statistics.fmean(logs)
    n = len(logs)
    half = critical(m, n - 1, alpha) * _se(logs) if n > 1 else math.nan
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def process_statistic(samples):
    return statistics.median(math.log(s) for s in samples)


def statistic(rounds):
    """Mean over processes (rounds) of the median log sample."""
    values = rounds.values() if isinstance(rounds, dict) else rounds
    return statistics.fmean(process_statistic(s) for s in values)


def differences(before, after):
    """[log ratio of each round both sides have], by round."""
    common = sorted(set(before) & set(after))
    return [process_statistic(after[r]) - process_statistic(before[r]) for r in common]


def _se(diffs):
    return max(statistics.stdev(diffs), 1e-12) / math.sqrt(len(diffs))


def joint_level(diffs, alpha=ALPHA, reps=None, rng=None):
    """The per-benchmark two-sided level at which the intervals of `diffs`
    ({name: differences over the same rounds}) hold together with
    probability 1 - alpha (module doc)."""
    m = len(diffs)
    rounds = {len(d) for d in diffs.values()}
    if m < 2 or len(rounds) != 1:
        return alpha / max(m, 1)
    (n,) = rounds
    if n < BOOT_ROUNDS:
        return alpha / m
    reps, rng = reps or REPS, rng or random.Random(SEED)
    means = {k: statistics.fmean(d) for k, d in diffs.items()}
    maxima = []
    for _ in range(reps):
        idx = [rng.randrange(n) for _ in range(n)]
        resampled = {k: [d[i] for i in idx] for k, d in diffs.items()}
        deviations = (
            abs(statistics.fmean(x) - means[k]) / _se(x) for k, x in resampled.items()
        )
        maxima.append(max(deviations))
    q = sorted(maxima)[min(reps - 1, int((1 - alpha) * reps))]
    return min(alpha, max(alpha / m, 2 * t_tail(q, n - 1)))


@dataclass(frozen=True)
class Interval:
    """A ratio (after / before) with its simultaneous interval."""

    ratio: float
    lo: float
    hi: float
    se: float  # standard error of the log ratio

    def verdict(self, delta=DELTA):
        """faster (hi < 1), no regression (hi < 1 + delta), regression
        (lo > 1 + delta), else undecided."""
        if self.hi < 1:
            return "faster"
        if self.hi < 1 + delta:
            return "no regression"
        if self.lo > 1 + delta:
            return "regression"
        return "undecided"

    @property
    def contains_one(self):
        return self.lo <= 1 <= self.hi


def compare(before, after, reps=None, alpha=ALPHA):
    """{name: Interval} of each benchmark in both ({name: {round:
    samples}}), the intervals simultaneous over the names. A benchmark with
    fewer than MIN_ROUNDS paired rounds has no interval (None)."""
    names = sorted(set(before) & set(after))
    diffs = {n: differences(before[n], after[n]) for n in names}
    usable = {n: d for n, d in diffs.items() if len(d) >= MIN_ROUNDS}
    level = joint_level(usable, alpha, reps) if usable else alpha
    out = {n: None for n in names}
    for name, d in usable.items():
        estimate, se = statistics.fmean(d), _se(d)
        t = t_quantile(level, len(d) - 1)
        lo, hi = math.exp(estimate - t * se), math.exp(estimate + t * se)
        out[name] = Interval(math.exp(estimate), lo, hi, se)
    return out


def detectable(lo, hi, delta=DELTA):
    """The smallest true ratio that an interval as wide as [lo, hi] calls
    a regression at even odds: (1 + delta) times its half-width factor."""
    return (1 + delta) * math.sqrt(hi / lo)


def smallest(rows, delta=DELTA):
    """{"best", "median"}: the smallest regression that a comparison's rows
    (a summary's, with "lo" and "hi" where they have an interval) could
    have seen at even odds, on its best benchmark and the median over
    them; None without an interval.

    >>> found = smallest({"a": {"lo": 0.9, "hi": 1.1}, "b": {"ratio": 1.0}})
    >>> round(found["best"], 3), round(found["median"], 3)
    (1.161, 1.161)
    """
    values = sorted(
        detectable(r["lo"], r["hi"], delta) for r in rows.values() if "lo" in r
    )
    if not values:
        return None
    return {"best": values[0], "median": statistics.median(values)}


def from_rows(rows):
    """{key: Interval} of a summary's rows that have one."""
    return {
        k: Interval(r["ratio"], r["lo"], r["hi"], 0)
        for k, r in rows.items()
        if "lo" in r
    }


def group_verdict(intervals, delta=DELTA):
    """ "no regression" when every benchmark is faster or no regression, a
    "regression" when one is, else "inconclusive"."""
    verdicts = [iv.verdict(delta) for iv in intervals.values() if iv]
    if not verdicts:
        return "inconclusive"
    if "regression" in verdicts:
        return "regression"
    if "undecided" in verdicts:
        return "inconclusive"
    return "no regression"


def aa_outside(intervals):
    """The A/A benchmarks whose interval leaves out 1."""
    return sorted(n for n, iv in intervals.items() if iv and not iv.contains_one)


def run_verdict(aa_intervals, group_verdicts):
    """The run's verdict: inconclusive when the A/A control fails (or was
    not measured), else the worst of the groups'."""
    if not aa_intervals or aa_outside(aa_intervals):
        return "inconclusive"
    for verdict in ("regression", "inconclusive"):
        if verdict in group_verdicts.values():
            return verdict
    return "no regression"


def bound(intervals):
    """The largest upper bound of a group's ratios: what "costs at most"
    the run can state."""
    highs = [iv.hi for iv in intervals.values() if iv]
    return max(highs) if highs else math.nan


def power(ratio, sd, rounds, m=1, delta=DELTA, alpha=ALPHA):
    """About how often a true `ratio` is called a regression, with `sd`
    the standard deviation of a round's log ratio, `rounds` rounds and m
    benchmarks (Bonferroni: the joint level is at most that wide)."""
    t = critical(m, rounds - 1, alpha)
    z = (math.log(ratio) - math.log(1 + delta)) / (sd / math.sqrt(rounds)) - t
    return 0.5 * math.erfc(-z / math.sqrt(2))
