"""`kbb report`: docs/analysis.md from recorded figures, reporting what is
missing or stale instead of leaving it out."""

import dataclasses

import pytest

from kbb import KbbError
from kbb import markdown
from kbb import results
from kbb.report import analysis


def write(ws, env, keras, converged, pin_digest=None):
    """ENV.json of a keras build `keras`, as `kbb install` stamps it."""
    pin = ws.pin("keras")
    patched = "+" in keras
    build = results.Build(
        target="keras",
        ref="group/bessel" if patched else "pristine",
        commit="0" * 40,
        version=keras,
        series=results.series_digest(ws, pin, "bessel") if patched else None,
        unexported=False,
        pin=pin_digest or pin.digest(),
        group="bessel" if patched else None,
    )
    entries = [
        {
            "implementation": "keras3",
            "keras": keras,
            "backend": "tensorflow",
            "scenario": "convergence",
            "test": f"test_converges[{n}]",
            "n": n,
            "converged": converged,
        }
        for n in analysis.CONVERGENCE_N
    ]
    directory = ws.root / "out" / "results"
    results.write(directory, env, entries, {"keras": dataclasses.asdict(build)})
    return directory / f"{env}.json"


def row(text, label):
    return next(line for line in text.splitlines() if line.startswith(f"| {label}"))


def test_no_results_is_an_error(ws):
    with pytest.raises(KbbError, match="no results"):
        analysis.write(ws)


def test_missing_and_stale_figures_are_reported(ws):
    pinned = ws.pin("keras").version
    write(ws, "patched", f"{pinned}+bessel1", 0.99887)
    write(ws, "pristine", "3.0.0", 0.49871, pin_digest="0" * 64)
    path, notes = analysis.write(ws)
    text = path.read_text()
    assert path == ws.root / "docs" / "analysis.md"
    assert "0.9989 | " in row(text, "Keras 3 patched, tensorflow backend")
    assert "0.4987 (stale)" in row(text, "Keras 3 pristine, tensorflow backend")
    assert "stale: measured 3.0.0, built from another pins.toml [keras]" in row(
        text, "`pristine`"
    )
    assert analysis.NOT_MEASURED in row(text, "tf-keras patched, non-fused")
    assert analysis.NOT_MEASURED in row(text, "Keras 3 patched, jax backend")
    assert "Expected results missing: `pristine-jax`" in text
    assert notes[0].startswith("pristine: stale")
    # The environments are tox.ini's, declared once.
    assert "tox -e " + ",".join(ws.tox_envs("testenv:report", "depends")) in text


def test_results_of_another_series_are_stale(ws):
    path = write(ws, "patched", f"{ws.pin('keras').version}+bessel1", 1.0)
    assert results.status(ws, path.parent, "patched", ws.pin("keras"))[0] == "current"
    # A comment of the series file, or a group after the build's, changes
    # nothing it was built from.
    series = ws.patches("keras") / "series"
    series.write_text(series.read_text() + "# a comment\n")
    native = next((ws.patches("keras") / "native").glob("*.patch"))
    native.write_text(native.read_text() + "\n")
    assert results.status(ws, path.parent, "patched", ws.pin("keras"))[0] == "current"
    # A patch of its group does.
    bessel = next((ws.patches("keras") / "bessel").glob("*.patch"))
    bessel.write_text(bessel.read_text() + "\n")
    state, line = results.status(ws, path.parent, "patched", ws.pin("keras"))
    assert state == "stale" and "another patches/keras/ than now" in line


def test_every_table_is_named(ws):
    write(ws, "patched", f"{ws.pin('keras').version}+bessel1", 1.0)
    path, _ = analysis.write(ws)
    text = path.read_text()
    named = markdown.tables(text)
    assert text.count("\n|---") == len(named)
    assert markdown.header(named["comparison"])[0] == "implementation"
    assert markdown.header(named["reproduction"])[:2] == ["keras", "backend"]


def test_a_document_of_the_fix_stays_current_when_a_later_group_changes(ws):
    pin = ws.pin("keras")
    doc = ws.root / "doc.md"
    doc.write_text("figures\n" + results.stamp_line(ws, pin, "bessel") + "\n")
    assert results.doc_staleness(ws, doc, pin) is None
    native = next((ws.patches("keras") / "native").glob("*.patch"))
    native.write_text(native.read_text() + "\n")
    assert results.doc_staleness(ws, doc, pin) is None
    bessel = next((ws.patches("keras") / "bessel").glob("*.patch"))
    bessel.write_text(bessel.read_text() + "\n")
    assert "was generated for another patches/keras/" in results.doc_staleness(
        ws, doc, pin
    )
