"""Paired differences over seeds, in plain Python (no numpy; Student's t
is kbb.bench.stats'), so that `tox -e tooling` tests them with fixture data.

A pair is one (backend, seed): both builds trained from the same seed. The
interval is Student's t over the pairs' differences (fix - pristine).
"""

import math
from statistics import fmean
from statistics import stdev

from kbb.bench.stats import t_quantile
from kbb.study.config import BUILDS

# Scores of a run (one number each), and per-BN-layer figures.
METRICS = ("accuracy", "nll", "ece", "agreement", "train_mode_accuracy")
LAYER_METRICS = (
    "moment_inference",
    "moment_inference_train",
    "moment_training",
    "abs_inference_train",
    "abs_training",
)
# What training mode gives, which never reads the moving statistics.
TRAINING_MODE = ("train_mode_accuracy", "moment_training", "abs_training")


def interval(values, level):
    """Mean and two-sided t-interval of the mean: a dict mean, low, high,
    pairs. With one value the interval is unknown (None).

    >>> round(interval([1.0, 3.0], 0.95)["high"], 3)  # 2 + t(1) * sd / sqrt(2)
    14.706
    >>> interval([0.5], 0.95)
    {'mean': 0.5, 'low': None, 'high': None, 'pairs': 1}
    """
    k = len(values)
    mean = fmean(values)
    if k < 2:
        return {"mean": mean, "low": None, "high": None, "pairs": k}
    half = t_quantile(1 - level, k - 1) * stdev(values) / math.sqrt(k)
    return {"mean": mean, "low": mean - half, "high": mean + half, "pairs": k}


def sign(iv):
    """Where the interval lies: 'above 0', 'below 0', '0 inside',
    'identical' (every difference 0), or 'one pair' (no interval).

    >>> sign(interval([1.0, 1.1, 0.9], 0.95)), sign(interval([-1, 1], 0.95))
    ('above 0', '0 inside')
    """
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
    """Per-layer means of a list of per-layer lists.

    >>> _mean_layers([[1.0, 2.0], [3.0, 6.0]])
    [2.0, 4.0]
    """
    return [fmean(col) for col in zip(*rows, strict=True)]


def _pairs(results, by):
    """{values of `by`: [{build: run} of each pair (backend, seed) that both
    builds ran]}, in the runs' order."""
    groups = {}
    for run in results["runs"]:
        group = groups.setdefault(tuple(run[k] for k in by), {})
        group.setdefault((run["backend"], run["seed"]), {})[run["build"]] = run
    return {
        key: [p for p in pairs.values() if all(b in p for b in BUILDS)]
        for key, pairs in groups.items()
    }


def summarize(results, by):
    """One row per group of runs (`by`: keys of a run, e.g. ("model",
    "batch_size")), in the runs' order: each build's means, and the paired
    differences fix - pristine of accuracy, nll and ece with their
    t-intervals over the pairs (backend, seed) of the group."""
    old, new = BUILDS
    level = results["settings"]["interval"]
    rows = []
    for key, pairs in _pairs(results, by).items():
        if not pairs:
            continue
        row = dict(zip(by, key, strict=True))
        row["n"] = pairs[0][new]["n"]
        row["pairs"] = len(pairs)
        for metric in METRICS:
            row[metric] = {b: fmean(p[b][metric] for p in pairs) for b in BUILDS}
            diffs = [p[new][metric] - p[old][metric] for p in pairs]
            row["d_" + metric] = interval(diffs, level)
        for metric in LAYER_METRICS:
            row[metric] = {
                b: _mean_layers([p[b][metric] for p in pairs]) for b in BUILDS
            }
        moving = [[p[b]["moving_variance_mean"] for b in (new, old)] for p in pairs]
        ratios = [[f / o for f, o in zip(*m, strict=True)] for m in moving]
        row["variance_ratio"] = _mean_layers(ratios)
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
        empty = {"pairs": 0, "identical": 0, "max_abs_diff": 0.0, "same_training": 0}
        row = out.setdefault(item["backend"], empty)
        row["pairs"] += 1
        row["identical"] += item["max_abs_diff"] == 0
        row["max_abs_diff"] = max(row["max_abs_diff"], item["max_abs_diff"])
    for pairs in _pairs(results, ("model", "batch_size")).values():
        for p in pairs:
            same = all(p[old][k] == p[new][k] for k in TRAINING_MODE)
            out[p[new]["backend"]]["same_training"] += same
    return out
