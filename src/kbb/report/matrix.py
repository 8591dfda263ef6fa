"""The tables of docs/analysis.md about Keras' CI matrix and tf_keras
parity (see kbb.report): the counts of upstream's tests in each cell of
Keras' CI (tests/upstream_plugin.py), and the side-by-side training against
tf_keras (tests/evidence/test_tf_keras_parity.py).
"""

from kbb.report import data
from kbb.report.data import NOT_MEASURED

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
# Upstream's integration tests: pristine keras, the fix.
INTEGRATION_ENVS = ("integration-pristine", "integration")
OUTCOMES = ("passed", "skipped", "failed", "error")


def matrix_values(results):
    rows = []
    for env, cell in MATRIX_ENVS:
        entries = results.find(scenario="upstream-tests", env=env)
        if not entries:
            rows.append((f"`{env}`", cell, NOT_MEASURED, "", "", "", "", ""))
        for entry in entries:
            tests = ", ".join(f"`{t}`" for t in entry["tests"])
            counts = (f"{entry[o]}{data.stale(entry)}" for o in OUTCOMES)
            rows.append((f"`{env}`", cell, f"`{entry['keras']}`", tests, *counts))
    head = "environment | backend | keras | tests | " + " | ".join(OUTCOMES)
    return {
        "ci_matrix_table": data.table(head, rows, "ci-matrix"),
        "integration_table": _integration_table(results),
    }


def _integration_table(results):
    rows = []
    for env in INTEGRATION_ENVS:
        for e in results.find(scenario="upstream-integration", env=env):
            # A --git-url names a folder or mirror of the machine that ran.
            url = "the pinned git-url" if e["git_url"] == "pinned" else "`--git-url`"
            status = "passed" if e["exitstatus"] == 0 else f"exit {e['exitstatus']}"
            test, keras = f"`{e['test']}`", f"`{e['keras']}`"
            if e.get("data"):  # a run on tests/stand_in_mnist.py's data
                test += f", on {e['data']}"
            time = f"{e['seconds']:.0f} s"
            rows.append((test, e["backend"], keras, url, status + data.stale(e), time))
    if not rows:
        rows.append((NOT_MEASURED, "", "", "", "", ""))
    head = "script | backend | keras | repository | result | time"
    return data.table(head, rows, "upstream-integration")


def parity_values(results):
    counts = sorted({e["n"] for e in results.find(scenario="tf-keras-parity")})
    rows = []
    for n in counts:
        cells = [n, f"{n / (n - 1):.6f}"]
        for env in PARITY_ENVS:
            entry = results.first(scenario="tf-keras-parity", env=env, n=n)
            if entry is None:
                cells += [NOT_MEASURED] * 2
                continue
            low, high = f"{entry['ratio_min']:.6f}", f"{entry['ratio_max']:.6f}"
            ratio = low if low == high else f"{low} to {high}"
            cells += [ratio + data.stale(entry), f"{entry['predictions_gap']:.1e}"]
        rows.append(cells)
    if not rows:
        rows.append([NOT_MEASURED] * 6)
    head = (
        "n | n/(n-1) | ratio, before the fix | predictions, before the fix | "
        "ratio, with the fix | predictions, with the fix"
    )
    return {"tf_keras_parity_table": data.table(head, rows, "tf-keras-parity")}
