"""Paired differences over seeds, in plain Python (no numpy, no scipy),
so that `tox -e tooling` tests them with fixture data.

A pair is one (backend, seed): both builds trained from the same seed. The
interval is Student's t over the pairs' differences (fix - pristine).
"""

import math
import statistics

from study.config import BUILDS

# Scores of a run (one number each), and per-BN-layer figures.
METRICS = ("accuracy", "nll", "ece", "agreement", "train_mode_accuracy")
LAYER_METRICS = (
    "moment_inference",
    "moment_inference_train",
    "moment_training",
    "abs_inference_train",
    "abs_training",
)


def _betacf(a, b, x):
    """Continued fraction of the regularized incomplete beta (modified
    Lentz's method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betai(a, b, x):
    """Regularized incomplete beta I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return max(0.0, min(1.0, x))
    log_front = (
        math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + a * math.log(x)
        + b * math.log(1.0 - x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The p-quantile of Student's t with df degrees of freedom (bisection)."""
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1e4
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2.0


def interval(values, level):
    """Mean and two-sided t-interval of the mean: a dict mean, low, high,
    pairs. With one value the interval is unknown (None)."""
    k = len(values)
    mean = statistics.fmean(values)
    if k < 2:
        return {"mean": mean, "low": None, "high": None, "pairs": k}
    half = t_quantile(0.5 + level / 2.0, k - 1) * statistics.stdev(values)
    half /= math.sqrt(k)
    return {"mean": mean, "low": mean - half, "high": mean + half, "pairs": k}


def sign(iv):
    """Where the interval lies: 'above 0', 'below 0', '0 inside', or
    'identical' (every difference 0)."""
    if iv["low"] is None:
        return "one pair"
    if iv["low"] == iv["high"] == 0:
        return "identical"
    if iv["low"] > 0:
        return "above 0"
    if iv["high"] < 0:
        return "below 0"
    return "0 inside"


def _mean_layers(rows):
    """Per-layer means of a list of per-layer lists."""
    return [statistics.fmean(col) for col in zip(*rows, strict=True)]


def summarize(results, by):
    """One row per group of runs (`by`: keys of a run, e.g. ("model",
    "batch_size")), in the runs' order: each build's means, and the paired
    differences fix - pristine of accuracy, nll and ece with their
    t-intervals over the pairs (backend, seed) of the group."""
    old, new = BUILDS
    level = results["settings"]["interval"]
    groups = {}
    for run in results["runs"]:
        group = groups.setdefault(tuple(run[k] for k in by), {})
        group.setdefault((run["backend"], run["seed"]), {})[run["build"]] = run
    rows = []
    for key, pairs in groups.items():
        pairs = [p for p in pairs.values() if old in p and new in p]
        if not pairs:
            continue
        row = dict(zip(by, key, strict=True))
        row["n"] = pairs[0][new]["n"]
        row["pairs"] = len(pairs)
        for metric in METRICS:
            row[metric] = {
                b: statistics.fmean(p[b][metric] for p in pairs) for b in BUILDS
            }
            diffs = [p[new][metric] - p[old][metric] for p in pairs]
            row["d_" + metric] = interval(diffs, level)
        for metric in LAYER_METRICS:
            row[metric] = {
                b: _mean_layers([p[b][metric] for p in pairs]) for b in BUILDS
            }
        row["variance_ratio"] = _mean_layers(
            [
                [
                    f / o
                    for f, o in zip(
                        p[new]["moving_variance_mean"],
                        p[old]["moving_variance_mean"],
                        strict=True,
                    )
                ]
                for p in pairs
            ]
        )
        row["bessel"] = [n / (n - 1) for n in row["n"]]
        rows.append(row)
    return rows


def pairing_summary(results):
    """Per backend: pairs compared, how many ended with bit-identical
    trainable weights, the largest absolute difference, and how many pairs
    gave the same training-mode figures (which never read the moving
    statistics)."""
    old, new = BUILDS
    out = {}
    for item in results["pairing"]:
        row = out.setdefault(
            item["backend"],
            {"pairs": 0, "identical": 0, "max_abs_diff": 0.0, "same_training": 0},
        )
        row["pairs"] += 1
        row["identical"] += item["max_abs_diff"] == 0
        row["max_abs_diff"] = max(row["max_abs_diff"], item["max_abs_diff"])
    keys = ("backend", "model", "batch_size", "seed")
    runs = {}
    for run in results["runs"]:
        runs.setdefault(tuple(run[k] for k in keys), {})[run["build"]] = run
    for pair in runs.values():
        if old in pair and new in pair:
            same = all(
                pair[old][k] == pair[new][k]
                for k in ("train_mode_accuracy", "moment_training", "abs_training")
            )
            out[pair[new]["backend"]]["same_training"] += same
    return out
