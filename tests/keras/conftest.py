"""Regression tests of Keras 3's moving variance, run against an installed
build: `KBB_EXPECT=upstream` (pristine keras, the tests assert the biased
rule, so they pass exactly when the bug is reproduced) or
`KBB_EXPECT=patched` (the series applied, they assert the unbiased rule).
"""

import json
import os

import pytest

EXPECT = os.environ.get("KBB_EXPECT")


def pytest_configure(config):
    if EXPECT not in ("upstream", "patched"):
        raise pytest.UsageError(
            "set KBB_EXPECT=upstream or KBB_EXPECT=patched (tox does)"
        )
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        # Two logical CPUs for the MirroredStrategy tests, before TensorFlow
        # initializes its devices.
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
def rule():
    """The moving-variance rule that the installed keras must follow."""
    return "unbiased" if EXPECT == "patched" else "biased"


@pytest.fixture(scope="session")
def other_rule(rule):
    return "biased" if rule == "unbiased" else "unbiased"


@pytest.fixture(scope="session")
def backend():
    import keras

    return keras.backend.backend()


_RESULTS = []


@pytest.fixture
def record(request, backend):
    """Keeps measured figures; written to $KBB_RESULTS/<env>.json at the end
    of the session, for the generated docs.

    Each entry: {"implementation": "keras3", "test", "keras" (version),
    "backend", "scenario", ...figures}. Scenario "convergence": batches of
    n N(0, 1) values in 1024 channels, momentum 0.9, 200 steps; "converged"
    is the mean over channels of the final moving variance.
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
