"""The named tables of docs/tf-keras.md (`kbb report --tf-keras`,
kbb.report.tf_keras), rendered from fixture results."""

import pytest

from conftest import record_results
from kbb import KbbError
from kbb import markdown
from kbb import results
from kbb.report import tf_keras

DOC = (
    "# tf-keras\n\nProse before.\n\n"
    f"{tf_keras.BEGIN}\nold tables\n{tf_keras.END}\n\nProse after.\n"
)


def write(ws, env, patched, records):
    record_results(ws, "tf-keras", env, patched, records)


def figures(variance, converged):
    issue = {"scenario": "issue-8982", "implementation": "tf-keras-nonfused"}
    issue.update(moving_variance=variance, biased_reference=0.5)
    issue.update(unbiased_reference=1.0, data_variance=1.0)
    out = [issue]
    for implementation in tf_keras.LABELS:
        out.append(
            {
                "scenario": "convergence",
                "implementation": implementation,
                "n": 2,
                "converged": converged,
            }
        )
    for mask in (False, True):
        reduces = {"scenario": "synchronized-all-reduces", "mask": mask}
        out.append({**reduces, "all_reduces_per_call": 2 + mask})
    return out


def rows(text, name):
    table = markdown.tables(text)[name]
    return [markdown.header(line) for line in table.splitlines()[2:]]


def test_writes_the_named_tables_between_the_markers(ws):
    (ws.root / "docs").mkdir()
    (ws.root / tf_keras.DOC).write_text(DOC)
    write(ws, "tf-keras-pristine", False, figures(0.5, 0.5))
    write(ws, "tf-keras-patched", True, figures(1.0, 1.0))
    text = tf_keras.write(ws).read_text()
    assert text.startswith("# tf-keras\n\nProse before.\n\n" + tf_keras.BEGIN)
    assert text.endswith(f"{tf_keras.END}\n\nProse after.\n")
    assert "old tables" not in text
    version = ws.pin("tf-keras").version
    reproduction = rows(text, "tf-keras-reproduction")
    assert [r[1] for r in reproduction] == ["0.5000", "1.0000"]
    assert reproduction[1][0].endswith("+ this PR")
    assert rows(text, "tf-keras-convergence") == [
        ["2", "0.5000", "0.5000", "0.5000", "1.0000", "1.0000"]
    ]
    assert rows(text, "tf-keras-convergence-before")[0][2:] == ["0.5000", "0.5000"]
    assert rows(text, "tf-keras-all-reduces")[0][1:] == ["2 / 3", "2 / 3"]
    assert f"{version} + this PR" in markdown.tables(text)["tf-keras-all-reduces"]
    assert results.stamp_line(ws, ws.pin("tf-keras"), "bessel") in text


def test_refuses_a_missing_result_and_a_document_without_markers(ws):
    (ws.root / "docs").mkdir()
    (ws.root / tf_keras.DOC).write_text(DOC)
    write(ws, "tf-keras-pristine", False, figures(0.5, 0.5))
    with pytest.raises(KbbError, match="missing: .*tox -e tf-keras-patched"):
        tf_keras.write(ws)
    (ws.root / tf_keras.DOC).write_text("# tf-keras\n")
    with pytest.raises(KbbError, match="needs one"):
        tf_keras.write(ws)
