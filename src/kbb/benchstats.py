"""Timing statistics: hierarchical bootstrap intervals and the verdicts.

The data of one benchmark in one build is a list of processes, each a list
of samples (seconds, wall clock). Processes are the independent units: a
process compiles its own programs, lands on its own memory and meets its
own load, so samples within one are correlated. Hence:

- the statistic of a build is the mean over its processes of the median
  of log(sample) within each process;
- its spread comes from a hierarchical bootstrap (resample the processes
  with replacement, then the samples within each resampled process), the
  builds resampled independently;
- the interval of the log ratio (build / pristine) is the estimate plus or
  minus t times the standard error. The error is the bootstrap's, each
  side's variance scaled by P / (P - 1) (the bootstrap of a mean of P
  values is short by that factor), and t is Student's quantile with
  P_before + P_after - 2 degrees of freedom, for a two-sided
  Bonferroni-corrected level 1 - ALPHA / m over the m benchmarks of one
  comparison (benchreport: of one backend), so that all m intervals hold
  together with probability
  1 - ALPHA (simultaneous intervals). With few processes, the normal
  quantile would hold far less often than it claims (a simulation of 4
  processes per side: 12 % outside at a nominal 5 %).

Verdicts (VERDICTS) of a benchmark, with its interval [lo, hi] of the ratio
and the tolerance DELTA: `faster` (hi < 1), `no regression` (hi < 1 +
DELTA), `regression` (lo > 1 + DELTA), else `undecided`. A patch group is
"no regression" when all its benchmarks are faster or no regression, a
"regression" when one is, else "inconclusive". The A/A control (the
pristine build again, in processes of its own) must contain 1 in every
interval; when one does not, the run measured something other than the
code (load, placement, drift) and its verdict is "inconclusive" whatever
the groups show. A speed claim (`speedup`) is the lower bound 1 / hi; it
stands when two independent runs put it above the target (benchagg).
"""

import math
import random
import statistics
from dataclasses import dataclass

ALPHA = 0.05
# The largest slowdown called "no regression". 5 %: below what a user can
# notice in a training step, and within reach of a quiet 2-core machine's
# intervals (their half-width was 1 % to 4 % in interleaved runs of
# this suite; the run reports the bound it reached).
DELTA = 0.05
REPS = 1000
SEED = 20260


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


def critical(m, df, alpha=ALPHA):
    """Student's quantile of the two-sided Bonferroni level 1 - alpha / m."""
    tail = alpha / (2 * max(m, 1))
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_tail(mid, df) > tail else (lo, mid)
    return hi


def statistic(processes):
    """Mean over processes of the median log sample."""
    return statistics.fmean(
        statistics.median(math.log(s) for s in samples) for samples in processes
    )


def bootstrap(processes, reps=None, rng=None):
    """The statistic of `reps` hierarchical resamples."""
    reps, rng = reps or REPS, rng or random.Random(SEED)
    logs = [[math.log(s) for s in samples] for samples in processes]
    out = []
    for _ in range(reps):
        chosen = rng.choices(logs, k=len(logs))
        out.append(
            statistics.fmean(
                statistics.median(rng.choices(p, k=len(p))) for p in chosen
            )
        )
    return out


@dataclass(frozen=True)
class Interval:
    """A ratio (after / before) with its simultaneous interval."""

    ratio: float
    lo: float
    hi: float
    se: float  # bootstrap standard error of the log ratio

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


def interval(before, after, m=1, boot_before=None, boot_after=None):
    """The Interval of after / before (lists of processes of samples), one
    of m simultaneous intervals."""
    boot_before = boot_before or bootstrap(before)
    boot_after = boot_after or bootstrap(after, rng=random.Random(SEED + 1))
    estimate = statistic(after) - statistic(before)
    variance = sum(
        statistics.variance(boot) * len(p) / (len(p) - 1)
        for boot, p in ((boot_before, before), (boot_after, after))
    )
    se = math.sqrt(variance)
    z = critical(m, len(before) + len(after) - 2)
    return Interval(
        math.exp(estimate), math.exp(estimate - z * se), math.exp(estimate + z * se), se
    )


def compare(before, after, reps=None):
    """{name: Interval} of each benchmark in both {name: processes}, with
    the Bonferroni level of that many comparisons. A benchmark with fewer
    than two processes on a side has no interval (None): one process says
    nothing of the variation between processes."""
    reps = reps or REPS
    names = sorted(set(before) & set(after))
    usable = [n for n in names if len(before[n]) > 1 and len(after[n]) > 1]
    out = {n: None for n in names}
    for i, name in enumerate(usable):
        rb, ra = random.Random(SEED + 2 * i), random.Random(SEED + 2 * i + 1)
        out[name] = interval(
            before[name],
            after[name],
            len(usable),
            bootstrap(before[name], reps, rb),
            bootstrap(after[name], reps, ra),
        )
    return out


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
