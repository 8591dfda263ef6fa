"""pytest plugin for running upstream Keras' own test files against the
installed build (`pytest -p upstream_plugin`).

The keras sdist ships its tests without the repository's conftest.py; this
plays its part for the marker those tests use.
"""

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "requires_trainable_backend: skipped on the NumPy backend, which cannot train",
    )


def pytest_collection_modifyitems(config, items):
    from keras.src import backend

    if backend.backend() != "numpy":
        return
    skip = pytest.mark.skip(reason="the NumPy backend cannot train")
    for item in items:
        if "requires_trainable_backend" in item.keywords:
            item.add_marker(skip)
