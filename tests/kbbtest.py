"""Shared plumbing of the test suites that run against an installed build
(tests/keras, tests/tf_keras, tests/evidence).

- `KBB_EXPECT=pristine` (the pinned release: the tests assert the biased
  rule, so they pass exactly when the bug is reproduced) or
  `KBB_EXPECT=patched` (a build with the fix: the unbiased rule);
  `check_installed` refuses a run whose installed version says otherwise.
- The fixtures `rule` and `other_rule`; a conftest registers them with
  `from kbbtest import other_rule, rule  # noqa: F401`.
- `Results`: figures the tests record, written to $KBB_RESULTS/<env>.json at
  the end of the session for the generated docs (`kbb report`, `kbb pr`),
  in kbb.results' format: the records, and the builds that `kbb install`
  recorded in this environment (what they were made from: the results are
  current while the series and the pins are). Each record:
  {"implementation", "test", "keras" (the installed version), "backend",
  "scenario", ...figures}. Scenario "convergence": batches of n N(0, 1)
  values in 1024 channels, momentum 0.9, 200 steps; "converged" is the mean
  over channels of the final moving variance.
"""

import os
import sys

import pytest

from kbb import results

EXPECT = os.environ.get("KBB_EXPECT")


def check_expect():
    if EXPECT not in ("pristine", "patched"):
        raise pytest.UsageError(
            "set KBB_EXPECT=pristine or KBB_EXPECT=patched (tox does)"
        )


def check_installed(module, version):
    """Refuses to run the patched expectations on a pristine build, and the
    other way round: the builds with the fix have a `+bessel` local
    version."""
    if ("+bessel" in version) != (EXPECT == "patched"):
        raise pytest.UsageError(
            f"KBB_EXPECT={EXPECT}, but {module.__name__} {version} is "
            f"installed from {os.path.dirname(module.__file__)}"
        )


def two_logical_cpus():
    """Two logical CPUs for MirroredStrategy, before TensorFlow initializes
    its devices."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )


@pytest.fixture(scope="session")
def rule():
    """The moving-variance rule that the installed build must follow."""
    return "unbiased" if EXPECT == "patched" else "biased"


@pytest.fixture(scope="session")
def other_rule(rule):
    return "biased" if rule == "unbiased" else "unbiased"


class Results:
    """The figures of one test session."""

    def __init__(self):
        self.entries = []

    def recorder(self, request, version, backend, implementation=None):
        """A `record(**figures)` function for one test."""

        def record(*args, **values):
            if args:  # record("tf-keras-fused", n=..., ...)
                values["implementation"] = args[0]
            self.entries.append(
                {
                    "implementation": implementation,
                    "test": request.node.name,
                    "keras": version,
                    "backend": backend,
                    **values,
                }
            )

        return record

    def keep_earlier(self, keep):
        """Adds the records already in $KBB_RESULTS/<env>.json for which
        `keep(record)` is true: those this session does not measure again."""
        directory = os.environ.get("KBB_RESULTS")
        env = os.environ.get("KBB_ENV", "local")
        path = os.path.join(directory or "", f"{env}.json")
        if directory and os.path.isfile(path):
            self.entries += [e for e in results.load(path).records if keep(e)]

    def write(self):
        directory = os.environ.get("KBB_RESULTS")
        if directory and self.entries:
            env = os.environ.get("KBB_ENV", "local")
            builds = results.installed_builds(sys.prefix)
            results.write(directory, env, self.entries, builds)
