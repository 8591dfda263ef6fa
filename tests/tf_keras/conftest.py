"""Regression tests of tf-keras' (Keras 2) moving variance, run against an
installed build: `KBB_EXPECT=upstream` (pristine tf-keras: its non-fused
implementation follows the biased rule, so the tests pass exactly when the
bug is reproduced) or `KBB_EXPECT=patched` (the series applied: both
implementations follow the unbiased rule).

tf-keras is used as TensorFlow's `tf.keras`, with `TF_USE_LEGACY_KERAS=1`
(tox sets it, and so does this file before TensorFlow is imported).
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
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    # Two logical CPUs for the distributed tests, before TensorFlow
    # initializes its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import tf_keras

    patched = "+bessel" in tf_keras.__version__
    if patched != (EXPECT == "patched"):
        raise pytest.UsageError(
            f"KBB_EXPECT={EXPECT}, but tf-keras {tf_keras.__version__} is "
            f"installed from {os.path.dirname(tf_keras.__file__)}"
        )


@pytest.fixture(scope="session")
def rule():
    """The rule that the non-fused implementation must follow."""
    return "unbiased" if EXPECT == "patched" else "biased"


@pytest.fixture(scope="session")
def other_rule(rule):
    return "biased" if rule == "unbiased" else "unbiased"


_RESULTS = []


@pytest.fixture
def record(request):
    """Keeps measured figures; written to $KBB_RESULTS/<env>.json at the end
    of the session, for the generated docs.

    Each entry: {"implementation": "tf-keras-fused" or "tf-keras-nonfused",
    "test", "keras" (the tf-keras version), "backend", "scenario",
    ...figures}. Scenario "convergence": batches of n N(0, 1) values in 1024
    channels, momentum 0.9, 200 steps; "converged" is the mean over channels
    of the final moving variance.
    """

    def keep(implementation, **values):
        import tf_keras

        _RESULTS.append(
            {
                "implementation": implementation,
                "test": request.node.name,
                "keras": tf_keras.__version__,
                "backend": "tensorflow",
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
