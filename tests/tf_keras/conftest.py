"""Regression tests of tf-keras' (Keras 2) moving variance, run against an
installed build: `KBB_EXPECT=pristine` (pristine tf-keras: its non-fused
implementation follows the biased rule, so the tests pass exactly when the
bug is reproduced) or `KBB_EXPECT=patched` (the series applied: both
implementations follow the unbiased rule).

tf-keras is used as TensorFlow's `tf.keras`, with `TF_USE_LEGACY_KERAS=1`
(tox sets it, and so does this file before TensorFlow is imported).
"""

import os

import pytest

import kbbtest
from kbbtest import other_rule  # noqa: F401
from kbbtest import rule  # noqa: F401

_RESULTS = kbbtest.Results()


def pytest_configure(config):
    kbbtest.check_expect()
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    kbbtest.two_logical_cpus()
    import tf_keras

    kbbtest.check_installed(tf_keras, tf_keras.__version__)


@pytest.fixture
def record(request):
    """record(IMPLEMENTATION, **figures), IMPLEMENTATION "tf-keras-fused" or
    "tf-keras-nonfused": kept for $KBB_RESULTS/<env>.json (kbbtest)."""
    import tf_keras

    return _RESULTS.recorder(request, tf_keras.__version__, "tensorflow")


def pytest_sessionfinish(session):
    _RESULTS.write()
