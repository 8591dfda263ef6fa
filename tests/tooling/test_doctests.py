"""The examples in the docstrings of the pure helpers: the series' lines and
headers, the layouts' paths and lines, the versions' labels, the stamps."""

import doctest
import importlib

import pytest

MODULES = (
    "kbb.markdown",
    "kbb.series",
    "kbb.results",
    "kbb.layout.keras",
    "kbb.layout.tf_keras",
    "kbb.report.analysis",
    "kbb.report.data",
    "kbb.pr.live",
    "kbb.status",
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    found = doctest.testmod(importlib.import_module(name))
    assert found.attempted and not found.failed
