"""docs/analysis.md, generated from measured figures (`kbb report`).

The test environments record their figures in out/results/ENV.json
(kbb.results). This module computes every number of the analysis, from a
formula or from a recorded figure, into named tables (kbb.markdown), and
fills them into the prose of templates/analysis.md. A figure that no file
holds is shown as "not measured in this run", and a figure of a stale file
(kbb.results: measured on a build of another series or pin than now) is
marked "(stale)". The environments read are those `tox -e report` depends
on (tox.ini).
"""

import math
import string
from pathlib import Path

from packaging.version import Version

from kbb import BACKENDS
from kbb import results as results_file
from kbb.files import write_text
from kbb.report import data
from kbb.report import evidence
from kbb.report import upstream
from kbb.report.data import CONVERGENCE_N
from kbb.report.data import NOT_MEASURED

TEMPLATE = Path(__file__).parents[1] / "templates" / "analysis.md"

# The math.


def biased_expectation(n):
    """E[biased batch variance] / sigma^2."""
    return (n - 1) / n


def estimator_variance(n, rule):
    """Var[batch variance] / sigma^4 for normal data: 2 / (n - 1) for the
    unbiased estimate, times ((n - 1) / n)^2 for the biased one."""
    unbiased = 2 / (n - 1)
    return unbiased if rule == "unbiased" else unbiased * biased_expectation(n) ** 2


def moving_mse(n, rule, momentum):
    """Mean squared error / sigma^4 of the moving variance in its steady
    state: bias^2 + (1 - m) / (1 + m) * Var[batch variance]."""
    bias = biased_expectation(n) - 1 if rule == "biased" else 0.0
    return bias**2 + (1 - momentum) / (1 + momentum) * estimator_variance(n, rule)


def convergence_sd(n, rule):
    """Sampling sd of the mean over channels of a converged moving variance."""
    var = (1 - data.MOMENTUM) / (1 + data.MOMENTUM) * estimator_variance(n, rule)
    return math.sqrt(var / data.CHANNELS)


# Tables: each a function of the results, each named.


def header_values(results):
    rows = []
    for s in results.sources:
        state = f"stale: {s.stale}" if s.stale else "current"
        rows.append((f"`{s.env}`", len(s.entries), s.builds, state))
    present = {s.env for s in results.sources}
    missing = ", ".join(f"`{env}`" for env in results.envs if env not in present)
    head = "environment | figures | build | status"
    return {
        "regenerate": f"tox -e {','.join(results.envs)}\ntox -e report",
        "not_measured": NOT_MEASURED,
        "results_read": data.table(head, rows, "results-read"),
        "missing_results": f"Expected results missing: {missing}.\n" if missing else "",
    }


def math_values():
    rows, rules = [], ("biased", "unbiased")
    for n in (2, 3, 4, 8, 32, 256):
        variances = [biased_expectation(n), *(estimator_variance(n, r) for r in rules)]
        errors = [moving_mse(n, rule, 0.99) for rule in rules]
        rows.append(
            (n, *(f"{v:.4f}" for v in variances), *(f"{e:.2e}" for e in errors))
        )
    head = (
        "n | E[s_b^2] | Var[s_b^2] | Var[s_u^2] | MSE of v, biased | MSE of v, unbiased"
    )
    sd = math.sqrt(0.01 / 1.99 * estimator_variance(2, "unbiased"))
    return {
        "math_table": data.table(head, rows, "math"),
        "single_channel_sd": f"{sd:.3f}",
        "channels": data.CHANNELS,
        "momentum": data.MOMENTUM,
        "torch_momentum": f"{1 - data.MOMENTUM:.1f}",
        "masked": f"{0.25 * 20 / 19:.4f}",
    }


def reproduction_values(results):
    """The reproduction per build and backend, labelled by keras' version
    (what a reader upstream knows), not by the environment."""
    keys = "moving_variance data_variance biased_reference unbiased_reference".split()
    rows = []
    for env in results.keras_envs:
        entry = results.first(scenario="issue-8982", env=env)
        keras = build_label(entry["keras"]) if entry else f"`{env}`"
        backend = entry["backend"] if entry else NOT_MEASURED
        rows.append((keras, backend, *(data.value(entry, k, ".4f") for k in keys)))
    head = (
        "keras | backend | moving_variance | variance of the data "
        "| biased rule | unbiased rule"
    )
    return {"reproduction_table": data.table(head, rows, "reproduction")}


def build_label(version):
    """keras' version as a reader upstream knows it.

    >>> build_label("3.15.1"), build_label("3.15.1+bessel1")
    ('3.15.1', '3.15.1 with the fix')
    """
    parsed = Version(version)
    return f"{parsed.public} with the fix" if parsed.local else parsed.public


