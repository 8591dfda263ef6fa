"""Evidence tests: parity of Keras 3's moving variance with PyTorch, TF's
fused kernel and Keras' other backends, under distribution and across
checkpoints. Run against an installed build, as tests/keras:
`KBB_EXPECT=patched` asserts parity, `KBB_EXPECT=pristine` asserts the
mismatch (the biased rule), so that each test fails in the other build.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kbbtest
from kbbtest import other_rule  # noqa: F401
from kbbtest import rule  # noqa: F401

WORKER = Path(__file__).with_name("worker.py")
_RESULTS = kbbtest.Results()


def pytest_configure(config):
    kbbtest.check_expect()
    if importlib.util.find_spec("tensorflow"):
        # TensorFlow initializes its devices whatever the Keras backend.
        kbbtest.two_logical_cpus()
    import keras

    kbbtest.check_installed(keras, keras.version())


@pytest.fixture(scope="session")
def patched():
    """Whether the installed keras must agree with PyTorch and cuDNN."""
    return kbbtest.EXPECT == "patched"


@pytest.fixture(scope="session")
def backend():
    import keras

    return keras.backend.backend()


def _run_worker(task, path, backend=None, pythonpath=None, **env):
    env = {**os.environ, **env}
    if backend:
        env["KERAS_BACKEND"] = backend
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), env.get("PYTHONPATH")) if p
        )
    result = subprocess.run(
        [sys.executable, str(WORKER), task, str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        pytest.fail(f"worker.py {task} failed:\n{result.stderr[-4000:]}")


@pytest.fixture(scope="session")
def worker():
    """worker(TASK, PATH, backend=None, pythonpath=None, **env) runs
    `worker.py TASK PATH` in a fresh interpreter: with KERAS_BACKEND
    `backend`, `pythonpath` in front of PYTHONPATH, and `env` added."""
    return _run_worker


@pytest.fixture
def record(request, backend):
    """record(**figures), implementation "keras3" unless given:
    kept for $KBB_RESULTS/<env>.json (kbbtest)."""
    import keras

    return _RESULTS.recorder(request, keras.version(), backend, "keras3")


def pytest_sessionfinish(session):
    _RESULTS.write()


BACKENDS = ("tensorflow", "jax", "torch")


@pytest.fixture(scope="session")
def statistics(backend, worker, tmp_path_factory):
    """statistics(NAME): the Keras moving statistics of every parity case
    (parity.keras_statistics_of_all_cases) on backend NAME, computed once:
    in this process for its own backend, else in a worker."""
    import numpy as np

    import parity

    cache = {}

    def get(name):
        if name not in cache:
            if name == backend:
                cache[name] = parity.keras_statistics_of_all_cases()
            else:
                pytest.importorskip(name)
                path = tmp_path_factory.mktemp(name) / "cases.npz"
                # JAX_ENABLE_X64 lets a float64 layer keep float64 variables.
                worker("cases", path, backend=name, JAX_ENABLE_X64="1")
                with np.load(path) as saved:
                    assert str(saved["backend"]) == name
                    cache[name] = dict(saved)
        return cache[name]

    return get
