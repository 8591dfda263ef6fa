"""Evidence tests: parity of Keras 3's moving variance with PyTorch, TF's
fused kernel and Keras' other backends, under distribution and across
checkpoints. Run against an installed build, as tests/keras:
`KBB_EXPECT=patched` asserts parity, `KBB_EXPECT=upstream` asserts the
mismatch (the biased rule), so that each test fails in the other build.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPECT = os.environ.get("KBB_EXPECT")
WORKER = Path(__file__).with_name("worker.py")


def pytest_configure(config):
    if EXPECT not in ("upstream", "patched"):
        raise pytest.UsageError(
            "set KBB_EXPECT=upstream or KBB_EXPECT=patched (tox does)"
        )
    if importlib.util.find_spec("tensorflow"):
        # Two logical CPUs for MirroredStrategy, before TensorFlow
        # initializes its devices (it does, whatever the Keras backend).
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    import keras

    patched = "+bessel" in keras.version()
    if patched != (EXPECT == "patched"):
        raise pytest.UsageError(
            f"KBB_EXPECT={EXPECT}, but keras {keras.version()} is installed "
            f"from {os.path.dirname(keras.__file__)}"
        )


@pytest.fixture(scope="session")
def patched():
    """Whether the installed keras must agree with PyTorch and cuDNN."""
    return EXPECT == "patched"


@pytest.fixture(scope="session")
def rule(patched):
    """The moving-variance rule that the installed keras must follow."""
    return "unbiased" if patched else "biased"


@pytest.fixture(scope="session")
def other_rule(rule):
    return "biased" if rule == "unbiased" else "unbiased"


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


_RESULTS = []


@pytest.fixture
def record(request, backend):
    """Keeps measured figures; written to $KBB_RESULTS/<env>.json at the end
    of the session, for docs/analysis.md (`python -m kbb report`).

    Each entry: {"implementation" ("keras3", "pytorch",
    "tf-fusedbatchnormv3"), "test", "keras" (the installed version),
    "backend", "scenario", ...figures}; keyword arguments override.
    """

    def keep(**values):
        import keras

        _RESULTS.append(
            {
                "implementation": "keras3",
                "test": request.node.name,
                "keras": keras.version(),
                "backend": backend,
                **values,
            }
        )

    return keep


def pytest_sessionfinish(session):
    directory = os.environ.get("KBB_RESULTS")
    if directory and _RESULTS:
        os.makedirs(directory, exist_ok=True)
        env = os.environ.get("KBB_ENV", "local")
        with open(os.path.join(directory, f"{env}.json"), "w") as f:
            json.dump(_RESULTS, f, indent=1, sort_keys=True)


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