def _convergence_rows(results):
    """(label, entries by n) for every implementation of the table."""
    rows = []
    for build in ("pristine", "patched"):
        for backend in BACKENDS:
            match = {"implementation": "keras3", "build": build, "backend": backend}
            rows.append((f"Keras 3 {build}, {backend} backend", match))
    kinds = {"fused": "fused (FusedBatchNormV3)", "nonfused": "non-fused"}
    for build in ("pristine", "patched"):
        for kind, label in kinds.items():
            match = {"implementation": f"tf-keras-{kind}", "build": build}
            rows.append((f"tf-keras {build}, {label}", match))
    rows += [
        ("PyTorch `torch.nn.BatchNorm2d`", {"implementation": "pytorch"}),
        ("TF `tf.raw_ops.FusedBatchNormV3`", {"implementation": "tf-fusedbatchnormv3"}),
    ]
    first = results.first
    return [
        (label, {n: first(scenario="convergence", n=n, **match) for n in CONVERGENCE_N})
        for label, match in rows
    ]


def comparison_values(results):
    rows = []
    for label, by_n in _convergence_rows(results):
        cells = [data.value(by_n[n], "converged", ".4f") for n in CONVERGENCE_N]
        names = sorted({entry["env"] for entry in by_n.values() if entry})
        measured_in = ", ".join(f"`{name}`" for name in names) or NOT_MEASURED
        rows.append((label, *cells, measured_in))
    formulas = (
        ("expected, biased rule: (n - 1) / n", biased_expectation),
        ("expected, unbiased rule", lambda n: 1.0),
        (
            "sampling sd of a cell, unbiased rule",
            lambda n: convergence_sd(n, "unbiased"),
        ),
    )
    for label, cell in formulas:
        rows.append((label, *(f"{cell(n):.4f}" for n in CONVERGENCE_N), "formula"))
    head = ("implementation", *(f"n = {n}" for n in CONVERGENCE_N), "measured in")
    return {"comparison_table": data.table(head, rows, "comparison")}


def change_values(results):
    rows = []
    for n in (2, 3, 4, 8, 16, 32, 128, 1568, 1605632):
        shrink = math.sqrt((n - 1) / n)
        rows.append(
            (n, f"{n / (n - 1):.4f}", f"{100 / (n - 1):.3g} %", f"{shrink:.4f}")
        )
    measured = []
    common = {"scenario": "convergence", "implementation": "keras3"}
    for backend in BACKENDS:
        cells = []
        for n in CONVERGENCE_N:
            before = results.first(build="pristine", backend=backend, n=n, **common)
            after = results.first(build="patched", backend=backend, n=n, **common)
            if before and after:
                ratio = after["converged"] / before["converged"]
                cells.append(f"{ratio:.4f}{data.stale(before, after)}")
            else:
                cells.append(NOT_MEASURED)
        measured.append((f"measured, {backend} backend", *cells))
    measured.append(("n / (n - 1)", *(f"{n / (n - 1):.4f}" for n in CONVERGENCE_N)))
    head = "n | moving variance x | change | inference outputs x"
    columns = ("", *(f"n = {n}" for n in CONVERGENCE_N))
    return {
        "change_table": data.table(head, rows, "change"),
        "change_measured_table": data.table(columns, measured, "change-measured"),
    }


def render(results):
    values = {
        **header_values(results),
        **math_values(),
        **reproduction_values(results),
        **comparison_values(results),
        **change_values(results),
        **evidence.parity_values(results),
        **evidence.tf_keras_parity_values(results),
        **evidence.distributed_values(results),
        **evidence.checkpoint_values(results),
        **upstream.values(results),
        **evidence.noticeable_values(results),
    }
    text = string.Template(TEMPLATE.read_text()).substitute(values)
    return text.rstrip() + "\n"


def write(ws, results_dir=None, output=None):
    """Writes the analysis; returns (path, notes about missing or stale data)."""
    results = data.load(ws, results_dir or ws.results)
    stamp = results_file.stamp_line(ws, ws.pin("keras"), results.group)
    text = render(results) + "\n" + stamp + "\n"
    path = Path(output or ws.docs / "analysis.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    notes = [f"{s.env}: stale, {s.stale}" for s in results.sources if s.stale]
    missing = sum(
        line.count(NOT_MEASURED) for line in text.splitlines() if line.startswith("|")
    )
    if missing:
        notes.append(f"{missing} table cells {NOT_MEASURED}")
    return path, notes
