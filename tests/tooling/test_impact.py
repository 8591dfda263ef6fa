"""The impact study's scores, statistics and page (kbb.study), on fixture
results: plain Python, no ML framework, no numpy."""

import math
import statistics
from dataclasses import asdict

import pytest

from kbb.study import config
from kbb.study import metrics
from kbb.study import render
from kbb.study import stats


@pytest.mark.parametrize(
    "level, df, expected",
    # Student t quantiles from tables: the interval's ends, in standard
    # errors from the mean.
    [
        (0.95, 1, 12.7062),
        (0.95, 4, 2.7764),
        (0.95, 14, 2.1448),
        (0.90, 9, 1.8331),
        (0.95, 1000, 1.9623),
        (0.99, 4, 4.6041),
    ],
)
def test_t_quantile(level, df, expected):
    values = [float(i % 3) for i in range(df + 1)]
    iv = stats.interval(values, level)
    se = statistics.stdev(values) / math.sqrt(df + 1)
    assert (iv["high"] - iv["mean"]) / se == pytest.approx(expected, abs=1e-4)
    assert (iv["low"] - iv["mean"]) / se == pytest.approx(-expected, abs=1e-4)


def test_interval():
    values = [0.1, 0.2, 0.3, 0.2, 0.1]
    iv = stats.interval(values, 0.95)
    sd = math.sqrt(sum((v - 0.18) ** 2 for v in values) / 4)
    half = 2.7764451 * sd / math.sqrt(5)
    assert iv["mean"] == pytest.approx(0.18)
    assert iv["low"] == pytest.approx(0.18 - half)
    assert iv["high"] == pytest.approx(0.18 + half)
    assert iv["pairs"] == 5
    assert stats.sign(iv) == "above 0"
    assert stats.sign(stats.interval([-1.0, 1.0, 0.5], 0.95)) == "0 inside"
    assert stats.sign(stats.interval([-1.0, -1.1], 0.95)) == "below 0"
    assert stats.sign(stats.interval([0.0, 0.0, 0.0], 0.95)) == "identical"
    assert stats.interval([0.3], 0.95)["low"] is None


def test_scores():
    probs = [[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]]
    labels = [0, 0, 1, 1]
    assert metrics.accuracy(probs, labels) == 0.5
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.3) + math.log(0.8))
    assert metrics.nll(probs, labels) == pytest.approx(expected / 4)
    # Two bins: confidences 0.6, 0.7 in [0.5, 1) bin 1 with 0.9, 0.8 too.
    # bin 1: all four; hits 2, confidence 0.9 + 0.6 + 0.7 + 0.8 = 3.0.
    assert metrics.ece(probs, labels, 2) == pytest.approx(abs(2 - 3.0) / 4)
    # Ten bins: 0.9 -> bin 9 (hit), 0.6 -> bin 6 (miss), 0.7 -> bin 7
    # (miss), 0.8 -> bin 8 (hit).
    gaps = abs(1 - 0.9) + abs(0 - 0.6) + abs(0 - 0.7) + abs(1 - 0.8)
    assert metrics.ece(probs, labels, 10) == pytest.approx(gaps / 4)
    assert metrics.ece([[0.0, 1.0]], [1], 15) == 0.0  # confidence 1: last bin
    assert metrics.agreement(probs, [[0.6, 0.4]] * 4) == 0.5
    assert metrics.nll([[1.0, 0.0]], [1]) == pytest.approx(
        -math.log(metrics.PROB_FLOOR)
    )


def _run(build, backend, batch_size, seed, accuracy, nll):
    n = [batch_size, batch_size]
    old = build == "pristine"
    return {
        "build": build,
        "backend": backend,
        "model": "toy-dense",
        "batch_size": batch_size,
        "seed": seed,
        "n": n,
        "accuracy": accuracy,
        "nll": nll,
        "ece": 0.05,
        "train_mode_accuracy": 0.7,
        "agreement": 0.8 if old else 0.9,
        "moment_inference": [2.0, 2.5] if old else [1.0, 1.1],
        "moment_inference_train": [2.0, 2.4] if old else [1.0, 1.0],
        "moment_training": [0.9, 0.95],
        "abs_inference_train": [1.1, 1.2] if old else [0.8, 0.8],
        "abs_training": [0.95, 0.97],
        # The fix's moving variance is n / (n - 1) times pristine's.
        "moving_variance_mean": [0.5, 0.25]
        if old
        else [
            0.5 * batch_size / (batch_size - 1),
            0.25 * batch_size / (batch_size - 1),
        ],
        "fit_seconds": 1.0,
    }


NLL_DIFFS = [0.01, -0.02, 0.03]


@pytest.fixture
def results():
    return _results()


