"""The study's parts that need no ML framework: the worker pool of `kbb
study` (each worker a plain Python process here) and the doctests."""

import doctest
import sys
import time

import pytest

from kbb import KbbError
from kbb.study import config
from kbb.study import metrics
from kbb.study import render
from kbb.study import run
from kbb.study import stats


def python(code):
    return [sys.executable, "-c", code], None


def test_workers_run_with_their_logs(tmp_path):
    commands = {f"w{i}": python(f"print({i})") for i in range(3)}
    run.run_workers(commands, tmp_path, jobs=2)
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(3)]
    assert logs == ["0\n", "1\n", "2\n"]


def test_a_failed_worker_stops_the_others(tmp_path):
    started = tmp_path / "started"
    commands = {
        "slow": python("import time; time.sleep(60)"),
        "broken": python("import time; time.sleep(1); raise SystemExit('no data')"),
        "pending": python(f"open({str(started)!r}, 'w')"),
    }
    t0 = time.monotonic()
    with pytest.raises(KbbError, match=r"worker broken failed \(exit 1\): no data;"):
        run.run_workers(commands, tmp_path, jobs=2)
    assert time.monotonic() - t0 < 30  # slow was terminated
    assert not started.exists()  # pending never started


@pytest.mark.parametrize("module", [config, metrics, stats, render, run])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0
