"""pytest plugin for running upstream Keras' own test files, from a tree that
`kbb tree` writes, against the installed build (`pytest -p upstream_plugin`).

The keras sdist ships its tests without the repository's conftest.py, which
Keras' CI runs them with; this plays its part, as the pinned release's
conftest.py does:

- torch is imported before TensorFlow where both are installed (in the
  other order, importing torch can crash);
- `requires_trainable_backend` tests are skipped on the NumPy and OpenVINO
  backends, which cannot train;
- `multi_device` tests are skipped unless the JAX backend sees more than one
  device (`JAX_NUM_CPU_DEVICES=4`, as Keras' CI sets);
- on the OpenVINO backend, the tests named in the tree's
  keras/src/backend/openvino/excluded_concrete_tests.txt are skipped. A git
  checkout has that file; the sdist leaves it out, and then none is skipped
  (the list of v3.15.1 names no test of keras/src/layers/normalization).

`--upstream-files-with TEXT` collects only the test files whose text holds
TEXT: `pytest TREE/keras -m multi_device --upstream-files-with multi_device`
runs what Keras' CI runs with `pytest keras -m multi_device`, without
importing the thousand other test files (whose imports need every backend
and optional package of upstream's requirements.txt).

With $KBB_RESULTS set, the run's counts go to $KBB_RESULTS/$KBB_ENV.json
(kbbtest.Results' format, scenario "upstream-tests"), next to the figures
that the environment's other test sessions wrote there, with each test's
outcome ("outcomes": {node id: outcome}) and each failure's message
("messages": {node id: its first line}), so that two builds' runs can be
compared test by test (kbb.report.upstream).
"""

import importlib.util
import os
from pathlib import Path

import pytest

import kbbtest

OPENVINO_EXCLUDES = "keras/src/backend/openvino/excluded_concrete_tests.txt"
OUTCOMES = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")


def pytest_addoption(parser):
    parser.addoption(
        "--upstream-files-with",
        metavar="TEXT",
        help="collect only the *_test.py files whose text contains TEXT",
    )


def pytest_ignore_collect(collection_path, config):
    text = config.getoption("upstream_files_with")
    path = Path(collection_path)
    if text and path.is_file() and path.name.endswith("_test.py"):
        return text not in path.read_text(encoding="utf-8")
    return None


def pytest_configure(config):
    if importlib.util.find_spec("torch"):
        import torch  # noqa: F401
    config.addinivalue_line(
        "markers",
        "requires_trainable_backend: skipped on the NumPy and OpenVINO "
        "backends, which cannot train",
    )
    config.addinivalue_line(
        "markers",
        "multi_device: skipped unless the JAX backend sees several devices",
    )


def _device_count(backend):
    if backend != "jax":
        return 1
    import jax

    return jax.device_count()


def _openvino_excludes(rootdir):
    path = Path(rootdir, OPENVINO_EXCLUDES)
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def pytest_collection_modifyitems(config, items):
    from keras.src import backend

    name = backend.backend()
    untrainable = pytest.mark.skip(
        reason=f"the {name} backend cannot train (requires_trainable_backend)"
    )
    single = pytest.mark.skip(reason="requires several devices (multi_device)")
    excluded = pytest.mark.skip(reason=f"excluded on openvino by {OPENVINO_EXCLUDES}")
    several = _device_count(name) > 1
    excludes = _openvino_excludes(config.rootpath) if name == "openvino" else []
    for item in items:
        if name in ("numpy", "openvino"):
            if "requires_trainable_backend" in item.keywords:
                item.add_marker(untrainable)
        if not several and "multi_device" in item.keywords:
            item.add_marker(single)
        if any(test in item.nodeid for test in excludes):
            item.add_marker(excluded)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if os.environ.get("KBB_RESULTS"):
        _record(terminalreporter.stats, int(exitstatus), config)


def _record(stats, exitstatus, config):
    """Adds this run's counts to $KBB_RESULTS/$KBB_ENV.json, replacing those
    of an earlier run of the same tests."""
    import keras

    root = config.rootpath
    tests = sorted(os.path.relpath(arg.split("::")[0], root) for arg in config.args)
    name = keras.backend.backend()
    entry = {
        "implementation": "keras3",
        "test": "upstream-tests",
        "keras": keras.version(),
        "backend": name,
        "scenario": "upstream-tests",
        "ref": os.environ.get("KBB_REF"),
        "tests": tests,
        "markexpr": config.option.markexpr or None,
        "nnx": keras.config.is_nnx_enabled() if name == "jax" else False,
        "devices": _device_count(name),
        "exitstatus": exitstatus,
        "failed_tests": sorted(
            {r.nodeid for r in stats.get("failed", []) + stats.get("error", [])}
        ),
        "deselected": len(stats.get("deselected", [])),
        "outcomes": {
            r.nodeid: outcome for outcome in OUTCOMES for r in stats.get(outcome, [])
        },
        "messages": {
            r.nodeid: _message(r)
            for r in stats.get("failed", []) + stats.get("error", [])
        },
    }
    for outcome in OUTCOMES:
        entry[outcome] = len(stats.get(outcome, []))
    results = kbbtest.Results()
    results.keep_earlier(
        lambda e: not (
            e.get("scenario") == "upstream-tests"
            and e.get("tests") == tests
            and e.get("backend") == name
        )
    )
    results.entries.append(entry)
    results.write()


def _message(report):
    """The first line of a failure's message (its exception and text); for
    a file that could not be collected, its last `E` line."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash:
        return crash.message.strip().split("\n")[0][:200]
    lines = str(report.longrepr).splitlines()
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return (errors or lines or [""])[-1][:200]
