"""Regression tests of Keras 3's moving variance, run against an installed
build: `KBB_EXPECT=pristine` (pristine keras, the tests assert the biased
rule, so they pass exactly when the bug is reproduced) or
`KBB_EXPECT=patched` (a build with the fix, they assert the unbiased rule).
See tests/kbbtest.py.
"""

import os

import pytest

import kbbtest
from kbbtest import other_rule  # noqa: F401
from kbbtest import rule  # noqa: F401

_RESULTS = kbbtest.Results()


def pytest_configure(config):
    kbbtest.check_expect()
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        kbbtest.two_logical_cpus()
    import keras

    kbbtest.check_installed(keras, keras.version())


@pytest.fixture(scope="session")
def backend():
    import keras

    return keras.backend.backend()


@pytest.fixture
def record(request, backend):
    """record(**figures): kept for $KBB_RESULTS/<env>.json (kbbtest)."""
    import keras

    return _RESULTS.recorder(request, keras.version(), backend, "keras3")


def pytest_sessionfinish(session):
    _RESULTS.write()