def _results():
    runs = []
    for backend in ("tensorflow", "torch"):
        for batch_size in (2, 32):
            for seed, d_nll in enumerate(NLL_DIFFS):
                acc = 0.8 + 0.01 * seed
                runs.append(_run("pristine", backend, batch_size, seed, acc, 0.5))
                runs.append(
                    _run(
                        "fix",
                        backend,
                        batch_size,
                        seed,
                        acc + (0.02 if batch_size == 2 else 0.0),
                        0.5 + d_nll,
                    )
                )
    pairing = [
        {
            "model": "toy-dense",
            "backend": r["backend"],
            "batch_size": r["batch_size"],
            "seed": r["seed"],
            "max_abs_diff": 0.0,
        }
        for r in runs
        if r["build"] == "fix"
    ]
    settings = asdict(config.QUICK)
    settings["backends"] = ["tensorflow", "torch"]
    return {
        "settings": settings,
        "quick": False,
        "invocation_minutes": 3.0,
        "worker_minutes": 5.0,
        "jobs": 2,
        "builds": {
            "pristine": {"ref": "pristine", "keras": "3.15.1"},
            "fix": {"ref": "group/bessel", "keras": "3.15.1+bessel1"},
        },
        "versions": {"python": "3.11.7", "torch": None},
        "runs": runs,
        "pairing": pairing,
    }


def test_summarize_pairs_by_backend_and_seed(results):
    rows = stats.summarize(results, ("model", "batch_size"))
    assert [r["batch_size"] for r in rows] == [2, 32]
    small, large = rows
    assert small["pairs"] == 6  # 2 backends x 3 seeds
    assert small["d_accuracy"]["mean"] == pytest.approx(0.02)
    assert small["d_accuracy"]["low"] == pytest.approx(0.02)
    assert stats.sign(large["d_accuracy"]) == "identical"
    expected = stats.interval(NLL_DIFFS * 2, 0.95)
    assert small["d_nll"] == pytest.approx(expected)
    assert small["variance_ratio"] == pytest.approx([2.0, 2.0])
    assert large["variance_ratio"] == pytest.approx(large["bessel"])
    assert small["agreement"] == pytest.approx({"pristine": 0.8, "fix": 0.9})
    assert small["moment_inference"]["pristine"] == pytest.approx([2.0, 2.5])
    per_backend = stats.summarize(results, ("model", "backend", "batch_size"))
    assert [(r["backend"], r["pairs"]) for r in per_backend] == [
        ("tensorflow", 3),
        ("tensorflow", 3),
        ("torch", 3),
        ("torch", 3),
    ]


def test_unpaired_runs_are_left_out(results):
    results["runs"] = [
        r for r in results["runs"] if not (r["build"] == "fix" and r["seed"] == 0)
    ]
    rows = stats.summarize(results, ("model", "batch_size"))
    assert [r["pairs"] for r in rows] == [4, 4]


def test_page(results):
    text = render.page_text(results, "impact.png")
    assert "bit-identical" in text
    assert (
        "- **toy-dense**: accuracy (pp): the fix better at batch 2 "
        "(+2.0 [+2.0, +2.0]); no difference shown at batch 32. "
        "NLL (nats): no difference shown at batch 2, 32."
    ) in text
    assert "| toy-dense | 2 | 2 / 2 | 6 | 81.0 / 83.0 | +2.0 [+2.0, +2.0] |" in text
    assert "pooled over the 2 backends" in text
    assert (
        "- **Over all 2 (model, batch size) rows**: accuracy: the fix better "
        "in 1, pristine better in 0, no difference shown in 1; NLL: the fix "
        "better in 0, pristine better in 0, no difference shown in 2;"
    ) in text
    assert (
        "toy-dense at batch 2: E[z²] 2.00 / 2.40 (pristine), 1.00 / 1.00 "
        "(fix), 0.90 / 0.95 (training mode); E[abs z] 1.10 / 1.20, "
        "0.80 / 0.80, 0.95 / 0.97."
    ) in text
    assert "![paired differences and second moments](impact.png)" in text
    assert "Smoke run" not in text
    for header in (
        "| model | batch | n per BN layer |",
        "| backend | pairs (model, batch, seed) |",
        "| model | backend | batch |",
        "| setting | value |",
    ):
        assert header in text


def test_page_reports_a_diverged_pair(results):
    results["pairing"][0]["max_abs_diff"] = 3e-7
    text = render.page_text(results, "impact.png")
    assert "11 of 12 pairs end with bit-identical" in text
    assert "| tensorflow | 6 | 5 | 3.00e-07 | 6 |" in text


def test_pairing_counts_same_training_mode(results):
    fix = next(r for r in results["runs"] if r["build"] == "fix")
    fix["train_mode_accuracy"] += 0.01
    summary = stats.pairing_summary(results)
    assert summary["tensorflow"] == {
        "pairs": 6,
        "identical": 6,
        "max_abs_diff": 0.0,
        "same_training": 5,
    }
    assert summary["torch"]["same_training"] == 6
