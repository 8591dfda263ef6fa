"""The tables of docs/analysis.md about Keras' CI matrix and tf_keras parity
(kbb.report.upstream, kbb.report.evidence), rendered from fixture results."""

from conftest import record_results
from kbb import markdown
from kbb.pr import config as pr_config
from kbb.pr import numbers
from kbb.report import analysis


def write(ws, env, patched, records):
    records = [{"implementation": "keras3", **r} for r in records]
    record_results(ws, "keras", env, patched, records)


def parity(n, ratio, gap, predictions):
    return {
        "scenario": "tf-keras-parity",
        "test": f"test_tf_keras_parity[{n}]",
        "n": n,
        "ratio_min": ratio,
        "ratio_max": ratio,
        "moving_variance_gap": gap,
        "predictions_gap": predictions,
    }


def upstream(tests, passed, skipped):
    return {
        "scenario": "upstream-tests",
        "test": "upstream-tests",
        "tests": tests,
        "passed": passed,
        "skipped": skipped,
        "failed": 0,
        "error": 0,
    }


def rows(text, name):
    table = markdown.tables(text)[name]
    return [markdown.header(line) for line in table.splitlines()[2:]]


def test_tables(ws):
    write(ws, "evidence-pristine", False, [parity(2, 2.0000004, 0.46, 0.093)])
    write(ws, "evidence-patched", True, [parity(2, 0.9999996, 5e-7, 3e-7)])
    tests = ["keras/src/layers/normalization"]
    write(ws, "patched-numpy", True, [upstream(tests, 67, 9)])
    integration = {
        "scenario": "upstream-integration",
        "test": "integration_tests/tf_distribute_training_test.py",
        "git_url": "pinned",
        "exitstatus": 0,
        "seconds": 54.8,
    }
    write(ws, "integration", True, [integration])
    text = analysis.write(ws)[0].read_text()
    assert markdown.header(markdown.tables(text)["tf-keras-parity"]) == [
        "n",
        "n/(n-1)",
        "ratio, before the fix",
        "predictions, before the fix",
        "ratio, with the fix",
        "predictions, with the fix",
    ]
    assert rows(text, "tf-keras-parity") == [
        ["2", "2.000000", "2.000000", "9.3e-02", "1.000000", "3.0e-07"]
    ]
    matrix = {row[0]: row for row in rows(text, "ci-matrix")}
    assert matrix["`patched-numpy`"][1:] == [
        "numpy",
        f"`{ws.pin('keras').version}+bessel1`",
        "`keras/src/layers/normalization`",
        "67",
        "9",
        "0",
        "0",
    ]
    assert analysis.NOT_MEASURED in matrix["`patched-openvino`"]
    assert rows(text, "upstream-integration")[0][4:] == ["passed", "55 s"]


def test_ci_envs_are_reported_not_shown(ws):
    config = pr_config.load(ws, "keras")
    assert "patched-numpy" in config.ci_envs
    write(ws, "patched-numpy", True, [upstream(["keras/src"], 1, 0)])
    evidence = numbers.collect(ws, ws.pin("keras"), config)
    states = dict((env, state) for env, state, _ in evidence.statuses)
    assert states["patched-numpy"] == "current"
    assert states["patched-openvino"] == "missing"
    assert not any("patched-openvino" in mark for mark in evidence.marks)
