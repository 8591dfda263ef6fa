"""Upstream's test files that use BatchNormalization outside
keras/src/layers/normalization (which `patched*` run), against the
installed build on each backend, each test's outcome compared with pristine
keras' (`tox -e upstream-bn-{pristine,patched,native}`; `-- -k torch`
runs one backend).

The files of branch $KBB_REF are written by `kbb tree` and run in one pytest
session per backend, with tests/upstream_plugin.py, which records every
test's outcome in $KBB_RESULTS/$KBB_ENV.json. On a build other than
pristine a backend's test fails when an outcome differs from
upstream-bn-pristine.json's (or pristine's is not recorded). Tests that
fail on both builds do not fail it: they are upstream's environment
problems (optional packages that its requirements.txt installs and these
environments do not, the network); `kbb report` lists their causes in
docs/analysis.md.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kbb import results as results_file
from kbb.cli import main as kbb
from kbb.report.upstream import BN_BACKENDS
from kbb.report.upstream import added
from kbb.report.upstream import differences

# `grep -rlE 'BatchNormalization|batch_normalization' --include='*_test.py'
# keras/src` in keras 3.15.1, less keras/src/layers/normalization.
FILES = (
    "keras/src/dtype_policies/dtype_policy_map_test.py",
    "keras/src/export/litert_test.py",
    "keras/src/export/onnx_test.py",
    "keras/src/export/openvino_test.py",
    "keras/src/export/saved_model_test.py",
    "keras/src/export/torch_test.py",
    "keras/src/layers/core/wrapper_test.py",
    "keras/src/layers/layer_test.py",
    "keras/src/legacy/saving/legacy_h5_format_test.py",
    "keras/src/ops/nn_test.py",
    "keras/src/ops/ops_test.py",
    "keras/src/trainers/trainer_test.py",
)


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """The files of branch $KBB_REF (`kbb tree`)."""
    tree = tmp_path_factory.mktemp("upstream-bn") / "keras"
    if kbb(["tree", "keras", "--ref", os.environ["KBB_REF"], "--dest", str(tree)]):
        pytest.fail("kbb tree failed (its message is above)")
    return tree


def run(tree, backend, upstream_args):
    """One pytest session of FILES on `backend`; returns its exit status."""
    print(f"upstream-bn: {os.environ['KBB_REF']} on {backend}", flush=True)
    env = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["-p", "upstream_plugin", "--import-mode=importlib"]
    command += ["--rootdir", str(tree), "-c", str(tree / "pyproject.toml")]
    # A file that cannot be imported (an optional package missing) counts as
    # one error; the others run.
    command += ["-o", "addopts=", "-q", "--tb=line", "-rfE"]
    command += ["--continue-on-collection-errors", *upstream_args]
    command += [str(tree / f) for f in FILES]
    return subprocess.run(command, env=env).returncode


def changes(backend):
    """Lines that say how the outcomes of this build on `backend` differ
    from pristine's (none: identical)."""
    results, env = os.environ["KBB_RESULTS"], os.environ["KBB_ENV"]
    pristine = Path(results, "upstream-bn-pristine.json")
    if not pristine.is_file():
        return [f"{pristine} missing: run `tox -e upstream-bn-pristine`"]
    before = results_file.load(pristine).records
    after = results_file.load(Path(results, f"{env}.json")).records
    old = [e for e in before if e["backend"] == backend]
    new = [e for e in after if e["backend"] == backend]
    if not old or not new:
        return [f"{backend}: not measured on both builds"]
    for test in added(old[0], new[0]):
        print(f"upstream-bn: {test}: new in {env}'s patches, passed")
    return [
        f"{test}: {was} on pristine, {now} on {env}"
        for test, was, now in differences(old[0], new[0])
    ]


@pytest.mark.parametrize("backend", BN_BACKENDS)
def test_outcomes_as_pristine(tree, backend, upstream_args):
    status = run(tree, backend, upstream_args)
    # pytest exits 1 when tests fail; 2 and more: interrupted, usage, none.
    assert status <= 1, f"pytest did not complete on {backend} (exit {status})"
    if os.environ["KBB_REF"] != "pristine":
        differ = changes(backend)
        assert not differ, "outcomes differ from pristine's:\n" + "\n".join(differ)
