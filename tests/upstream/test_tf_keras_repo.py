"""tf-keras' own BatchNormalization tests, from its repository, against
the installed tf-keras (`tox -e tf-keras-repo-tests`).

tf-keras' tests are only in its repository (the sdist leaves them out), and
spell the package's modules as the repository does (`tf_keras.layers...`),
while the installed package has the sdist's layout (`tf_keras.src.layers...`).
This applies the series to a git checkout in a scratch workspace (`kbb apply
tf-keras --source git`; --git-url: another clone or mirror), takes the test
files of branch --ref (default: group/bessel), rewrites their imports as
pip_build.py does, and runs them with pytest (--upstream-args: more of its
arguments): the TF2 tests as they are, the legacy TF1 ones with
TensorFlow's v2 behavior disabled, as their `run_v1_only` decorators
require.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import workspace
from kbb.layout.tf_keras import to_sdist_text

TESTS = {
    "tf2": [
        "tf_keras/layers/normalization/batch_normalization_test.py",
        "tf_keras/layers/normalization/batch_normalization_dtensor_test.py",
    ],
    "tf1": ["tf_keras/legacy_tf_layers/normalization_test.py"],
}
TF1_CONFTEST = """\
import tensorflow as tf

tf.compat.v1.disable_v2_behavior()
"""


@pytest.fixture(scope="session")
def repository(request, tmp_path_factory, ref):
    """The files of `ref`, in a checkout with the series applied."""
    dest = tmp_path_factory.mktemp("tf-keras-repo")
    kbb = workspace(dest, "tf-keras", request.config.getoption("git_url"))
    kbb("tree", "tf-keras", "--ref", ref, "--dest", str(dest / "repository"))
    return dest / "repository"


@pytest.mark.parametrize("mode", TESTS)
def test_repository_tests(repository, tmp_path, upstream_args, mode):
    if mode == "tf1":
        (tmp_path / "conftest.py").write_text(TF1_CONFTEST)
    for test in TESTS[mode]:
        text = to_sdist_text((repository / test).read_text())
        (tmp_path / Path(test).name).write_text(text)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["--rootdir", str(tmp_path), "-q", *upstream_args, str(tmp_path)]
    print(f"tf-keras-repo-tests: {mode}: {', '.join(TESTS[mode])}", flush=True)
    status = subprocess.run(command).returncode
    assert status == 0, f"tf-keras' {mode} tests failed (exit {status})"
