"""The section of docs/analysis.md about upstream's tests that use
BatchNormalization on both builds (kbb.report.upstream), rendered from
fixture results."""

from test_report_matrix import rows
from test_report_matrix import write

from kbb import markdown
from kbb.report import analysis
from kbb.report import upstream

ONNX = "keras/src/export/onnx_test.py"
MISSING = "ModuleNotFoundError: No module named 'onnxruntime'"


def outcomes_record(backend, outcomes):
    counts = {o: list(outcomes.values()).count(o) for o in upstream.COUNTS}
    return {
        "scenario": "upstream-tests",
        "test": "upstream-tests",
        "backend": backend,
        "tests": ["keras/src/ops/nn_test.py", ONNX],
        "outcomes": outcomes,
        "messages": {t: MISSING for t, o in outcomes.items() if o == "error"},
        **counts,
    }


def test_identical_and_differing_outcomes(ws):
    same = {"a::test_x": "passed", "a::test_y": "skipped", ONNX: "error"}
    pristine = [outcomes_record(b, same) for b in upstream.BN_BACKENDS]
    write(ws, "upstream-bn-pristine", False, pristine)
    changed = {**same, "a::test_y": "failed"}
    patched = [outcomes_record("tensorflow", same), outcomes_record("jax", changed)]
    write(ws, "upstream-bn-patched", True, patched)
    text = analysis.write(ws)[0].read_text()
    table = {(row[0], row[1]): row[2:] for row in rows(text, "upstream-bn")}
    assert table["tensorflow", "`upstream-bn-pristine`"][1:] == [
        "1",
        "0",
        "1",
        "1",
        "(the reference)",
    ]
    assert table["tensorflow", "`upstream-bn-patched`"][-1] == "identical"
    assert table["jax", "`upstream-bn-patched`"][-1] == "1 differ"
    assert table["torch", "`upstream-bn-patched`"][0] == analysis.NOT_MEASURED
    assert "- jax, `upstream-bn-patched`: `a::test_y`: skipped on pristine" in text
    failures = markdown.tables(text)["upstream-bn-failures"]
    assert f"| `{MISSING}` | 1 | `export/onnx_test.py` | tensorflow, jax, torch |" in (
        failures
    )
    # On every build measured (torch: pristine only).
    assert failures.splitlines()[2].endswith("| all |")
    patched[0]["messages"] = {}
    write(ws, "upstream-bn-patched", True, patched)
    failures = markdown.tables(analysis.write(ws)[0].read_text())[
        "upstream-bn-failures"
    ]
    assert failures.splitlines()[2].endswith(
        "| `upstream-bn-patched`, `upstream-bn-pristine` |"
    )


def test_identical_outcomes(ws):
    same = {"a::test_x": "passed", ONNX: "error"}
    for env, patched in (
        ("upstream-bn-pristine", False),
        ("upstream-bn-patched", True),
    ):
        write(ws, env, patched, [outcomes_record("torch", same)])
    text = analysis.write(ws)[0].read_text()
    assert (
        "No test's outcome differs from pristine's (`upstream-bn-patched`; torch)"
        in (text)
    )


def test_a_test_only_the_build_has_and_passes_is_added_not_a_difference():
    before = {"outcomes": {"a::t": "passed", "a::f": "failed"}}
    after = {"outcomes": {"a::t": "passed", "a::f": "failed", "a::new": "passed"}}
    assert upstream.differences(before, after) == []
    assert upstream.added(before, after) == ["a::new"]
    after["outcomes"]["a::broken"] = "failed"
    assert upstream.differences(before, after) == [("a::broken", "absent", "failed")]
