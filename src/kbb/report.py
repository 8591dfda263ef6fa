"""docs/analysis.md, generated from measured figures (`python -m kbb report`).

The test environments write their figures to out/results/ENV.json (the
`record` fixtures of tests/keras and tests/evidence; other targets' tests
may add files). This module reads every such file and writes the analysis:
each number in it is computed here, from a formula or from a measured
figure. A figure that no file holds is shown as "not measured in this run",
and a file that is stale (measured with another pinned keras, or older than
the last commit to patches/, tests/ or pins.toml) is named as such, with its
figures marked.
"""

import dataclasses
import datetime
import json
import math
import subprocess
from pathlib import Path

from kbb import KbbError
from kbb import report_matrix

NOT_MEASURED = "not measured in this run"
BACKENDS = ("tensorflow", "jax", "torch")
KERAS_ENVS = tuple(
    f"{build}{suffix}"
    for suffix in ("", "-jax", "-torch")
    for build in ("pristine", "patched")
)
TF_KERAS_ENVS = ("tf-keras-pristine", "tf-keras-patched")
EVIDENCE_ENVS = ("evidence-pristine", "evidence-patched")
CONVERGENCE_N = (2, 3, 4, 8, 32)
# The convergence scenario (tests/keras): momentum, channels.
MOMENTUM, CHANNELS = 0.9, 1024
REGENERATE = (
    "tox -e "
    + ",".join((*KERAS_ENVS, *TF_KERAS_ENVS, *EVIDENCE_ENVS))
    + "\ntox -e report"
)


@dataclasses.dataclass
class Source:
    env: str
    path: Path
    entries: list
    stale: str | None


@dataclasses.dataclass
class Results:
    sources: list

    def find(self, **match):
        """The entries whose fields equal `match`, newest file first, each
        with "env", "stale" and "build" (of keras3 and tf-keras: pristine or
        patched)."""
        found = []
        for source in sorted(self.sources, key=lambda s: -s.path.stat().st_mtime):
            for entry in source.entries:
                entry = {
                    **entry,
                    "env": source.env,
                    "stale": source.stale,
                    "build": _build(entry),
                }
                if all(entry.get(key) == value for key, value in match.items()):
                    found.append(entry)
        return found

    def first(self, **match):
        found = self.find(**match)
        return found[0] if found else None


def _build(entry):
    """pristine, patched (the fix: `+bessel1`) or another build (what its
    local version adds, e.g. `native`), for the Keras 3 and tf-keras
    records."""
    version = entry.get("keras")
    implementation = entry.get("implementation", "")
    if not version or not (
        implementation == "keras3" or implementation.startswith("tf-keras-")
    ):
        return None
    if "+" not in version:
        return "pristine"
    extra = version.split("+", 1)[1].split(".", 1)[1:]
    return extra[0] if extra else "patched"


def load(ws, directory):
    paths = sorted(Path(directory).glob("*.json"))
    if not paths:
        raise KbbError(
            f"no results in {directory}: run the test environments first "
            f"({REGENERATE.splitlines()[0]})"
        )
    pinned = ws.pin("keras").version
    changed = _last_change(ws.root)
    sources = []
    for path in paths:
        entries = json.loads(path.read_text())
        sources.append(
            Source(path.stem, path, entries, _stale(path, entries, pinned, changed))
        )
    return Results(sources)


