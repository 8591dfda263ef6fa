"""Sections of docs/analysis.md about Keras' CI matrix and tf_keras parity
(`kbb.report` renders them): the counts of upstream's tests in each cell of
Keras' CI, and the side-by-side training against tf_keras of
tests/evidence/test_tf_keras_parity.py. Each table is named by a
`<!-- table: NAME -->` line, which `kbb pr` looks up.
"""

from kbb import report

# The cells of Keras' CI beyond the default list: (env, what it runs).
MATRIX_ENVS = (
    ("patched", "tensorflow"),
    ("patched-jax", "jax"),
    ("patched-torch", "torch"),
    ("pristine-numpy", "numpy"),
    ("patched-numpy", "numpy"),
    ("pristine-openvino", "openvino"),
    ("patched-openvino", "openvino"),
    ("pristine-nnx", "jax, NNX (flax)"),
    ("patched-nnx", "jax, NNX (flax)"),
    ("pristine-multidevice", "jax, 4 CPU devices, `-m multi_device`"),
    ("patched-multidevice", "jax, 4 CPU devices, `-m multi_device`"),
)
PARITY_ENVS = ("evidence-pristine", "evidence-patched")
OUTCOMES = ("passed", "skipped", "failed", "error")


def _mark(name):
    return f"<!-- table: {name} -->"


def _stale(entry):
    return " (stale)" if entry["stale"] else ""


def matrix_section(results):
    rows = []
    for env, cell in MATRIX_ENVS:
        entries = results.find(scenario="upstream-tests", env=env)
        if not entries:
            rows.append((f"`{env}`", cell, report.NOT_MEASURED, "", "", "", "", ""))
            continue
        for entry in entries:
            rows.append(
                (
                    f"`{env}`",
                    cell,
                    f"`{entry['keras']}`",
                    ", ".join(f"`{t}`" for t in entry["tests"]),
                    *(f"{entry[o]}{_stale(entry)}" for o in OUTCOMES),
                )
            )
    return [
        "## Upstream's tests in the cells of Keras' CI",
        "",
        "Keras' CI runs its tests on the TensorFlow, JAX, PyTorch, NumPy and "
        "OpenVINO backends, on JAX with NNX, and its `multi_device` tests on "
        "JAX with 4 CPU devices. Each environment below runs upstream's tests "
        "from the tree of the build it installs (`pristine-*`: the release's "
        "own tests on the release; the others: the fix's tests on the fix), "
        "skipping what upstream's conftest.py skips there "
        "(tests/upstream_plugin.py). No `multi_device` test of the release "
        "uses BatchNormalization: that cell shows that the fix breaks none.",
        "",
        _mark("ci-matrix"),
        *report._table(
            "environment | backend | keras | tests | " + " | ".join(OUTCOMES),
            rows,
        ),
    ]


def _ratio(entry):
    low, high = f"{entry['ratio_min']:.6f}", f"{entry['ratio_max']:.6f}"
    return low if low == high else f"{low} to {high}"


def parity_section(results):
    counts = sorted(
        {e["n"] for e in results.find(scenario="tf-keras-parity") if "n" in e}
    )
    rows = []
    for n in counts:
        cells = [n, f"{n / (n - 1):.6f}"]
        for env in PARITY_ENVS:
            entry = results.first(scenario="tf-keras-parity", env=env, n=n)
            if entry is None:
                cells += [report.NOT_MEASURED] * 3
                continue
            cells += [
                _ratio(entry) + _stale(entry),
                f"{entry['moving_variance_gap']:.1e}",
                f"{entry['predictions_gap']:.1e}",
            ]
        rows.append(cells)
    if not rows:
        rows.append([report.NOT_MEASURED] * 8)
    return [
        "## Parity with tf_keras",
        "",
        "tests/evidence/test_tf_keras_parity.py trains the same model (Conv2D, "
        "BatchNormalization, ReLU, Flatten, Dense) with Keras 3 and with "
        "tf_keras 2.21.0 from the same initial weights on the same seeded "
        "images (20 steps of `fit`, momentum 0.9). tf_keras normalizes 4D "
        "inputs with FusedBatchNormV3, whose running variance is unbiased. "
        "'ratio' is tf_keras' batch part of the moving variance over Keras "
        "3's, over the channels (the part that the 20 batches contributed: "
        "the moving variance less 0.9**20, what remains of its start value "
        "1): the biased rule makes it n/(n-1), asserted in `evidence-pristine` "
        "to 5e-5 relative; the fix makes it 1, asserted in `evidence-patched`. "
        "'gap' is the largest relative difference of the moving variances; "
        "'predictions' the largest difference of the predicted probabilities "
        "(asserted at most 1e-4 with the fix; pristine keras agrees as well "
        "once tf_keras is given its moving variance).",
        "",
        _mark("tf-keras-parity"),
        *report._table(
            (
                "n",
                "n/(n-1)",
                "pristine: ratio",
                "pristine: gap",
                "pristine: predictions",
                "fix: ratio",
                "fix: gap",
                "fix: predictions",
            ),
            rows,
        ),
    ]
