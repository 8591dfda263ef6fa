"""`kbb report`: docs/analysis.md from recorded figures, reporting what is
missing or stale instead of leaving it out."""

import json
import os
import shutil
from pathlib import Path

import pytest

from kbb import KbbError
from kbb import report
from kbb.pins import Workspace

PINS = Path(__file__).resolve().parents[2] / "pins.toml"


@pytest.fixture
def ws(tmp_path):
    shutil.copy(PINS, tmp_path / "pins.toml")
    (tmp_path / "out" / "results").mkdir(parents=True)
    return Workspace.find(tmp_path)


def write(ws, env, keras, converged):
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
        for n in report.CONVERGENCE_N
    ]
    path = ws.root / "out" / "results" / f"{env}.json"
    path.write_text(json.dumps(entries))
    return path


def row(text, label):
    return next(line for line in text.splitlines() if line.startswith(f"| {label}"))


def test_no_results_is_an_error(ws):
    with pytest.raises(KbbError, match="no results"):
        report.write(ws)


def test_missing_and_stale_figures_are_reported(ws):
    pinned = ws.pin("keras").version
    write(ws, "patched", f"{pinned}+bessel1", 0.99887)
    write(ws, "pristine", "3.0.0", 0.49871)
    path, notes = report.write(ws)
    text = path.read_text()
    assert path == ws.root / "docs" / "analysis.md"
    assert "0.9989 | " in row(text, "Keras 3 patched, tensorflow backend")
    assert "0.4987 (stale)" in row(text, "Keras 3 pristine, tensorflow backend")
    assert "stale: measured with keras 3.0.0" in row(text, "`pristine`")
    assert report.NOT_MEASURED in row(text, "tf-keras patched, non-fused")
    assert report.NOT_MEASURED in row(text, "Keras 3 patched, jax backend")
    assert "Expected results missing: `pristine-jax`" in text
    assert notes[0].startswith("pristine: stale")


def test_results_older_than_the_last_commit_are_stale(ws):
    path = write(ws, "patched", f"{ws.pin('keras').version}+bessel1", 1.0)
    os.utime(path, (1000, 1000))
    pinned = ws.pin("keras").version
    reason = report._stale(path, json.loads(path.read_text()), pinned, 2000)
    assert reason == "older than the last commit to patches/, tests/ or pins.toml"