def _last_change(root):
    """Time of the last commit to patches/, tests/ or pins.toml, or None."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%ct", "--", "patches", "tests", "pins.toml"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return int(out) if out else None


def _stale(path, entries, pinned, changed):
    versions = {
        entry["keras"].split("+")[0]
        for entry in entries
        if entry.get("implementation") == "keras3" and entry.get("keras")
    }
    if versions - {pinned}:
        return f"measured with keras {', '.join(sorted(versions))}, pinned {pinned}"
    if changed and path.stat().st_mtime < changed:
        return "older than the last commit to patches/, tests/ or pins.toml"
    return None


# Formatting.


def _table(header, rows):
    """A Markdown table; `header` is a string "a | b | c" or a sequence."""
    if isinstance(header, str):
        header = header.split(" | ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _value(entry, key, spec):
    if entry is None:
        return NOT_MEASURED
    text = format(entry[key], spec)
    return text + " (stale)" if entry["stale"] else text


def _envs(entries):
    names = sorted({e["env"] for e in entries if e})
    return ", ".join(f"`{name}`" for name in names) if names else NOT_MEASURED


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
    var = (1 - MOMENTUM) / (1 + MOMENTUM) * estimator_variance(n, rule)
    return math.sqrt(var / CHANNELS)


# Sections.


def header(results):
    rows = []
    for source in results.sources:
        when = datetime.datetime.fromtimestamp(
            source.path.stat().st_mtime, datetime.UTC
        )
        status = f"stale: {source.stale}" if source.stale else "current"
        rows.append(
            (
                f"`{source.env}`",
                len(source.entries),
                when.strftime("%Y-%m-%d %H:%M UTC"),
                status,
            )
        )
    missing = [
        env
        for env in (*KERAS_ENVS, *TF_KERAS_ENVS, *EVIDENCE_ENVS)
        if env not in {s.env for s in results.sources}
    ]
    lines = [
        "# Keras 3 BatchNormalization: the moving variance, before and after",
        "",
        "<!-- Generated by `python -m kbb report` from out/results/*.json:",
        "     do not edit. -->",
        "",
        "Every number below is computed by `src/kbb/report.py`, from a formula or "
        "from a figure that the tests measured and recorded. To regenerate:",
        "",
        "```sh",
        *REGENERATE.splitlines(),
        "```",
        "",
        "The first command runs the test environments (they write "
        "`out/results/ENV.json`); `tox -e report` writes this file. A figure that "
        f"no result holds reads *{NOT_MEASURED}*; a figure from a stale result "
        "is marked *(stale)*.",
        "",
        "Results read:",
        "",
        *_table("environment | figures | written | status", rows),
    ]
    if missing:
        lines += [
            "Expected results missing: "
            + ", ".join(f"`{env}`" for env in missing)
            + ".",
            "",
        ]
    return lines


def math_section():
    ns = (2, 3, 4, 8, 32, 256)
    rows = [
        (
            n,
            f"{biased_expectation(n):.4f}",
            f"{estimator_variance(n, 'biased'):.4f}",
            f"{estimator_variance(n, 'unbiased'):.4f}",
            f"{moving_mse(n, 'biased', 0.99):.2e}",
            f"{moving_mse(n, 'unbiased', 0.99):.2e}",
        )
        for n in ns
    ]
    return [
        "## The math",
        "",
        "Let x_1, ..., x_n be the n values that one channel of a training batch "
        "holds (batch and spatial axes together), independent with mean mu and "
        "variance sigma^2, and xbar their mean. The biased variance, the one "
        "the layer normalizes the batch with, is "
        "`s_b^2 = sum (x_i - xbar)^2 / n`. Since "
        "`sum (x_i - xbar)^2 = sum (x_i - mu)^2 - n (xbar - mu)^2`, "
        "and `E[(xbar - mu)^2] = sigma^2 / n`,",
        "",
        "    E[s_b^2] = (n sigma^2 - sigma^2) / n = (n - 1) / n * sigma^2",
        "",
        "while `s_u^2 = s_b^2 * n / (n - 1)` has `E[s_u^2] = sigma^2` (Bessel's "
        "correction). The moving variance is an exponential moving average "
        "`v <- m v + (1 - m) c s_b^2` (c = 1 pristine, c = n / (n - 1) patched): "
        "in its steady state `E[v] = c E[s_b^2]`. The average removes the noise "
        "of single batches, not their bias, so no momentum fixes it: pristine "
        "Keras' inference variance is (n - 1)/n of the data's.",
        "",
        "Ioffe and Szegedy's Algorithm 2 (step 10) uses for inference "
        "`Var[x] = m / (m - 1) * E_B[sigma_B^2]` over mini-batches of size m: "
        "the unbiased estimate of the population variance, since inference "
        "normalizes single examples with the population's statistics, not a "
        "batch's. PyTorch's `running_var`, cuDNN and TensorFlow's "
        "`FusedBatchNormV3` do the same; the tables below measure it.",
        "",
        "Variance of the estimators, for normal data (s_u^2 is sigma^2 / (n - 1) "
        "times a chi-square with n - 1 degrees of freedom): "
        "`Var[s_u^2] = 2 sigma^4 / (n - 1)`, `Var[s_b^2] = 2 (n - 1) sigma^4 / n^2`. "
        "One biased estimate has the smaller mean squared error, but the moving "
        "average divides the variance by (1 + m) / (1 - m) and leaves the "
        "bias: its steady-state mean squared error is "
        "`bias^2 + (1 - m) / (1 + m) * Var` (for independent batches). With "
        "Keras' default momentum 0.99 (in units of sigma^2 and sigma^4):",
        "",
        *_table(
            "n | E[s_b^2] | Var[s_b^2] | Var[s_u^2] | "
            "MSE of v, biased | MSE of v, unbiased",
            rows,
        ),
    ]


def reproduction_section(results):
    rows = []
    for env in KERAS_ENVS:
        entry = results.first(scenario="issue-8982", env=env)
        rows.append(
            (
                f"`{env}`",
                entry["keras"] if entry else NOT_MEASURED,
                entry["backend"] if entry else NOT_MEASURED,
                _value(entry, "moving_variance", ".4f"),
                _value(entry, "data_variance", ".4f"),
                _value(entry, "biased_reference", ".4f"),
                _value(entry, "unbiased_reference", ".4f"),
            )
        )
    return [
        "## The reproduction (keras-team/keras#8982)",
        "",
        "The reporter's script ported to Keras 3 (tests/keras, "
        "`test_issue_8982_reporter_script`): one feature of N(0, 1) data, "
        "`batch_size=2` (n = 2), 2 epochs of 10000 samples, momentum 0.99, "
        "`model.fit`. The references are the float64 recursion of each rule on "
        "the same batches (tests/bnref.py); each environment asserts the "
        "layer's value equals its rule's reference to 1e-5 relative.",
        "",
        *_table(
            "environment | keras | backend | moving_variance | "
            "variance of the data | biased rule | unbiased rule",
            rows,
        ),
        "One channel with momentum 0.99 is a noisy measurement: in its steady "
        "state the moving variance has a sampling standard deviation of "
        f"{math.sqrt(0.01 / 1.99 * estimator_variance(2, 'unbiased')):.3f} "
        "(unbiased rule, in units of the data's variance), so a single value "
        "says little on its own. What the builds change is exact: on the "
        "same batches the two rules differ by the factor n / (n - 1) = 2 "
        "(up to the initial value's weight 0.99^10000), and each build "
        "matches its rule's recursion.",
        "",
    ]


def _convergence_rows(results):
    """(label, entries by n) for every implementation of the table."""
    rows = []
    for build in ("pristine", "patched"):
        for backend in BACKENDS:
            label = f"Keras 3 {build}, {backend} backend"
            match = {"implementation": "keras3", "build": build, "backend": backend}
            rows.append((label, match))
    for build in ("pristine", "patched"):
        for kind, label in (
            ("fused", "fused (FusedBatchNormV3)"),
            ("nonfused", "non-fused"),
        ):
            match = {"implementation": f"tf-keras-{kind}", "build": build}
            rows.append((f"tf-keras {build}, {label}", match))
    rows += [
        ("PyTorch `torch.nn.BatchNorm2d`", {"implementation": "pytorch"}),
        ("TF `tf.raw_ops.FusedBatchNormV3`", {"implementation": "tf-fusedbatchnormv3"}),
    ]
    return [
        (
            label,
            {
                n: results.first(scenario="convergence", n=n, **match)
                for n in CONVERGENCE_N
            },
        )
        for label, match in rows
    ]


def comparison_section(results):
    rows = []
    for label, by_n in _convergence_rows(results):
        cells = [_value(by_n[n], "converged", ".4f") for n in CONVERGENCE_N]
        rows.append((label, *cells, _envs(by_n.values())))
    rows.append(
        (
            "expected, biased rule: (n - 1) / n",
            *(f"{biased_expectation(n):.4f}" for n in CONVERGENCE_N),
            "formula",
        )
    )
    rows.append(
        ("expected, unbiased rule", *("1.0000" for _ in CONVERGENCE_N), "formula")
    )
    rows.append(
        (
            "sampling sd of a cell, unbiased rule",
            *(f"{convergence_sd(n, 'unbiased'):.4f}" for n in CONVERGENCE_N),
            "formula",
        )
    )
    return [
        "## Comparison: what each implementation converges to",
        "",
        f"Batches of n N(0, 1) values in each of {CHANNELS} channels, momentum "
        f"{MOMENTUM} (PyTorch momentum {1 - MOMENTUM:.1f}, exponential_avg_factor "
        f"{1 - MOMENTUM:.1f}), 200 steps from the same seeds; each cell is the "
        "mean over channels of the final moving variance (the variance of the "
        "data is 1). tests/keras and tests/evidence assert each of their rows "
        "within 5 sampling standard deviations of its rule's expectation, and "
        "equal to their rule's float64 recursion on the same batches (1e-5 "
        "relative); tests/evidence also asserts that the Keras layer's values "
        "(TensorFlow backend) equal PyTorch's exactly when patched.",
        "",
        *_table(
            ("implementation", *(f"n = {n}" for n in CONVERGENCE_N), "measured in"),
            rows,
        ),
    ]


def change_section(results):
    ns = (2, 3, 4, 8, 16, 32, 128, 1568, 1605632)
    rows = [
        (
            n,
            f"{n / (n - 1):.4f}",
            f"{100 / (n - 1):.3g} %",
            f"{math.sqrt((n - 1) / n):.4f}",
        )
        for n in ns
    ]
    measured = []
    for backend in BACKENDS:
        cells = []
        for n in CONVERGENCE_N:
            common = {
                "scenario": "convergence",
                "implementation": "keras3",
                "backend": backend,
                "n": n,
            }
            before = results.first(build="pristine", **common)
            after = results.first(build="patched", **common)
            if before and after:
                stale = " (stale)" if before["stale"] or after["stale"] else ""
                cells.append(f"{after['converged'] / before['converged']:.4f}{stale}")
            else:
                cells.append(NOT_MEASURED)
        measured.append((f"measured, {backend} backend", *cells))
    measured.append(("n / (n - 1)", *(f"{n / (n - 1):.4f}" for n in CONVERGENCE_N)))
    return [
        "## The size of the change, as a function of n",
        "",
        "n is the number of values per channel in a batch: the batch size for "
        "`Dense` features, batch x height x width for images (a batch of 32 "
        "7x7 maps: n = 1568; 32 224x224 maps: n = 1605632), the unmasked "
        "values with a mask, the global batch with `synchronized=True`. The "
        "moving variance grows by n / (n - 1) in expectation; inference "
        "divides by its square root, so inference outputs (before `gamma`, "
        "`beta`, and for epsilon small against the variance) scale by "
        "sqrt((n - 1) / n) against a model trained with pristine Keras.",
        "",
        *_table("n | moving variance x | change | inference outputs x", rows),
        "Measured: converged moving variance, patched / pristine (the "
        "comparison table's rows). Both builds see the same batches, so the "
        "ratio is n / (n - 1) up to rounding and the initial value's weight "
        "0.9^200; this checks the size of the change, not its sampling error:",
        "",
        *_table(("", *(f"n = {n}" for n in CONVERGENCE_N)), measured),
    ]


def _max_by(entries, key, group):
    """{group value: max of entry[key]} over `entries`."""
    out = {}
    for entry in entries:
        out[entry[group]] = max(out.get(entry[group], 0.0), entry[key])
    return out


def parity_section(results):
    lines = [
        "## Parity, measured by tests/evidence",
        "",
        "Each figure is the largest relative difference `|a - b| / |b|` of the "
        "final moving variance over channels (and over ranks 2 to 5 for "
        "PyTorch), after the same batches. `evidence-patched` asserts each "
        "is at most the tolerance (PyTorch 1e-6, FusedBatchNormV3 1e-5); "
        "`evidence-pristine` asserts they exceed it.",
        "",
        "Keras' TensorFlow backend computes a float64 layer in float64; the JAX "
        "and PyTorch backends compute it in float32 (Keras' type promotion maps "
        "float64 to float32 outside TensorFlow), hence their larger rounding.",
        "",
    ]
    for scenario, title, counts in (
        (
            "pytorch-parity",
            "Against PyTorch `running_var` (float64, ranks 2, 3, 4, 5)",
            (2, 3, 8, 64),
        ),
        ("fused-parity", "Against `FusedBatchNormV3` (float32, NHWC)", (2, 3, 8, 64)),
    ):
        rows = []
        for env in EVIDENCE_ENVS:
            for backend in BACKENDS:
                entries = results.find(scenario=scenario, env=env, backend=backend)
                worst = _max_by(entries, "max_relative_difference", "n")
                stale = " (stale)" if entries and entries[0]["stale"] else ""
                cells = [
                    f"{worst[n]:.1e}{stale}" if n in worst else NOT_MEASURED
                    for n in counts
                ]
                rows.append((f"`{env}`", backend, *cells))
        lines += [
            f"{title}:",
            "",
            *_table(
                ("environment", "Keras backend", *(f"n = {n}" for n in counts)), rows
            ),
        ]
    device = results.first(scenario="pytorch-parity")
    if device:
        lines += [f"PyTorch ran on `{device['device']}`, torch {device['torch']}.", ""]
    rows = []
    for env in EVIDENCE_ENVS:
        entries = results.find(scenario="backend-agreement", env=env)
        if entries:
            worst = max(entries, key=lambda e: e["max_relative_difference"])
            rows.append(
                (
                    f"`{env}`",
                    len(entries),
                    _value(worst, "max_relative_difference", ".1e"),
                    worst["case"],
                )
            )
        else:
            rows.append((f"`{env}`", NOT_MEASURED, NOT_MEASURED, NOT_MEASURED))
    lines += [
        "Backends agree: TensorFlow, JAX and PyTorch backends on the same "
        "inputs (every case above, channels-first, a mask, `fit` with a "
        "partial last batch); largest relative difference between two "
        "backends, asserted at most 1e-6, each backend also matching its "
        "build's rule:",
        "",
        *_table("environment | cases | largest difference | in case", rows),
    ]
    rows = []
    for rank in (2, 4):
        entry = results.first(scenario="one-value-per-channel", rank=rank)
        rows.append(
            (
                rank,
                entry["pytorch"] + ' ("Expected more than 1 value per channel")'
                if entry
                else NOT_MEASURED,
                _value(entry, "keras_moving_variance", ".4f"),
                _value(entry, "fused_moving_variance", ".4f")
                if entry and "fused_moving_variance" in entry
                else "-",
            )
        )
    lines += [
        "One value per channel (n = 1), by design: PyTorch refuses to train; "
        "Keras normalizes the value to 0 and updates the moving variance with "
        "the batch variance, 0, times a factor 1 (momentum "
        f"{MOMENTUM} from 1: m * 1 + (1 - m) * 0), in both builds:",
        "",
        *_table("rank | PyTorch | Keras moving_variance | FusedBatchNormV3", rows),
    ]
    return lines


def distributed_section(results):
    rows = []
    for env in EVIDENCE_ENVS:
        for loop in ("custom", "fit"):
            for synchronized in (True, False):
                entry = results.first(
                    scenario="mirrored", env=env, loop=loop, synchronized=synchronized
                )
                if not entry:
                    rows.append(
                        (f"`{env}`", loop, synchronized, NOT_MEASURED, "", "", "")
                    )
                    continue
                for index, replica in enumerate(entry["replicas"]):
                    stale = " (stale)" if entry["stale"] else ""
                    rows.append(
                        (
                            f"`{env}`",
                            loop,
                            synchronized,
                            index,
                            ", ".join(map(str, replica["count"])),
                            ", ".join(f"{v:.4f}" for v in replica["moving_variance"])
                            + stale,
                            f"{replica['max_relative_error']:.1e}",
                        )
                    )
    jax_rows = []
    for env in EVIDENCE_ENVS:
        entry = results.first(scenario="jax-data-parallel", env=env)
        jax_rows.append(
            (
                f"`{env}`",
                _value(entry, "devices", "d"),
                ", ".join(f"{v:.4f}" for v in entry["single"])
                if entry
                else NOT_MEASURED,
                ", ".join(f"{v:.4f}" for v in entry["distributed"])
                if entry
                else NOT_MEASURED,
                _value(entry, "max_relative_difference", ".1e"),
            )
        )
    return [
        "## Distributed training",
        "",
        "TensorFlow `MirroredStrategy` over two replicas (two logical CPUs in "
        "CI; two GPUs where there are two), `BatchNormalization(momentum=0.9)` "
        "on float32 inputs of shape (batch, 2, 3): a custom `strategy.run` "
        "loop over global batches of 8, 8 and 5 samples (replica shares 4 + 4, "
        "4 + 4, 3 + 2) and `fit` on 11 samples with `batch_size=6` (3 + 3, "
        "3 + 2). With `synchronized=True` the statistics are all-reduced and "
        "the correction uses the global count: both replicas hold the same "
        "value. With `synchronized=False` each replica uses its own batch and "
        "count, and since Keras 3's moving variables have aggregation NONE, "
        "each replica's copy (`.values`) keeps its own value; reading "
        "`layer.moving_variance` gives the first replica's. "
        "'count' lists n per step as the replica's update saw it; 'error' is "
        "the largest relative difference from the float64 recursion of the "
        "build's rule on those batches (asserted at most 1e-5, and the other "
        "rule, or the other count, asserted not to match).",
        "",
        *_table(
            "environment | loop | synchronized | replica | count | "
            "moving_variance (3 channels) | error",
            rows,
        ),
        "JAX `keras.distribution.DataParallel` over two devices (XLA host "
        "devices in CI), `fit` on 20 samples with `batch_size=8`: the moving "
        "variance equals one device's on the same global batches (asserted to "
        "1e-5 relative: the sharded reduction sums in another order):",
        "",
        *_table(
            "environment | devices | one device | DataParallel | largest difference",
            jax_rows,
        ),
    ]


def checkpoint_section(results):
    rows = []
    for env in EVIDENCE_ENVS:
        entry = results.first(scenario="checkpoint", env=env)
        rows.append(
            (
                f"`{env}`",
                entry["saved_by"] if entry else NOT_MEASURED,
                entry["keras"] if entry else NOT_MEASURED,
                _value(entry, "max_abs_prediction_difference", ".1e"),
            )
        )
    return [
        "## Checkpoints",
        "",
        "A model (Conv2D, BatchNormalization, Dense, BatchNormalization) trained "
        "2 epochs and saved as `.keras` by pristine keras, in a subprocess "
        "with the pristine wheel's files on PYTHONPATH, then loaded by the "
        "build under test: the moving variances load bit for bit, the "
        "predictions are asserted equal bit for bit (within 1e-5 of the "
        "output scale for a build with the native-kernel group, whose fused "
        "inference kernel rounds in another order: docs/native-kernels.md), "
        "and one more training step updates the moving variance from the "
        "saved value with the build's rule.",
        "",
        *_table(
            "environment | saved by keras | loaded by keras | "
            "largest prediction difference",
            rows,
        ),
    ]


def noticeable_section(results):
    before = results.first(
        scenario="issue-8982", build="pristine", backend="tensorflow"
    )
    after = results.first(scenario="issue-8982", build="patched", backend="tensorflow")
    small = []
    if before and after:
        small.append(
            "- Models trained with few values per channel get a larger "
            "`moving_variance`: in the reproduction above (n = 2) it is "
            f"{after['moving_variance']:.4f} instead of "
            f"{before['moving_variance']:.4f} "
            f"(the data's variance: {after['data_variance']:.4f})"
            + (" (stale)" if before["stale"] or after["stale"] else "")
            + ", and inference outputs shrink by about sqrt((n - 1) / n) against "
            "a model trained with pristine Keras, towards the scale the layer "
            "had in training."
        )
    else:
        small.append(
            "- Models trained with few values per channel get a larger "
            f"`moving_variance` (reproduction figures: {NOT_MEASURED})."
        )
    masked = 0.25 * 20 / 19
    return [
        "## What a user can notice",
        "",
        *small,
        "- Training is unchanged: a training batch is still normalized with its "
        "biased variance, so losses and gradients are the same; only the "
        "moving variance (inference, `training=False`, `evaluate`, `predict`) "
        "changes, by the factor of the table above: negligible for images "
        "(n in the thousands), visible for `Dense` features with small "
        "batches and for sequences with many masked steps.",
        "- Existing checkpoints predict exactly as before until trained further "
        "(see Checkpoints); fine-tuning then moves the moving variance towards "
        "the unbiased value at the pace set by momentum.",
        "- Downstream tests that hard-code a moving variance after training "
        "change: upstream's own `test_masking_correctness` expected 0.25 for "
        f"20 unmasked values of 1 and 2, now 0.25 * 20 / 19 = {masked:.4f}; "
        "with momentum 0, inference after a training step no longer "
        "reproduces the training-mode output (it divides by the unbiased "
        "variance). The patch updates these upstream tests.",
        "- Keras now gives the number that PyTorch, cuDNN, FusedBatchNormV3 and "
        "tf-keras' fused path give: ported models and cross-framework "
        "comparisons agree to rounding (tables above).",
        "",
    ]


def decisions_section():
    return [
        "## Decisions, and why",
        "",
        "- **n <= 1** (one value per channel, or a fully masked batch): no "
        "unbiased estimate exists; the factor is 1, and the batch variance "
        "(0) is used as is. PyTorch raises instead; raising would break "
        "Keras models that work today (batch size 1 at the end of an epoch, "
        "fully masked batches), and a factor of n / (n - 1) would be a "
        "division by zero. Tested: `test_single_value_per_channel_stays_finite`, "
        "`test_fully_masked_batch_stays_finite`, `test_one_value_per_channel`.",
        "- **Masks**: n is the number of unmasked values per channel, the "
        "count that the masked mean and variance are computed from. Tested: "
        "`test_mask_counts_unmasked_values`, the masked case of "
        "`test_backends_agree`.",
        "- **Synchronized replicas** (`synchronized=True`, TensorFlow): n is the "
        "global count, all-reduced like the statistics, because the variance "
        "is the global batch's. Without synchronization each replica corrects "
        "its own variance with its own count, the unbiased estimate of what it "
        "saw. Tested: `test_mirrored_strategy_custom_loop`, "
        "`test_mirrored_strategy_fit`, `test_synchronized_counts_all_replicas`.",
        "- **Renorm** (`renorm=True`): unchanged. The Batch Renormalization "
        "paper (Ioffe, 2017, Algorithm 1) averages the batch standard deviation "
        "sqrt(var_B + epsilon), with the biased var_B, and infers with that "
        "average; Keras follows it (`moving_stddev`, from which "
        "`moving_variance` is derived, and `renorm_stddev` for r and d). A "
        "factor n / (n - 1) would not make an average of standard deviations "
        "unbiased (E[s_u] < sigma for finite n, by Jensen's inequality), and "
        "would depart from the paper that the option implements. The "
        "docstring says so. Tested: "
        "`test_renorm_keeps_the_batch_renormalization_rule`.",
        "- **Mixed precision**: the layer upcasts float16 and bfloat16 inputs to "
        "float32, and the moving variables are float32; the factor is applied "
        "in float32, where n / (n - 1) is exact enough (relative rounding "
        "2**-24). Tested: `test_mixed_precision`.",
        "- **n from the runtime shape**: a Python int when the shape is static, "
        "a tensor otherwise (unknown batch size in `tf.function`, partial last "
        "batch in `fit`). Tested: `test_unknown_batch_size_in_tf_function`, "
        "`test_partial_last_batch_in_fit`, the `fit` case of "
        "`test_backends_agree`.",
        "",
    ]


def render(results):
    sections = (
        header(results),
        math_section(),
        reproduction_section(results),
        comparison_section(results),
        change_section(results),
        parity_section(results),
        report_matrix.parity_section(results),
        distributed_section(results),
        checkpoint_section(results),
        report_matrix.matrix_section(results),
        noticeable_section(results),
        decisions_section(),
    )
    return "\n".join(line for section in sections for line in section).rstrip() + "\n"


def write(ws, results_dir=None, output=None):
    """Writes the analysis; returns (path, notes about missing or stale data)."""
    results = load(ws, results_dir or ws.root / "out" / "results")
    text = render(results)
    path = Path(output or ws.root / "docs" / "analysis.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    notes = [f"{s.env}: stale, {s.stale}" for s in results.sources if s.stale]
    missing = sum(
        line.count(NOT_MEASURED) for line in text.splitlines() if line.startswith("|")
    )
    if missing:
        notes.append(f"{missing} table cells {NOT_MEASURED}")
    return path, notes
