"""`kbb study --quick` end to end (tox -e impact-quick): both wheels
built and unpacked, a worker per build and backend, the results, the page
and the plot. A smoke test: its grid is too small for its numbers to mean
anything, except what holds at any size, checked here."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src")])}
    subprocess.run(
        [sys.executable, "-m", "kbb", "study", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    results = json.loads((tmp_path / "impact.json").read_text())
    builds = results["builds"]
    assert builds["pristine"]["keras"] == "3.15.1"
    assert builds["fix"]["keras"].startswith("3.15.1+bessel")
    settings = results["settings"]
    runs = results["runs"]
    grid = (
        len(settings["models"])
        * len(settings["backends"])
        * len(settings["batch_sizes"])
        * len(settings["seeds"])
    )
    assert len(runs) == 2 * grid
    assert len(results["pairing"]) == grid
    # Training never reads the moving statistics: same weights in each pair.
    assert all(p["max_abs_diff"] == 0 for p in results["pairing"]), results["pairing"]
    # Same trajectory, so the fix's moving variance is the larger one in
    # each pair (it adds var * (n / (n - 1) - 1) * (1 - momentum) per step).
    old = {
        (r["backend"], r["model"], r["batch_size"], r["seed"]): r
        for r in runs
        if r["build"] == "pristine"
    }
    for r in runs:
        if r["build"] == "fix":
            key = (r["backend"], r["model"], r["batch_size"], r["seed"])
            for new, pristine in zip(
                r["moving_variance_mean"],
                old[key]["moving_variance_mean"],
                strict=True,
            ):
                assert new > pristine
    page = (tmp_path / "impact.md").read_text()
    assert "Smoke run" in page
    assert "| model | batch | n per BN layer |" in page
    assert (tmp_path / "impact.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
