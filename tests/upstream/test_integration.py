"""Upstream Keras' integration tests that exercise BatchNormalization, as
Keras' CI runs them, against a build made from the git source (`tox -e
integration`, `tox -e integration-pristine`).

The integration tests are only in keras' repository (the sdist leaves them
out). In a scratch workspace this clones the repository at the pinned tag
and applies the series (`kbb apply keras --source git`; --git-url: another
clone or mirror), builds and installs the wheel of branch --ref (default:
group/bessel, the fix) into this Python, and writes its files. There it
runs, as `python integration_tests/SCRIPT` with KERAS_BACKEND set, what
Keras' CI runs on each backend:

- numerical_test.py (TensorFlow, JAX, PyTorch): a Conv2D and
  BatchNormalization model trained with Keras 3 and with tf_keras from the
  same weights, every weight compared within 1e-3. It loads MNIST with
  `keras.datasets.mnist.load_data()`, which downloads it unless it is
  cached under $KERAS_HOME/datasets or ~/.keras/datasets; with
  --stand-in-mnist it runs on random data of MNIST's shapes instead
  (tests/stand_in_mnist.py), for a machine without the network;
- tf_distribute_training_test.py (TensorFlow): BatchNormalization under
  MirroredStrategy on two logical CPUs.

With $KBB_RESULTS set, each run's exit status and duration go to
$KBB_RESULTS/$KBB_ENV.json (kbbtest.Results' format, scenario
"upstream-integration"), beside the recorded runs of the same build that
the session left out (`-k`).
"""

import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kbbtest
from conftest import ROOT
from conftest import workspace

# (script, backend), as Keras' CI runs them (.github/workflows/actions.yml).
RUNS = (
    ("integration_tests/numerical_test.py", "tensorflow"),
    ("integration_tests/numerical_test.py", "jax"),
    ("integration_tests/numerical_test.py", "torch"),
    ("integration_tests/tf_distribute_training_test.py", "tensorflow"),
)
# The script that loads MNIST.
MNIST = "integration_tests/numerical_test.py"
RESULTS = kbbtest.Results()


@pytest.fixture(scope="session")
def build(request, tmp_path_factory, ref):
    """{"repository": REF's files, "commit", "keras", "git_url"}: the series
    applied to a git checkout, the wheel of `ref` installed."""
    dest = tmp_path_factory.mktemp("integration")
    git_url = request.config.getoption("git_url")
    kbb = workspace(dest, "keras", git_url)
    repository = dest / "repository"
    kbb("install", "keras", "--ref", ref)
    kbb("tree", "keras", "--ref", ref, "--dest", str(repository))
    checkout = dest / "workspace" / ".upstream" / "keras"
    commit = subprocess.run(
        ["git", "rev-parse", ref],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    yield {
        "repository": repository,
        "commit": commit,
        "keras": importlib.metadata.version("keras"),
        "git_url": git_url or "pinned",
    }
    # The recorded runs of the same build that this session left out (-k).
    ran = {(e["test"], e["backend"]) for e in RESULTS.entries}
    RESULTS.keep_earlier(
        lambda e: e.get("commit") == commit and (e["test"], e["backend"]) not in ran
    )
    RESULTS.write()


@pytest.mark.parametrize(
    "script, backend", RUNS, ids=[f"{Path(s).stem}-{b}" for s, b in RUNS]
)
def test_script(request, build, ref, script, backend):
    stand_in = request.config.getoption("stand_in_mnist") and script == MNIST
    print(f"integration: {script} on {backend}", flush=True)
    env = {**os.environ, "KERAS_BACKEND": backend}
    wrapper = [str(ROOT / "tests" / "stand_in_mnist.py")] if stand_in else []
    start = time.monotonic()
    command = [sys.executable, *wrapper, script]
    status = subprocess.run(command, cwd=build["repository"], env=env).returncode
    RESULTS.entries.append(
        {
            "implementation": "keras3",
            "test": script,
            "keras": build["keras"],
            "backend": backend,
            "scenario": "upstream-integration",
            "ref": ref,
            "commit": build["commit"],
            "git_url": build["git_url"],
            "data": "stand-in MNIST" if stand_in else None,
            "exitstatus": status,
            "seconds": round(time.monotonic() - start, 1),
        }
    )
    assert status == 0, f"{script} on {backend} exited {status}"
