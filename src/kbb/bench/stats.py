"""Timing statistics: paired rounds, joint intervals, verdicts.

kbb.bench runs every build of a round in adjacent processes (in an order
shuffled anew in each round), so a round's builds meet the same load. The
data of one benchmark in one build is {round: samples} (seconds, wall
clock), one process per round. Hence:

- the statistic of a process is the median of its log samples (the noise
  within a process enters through it only, not on top of the rounds');
- the difference of a round is after's statistic minus before's, and the
  estimate of the log ratio is the mean of these differences over the
  rounds both sides have; its standard error is their standard deviation
  over sqrt(R): a paired design (e.g. Box, Hunter & Hunter, Statistics for
  Experimenters, 2nd ed., 2005, ch. 3);
- the intervals of the m benchmarks of one comparison and backend hold
  together (simultaneous, level 1 - ALPHA): a single-step max-t bootstrap
  over the rounds (resample the rounds, all benchmarks with the same
  rounds, so their correlation is kept; Westfall & Young, Resampling-Based
  Multiple Testing, 1993, sect. 2.6; Romano & Wolf, Econometrica 73, 2005)
  gives the quantile q of the largest standardized deviation. The rounds
  are few (5 to 20), where a bootstrap quantile is too narrow, so q is
  taken as a per-benchmark level (2 P(Z > q)), kept between ALPHA / m
  (Bonferroni, when the benchmarks are independent) and ALPHA (when they
  are one), and the interval uses Student's quantile of that level with
  R - 1 degrees of freedom. The bootstrap resamples are studentized (each
  resample's own standard error), whose tails are Student-like. Below
  BOOT_ROUNDS rounds, Bonferroni. tests/tooling/test_benchstats.py simulates its
  coverage and its power.

Verdicts (Interval.verdict) of a benchmark, with its interval [lo, hi] of
the ratio and the tolerance DELTA: `faster` (hi < 1), `no regression` (hi
< 1 + DELTA), `regression` (lo > 1 + DELTA), else `undecided`. A group is
"no regression" when all its benchmarks are faster or no regression, a
"regression" when one is, else "inconclusive". The A/A control (pristine
again, in processes of its own) must contain 1 in every interval, or the
run is "inconclusive" whatever the groups show. What a run could see:
`detectable`, the smallest true ratio whose interval would clear 1 + DELTA
at even odds (the estimate on the truth), from the interval's width.
"""

import math
import random
import statistics
from dataclasses import dataclass

ALPHA = 0.05
# The largest slowdown called "no regression": 5 %, below what a user
# notices in a training step. Not within reach of a shared 2-core CPU:
# runs 012 and 013 (the earlier unpaired method) had half-widths of
# +-43 % to +-74 %; `detectable` states what each run reached.
DELTA = 0.05
REPS = 2000
SEED = 20260
MIN_ROUNDS = 3  # fewer paired rounds give no interval
# Fewer rounds than this have too few distinct resamples for the max-t
# bootstrap (4 rounds: 35): Bonferroni then.
BOOT_ROUNDS = 8


def _betacf(a, b, x):
    """The continued fraction of the incomplete beta function (Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def t_tail(t, df):
    """P(T > t) of Student's t with df degrees of freedom, t >= 0."""
    x = df / (df + t * t)
    a, b = df / 2, 0.5
    log_front = (
        math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + a * math.log(x)
        + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        ibeta = math.exp(log_front) * _betacf(a, b, x) / a
    else:
        ibeta = 1 - math.exp(log_front) * _betacf(b, a, 1 - x) / b
    return ibeta / 2


def t_quantile(level, df):
    """Student's two-sided quantile: P(|T| > t) = level."""
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_tail(mid, df) > level / 2 else (lo, mid)
    return hi


def critical(m, df, alpha=ALPHA):
    """Student's quantile of the two-sided Bonferroni level 1 - alpha / m."""
    return t_quantile(alpha / max(m, 1), df)


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
    probability 1 - alpha: studentized max-t bootstrap over the rounds,
    kept between alpha / m and alpha (module doc)."""
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
        maxima.append(
            max(
                abs(statistics.fmean(x := [d[i] for i in idx]) - means[k]) / _se(x)
                for k, d in diffs.items()
            )
        )
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

    @property
    def speedup(self):
        """(speed-up, its lower bound): before / after."""
        return 1 / self.ratio, 1 / self.hi


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


def group_verdict(intervals, delta=DELTA):
    """no regression / regression / inconclusive over a group's intervals."""
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
