"""The tables of docs/analysis.md about upstream's own tests (see
kbb.report): the counts of upstream's tests in each cell of Keras' CI
(tests/upstream_plugin.py) and its integration tests; and upstream's test
files that use BatchNormalization outside its own folder
(tests/upstream/test_bn.py, `tox -e upstream-bn-{pristine,patched,native}`):
each build's counts per backend, the tests whose outcome differs from
pristine keras', and the causes of the failures."""

from kbb import BACKENDS
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
# Upstream's integration tests: pristine keras, the fix.
INTEGRATION_ENVS = ("integration-pristine", "integration")
OUTCOMES = ("passed", "skipped", "failed", "error")  # the CI matrix's columns

BN_BACKENDS = BACKENDS  # the backends upstream-bn runs on
# The builds, by environment: pristine first, the one the others compare with.
BN_ENVS = ("upstream-bn-pristine", "upstream-bn-patched", "upstream-bn-native")
COUNTS = ("passed", "failed", "skipped", "error")  # upstream-bn's columns


def _matrix_table(results):
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
    return data.table(head, rows, "ci-matrix")


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


def differences(before, after):
    """[(test, outcome before, outcome after)] of two runs' entries
    (tests/upstream_plugin.py), "absent" for a test that one did not run;
    a test that only the build has and that passed (the patch's own, see
    `added`) is not a difference."""
    old, new = before["outcomes"], after["outcomes"]
    return [
        (test, old.get(test, "absent"), new.get(test, "absent"))
        for test in sorted(old.keys() | new.keys())
        if old.get(test) != new.get(test) and test not in added(before, after)
    ]


def added(before, after):
    """The tests that only the build ran, and passed: its patches' new tests."""
    old, new = before["outcomes"], after["outcomes"]
    return sorted(t for t, o in new.items() if t not in old and o == "passed")


def _measured(results):
    """{(backend, env): its entry, or None} of each build on each backend:
    pristine's and the fix's, and the native group's if recorded."""
    native = results.find(scenario="upstream-tests", env=BN_ENVS[2])
    return {
        (backend, env): results.first(
            scenario="upstream-tests", env=env, backend=backend
        )
        for backend in BN_BACKENDS
        for env in (BN_ENVS if native else BN_ENVS[:2])
    }


def _counts_rows(measured, diffs):
    rows = []
    for (backend, env), entry in measured.items():
        if entry is None:
            rows.append((backend, f"`{env}`", NOT_MEASURED, "", "", "", "", ""))
            continue
        if env == BN_ENVS[0]:
            against = "(the reference)"
        elif (backend, env) not in diffs:
            against = NOT_MEASURED
        else:
            count = len(diffs[backend, env])
            against = f"{count} differ" if count else "identical"
            more = len(added(measured[backend, BN_ENVS[0]], entry))
            against += f" (+{more} new, passed)" if more else ""
        cells = (f"{entry[o]}{data.stale(entry)}" for o in COUNTS)
        rows.append((backend, f"`{env}`", f"`{entry['keras']}`", *cells, against))
    return rows


def _difference_lines(diffs):
    lines = [
        f"- {backend}, `{env}`: `{test}`: {was} on pristine, {now} there"
        for (backend, env), found in diffs.items()
        for test, was, now in found
    ]
    if lines:
        return "\n".join(lines) + "\n"
    if diffs:
        compared = sorted({f"`{env}`" for _, env in diffs})
        backends = [b for b in BN_BACKENDS if any(b == k[0] for k in diffs)]
        return (
            f"No test's outcome differs from pristine's ({', '.join(compared)}; "
            f"{', '.join(backends)}).\n"
        )
    return f"Outcomes against pristine's: {NOT_MEASURED}.\n"


def _failure_rows(measured):
    """One row per failure message: its tests, and the builds they failed
    on ("all": every build measured on their backend)."""
    causes, ran = {}, {}
    for (backend, env), entry in measured.items():
        if entry is None:
            continue
        ran.setdefault(backend, set()).add(env)
        for test, message in entry.get("messages", {}).items():
            # The first sentence, fit for a code span.
            cause = message.split(". ")[0].replace("`", "'")
            found = causes.setdefault(cause, {})
            found.setdefault((backend, test), set()).add(env)
    rows = []
    for message, found in sorted(causes.items(), key=lambda c: (-len(c[1]), c[0])):
        tests = {test for _, test in found}
        files = sorted({t.split("::")[0].removeprefix("keras/src/") for t in tests})
        backends = [b for b in BN_BACKENDS if any(b == k[0] for k in found)]
        if all(where == ran[b] for (b, _), where in found.items()):
            builds = "all"
        else:
            builds = ", ".join(sorted({f"`{e}`" for w in found.values() for e in w}))
        named = ", ".join(f"`{f}`" for f in files)
        rows.append((f"`{message}`", len(tests), named, ", ".join(backends), builds))
    return rows or [("none", "", "", "", "")]


def values(results):
    measured, diffs = _measured(results), {}
    for (backend, env), after in measured.items():
        before = measured[backend, BN_ENVS[0]]
        if env != BN_ENVS[0] and before and after:
            diffs[backend, env] = differences(before, after)
    head = ("backend", "build", "keras", *COUNTS, "outcomes against pristine")
    failures = "cause | tests | files | backends | builds"
    return {
        "ci_matrix_table": _matrix_table(results),
        "integration_table": _integration_table(results),
        "upstream_bn_table": data.table(
            head, _counts_rows(measured, diffs), "upstream-bn"
        ),
        "upstream_bn_differences": _difference_lines(diffs),
        "upstream_bn_failures": data.table(
            failures, _failure_rows(measured), "upstream-bn-failures"
        ),
    }
