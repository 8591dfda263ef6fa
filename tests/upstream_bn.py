"""Runs upstream's test files that use BatchNormalization outside
keras/src/layers/normalization (which `patched*` run) against the installed
build, on TensorFlow, JAX and PyTorch, and compares each test's outcome
with pristine keras' (`tox -e upstream-bn-{pristine,patched,native}`).

    python tests/upstream_bn.py --dest DIR [--backend NAME ...]

It writes the files of branch $KBB_REF to DIR (`kbb tree`) and runs FILES
from there, one pytest session per backend, with tests/upstream_plugin.py,
which records every test's outcome in $KBB_RESULTS/$KBB_ENV.json. A build
other than pristine is then compared, backend by backend, with
upstream-bn-pristine.json: it exits 1 when an outcome differs (or pristine's
is not recorded). Tests that fail on both builds do not fail the run: they
are upstream's environment problems (optional packages that its
requirements.txt installs and these environments do not, the network);
`kbb report` lists their causes in docs/analysis.md.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from kbb import results as results_file
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


def run(tree, backend):
    """One pytest session of FILES on `backend`; returns its exit status."""
    print(f"upstream_bn: {os.environ['KBB_REF']} on {backend}", flush=True)
    env = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["-p", "upstream_plugin", "--import-mode=importlib"]
    command += ["--rootdir", str(tree), "-c", str(tree / "pyproject.toml")]
    # A file that cannot be imported (an optional package missing) counts as
    # one error; the others run.
    command += ["-o", "addopts=", "-q", "--tb=line", "-rfE"]
    command += ["--continue-on-collection-errors"]
    command += [str(tree / f) for f in FILES]
    return subprocess.run(command, env=env).returncode


def compare(results, env, backends):
    """Prints how each backend's outcomes differ from pristine's; returns
    whether they are identical on every backend."""
    pristine = Path(results, "upstream-bn-pristine.json")
    if not pristine.is_file():
        print(f"upstream_bn: {pristine} missing: run `tox -e upstream-bn-pristine`")
        return False
    before = results_file.load(pristine).records
    after = results_file.load(Path(results, f"{env}.json")).records
    identical = True
    for backend in backends:
        old = [e for e in before if e["backend"] == backend]
        new = [e for e in after if e["backend"] == backend]
        if not old or not new:
            print(f"upstream_bn: {backend}: not measured on both builds")
            identical = False
            continue
        diff = differences(old[0], new[0])
        identical = identical and not diff
        print(f"upstream_bn: {backend}: {'identical' if not diff else 'differs'}")
        for test, was, now in diff:
            print(f"    {test}: {was} on pristine, {now} on {env}")
        for test in added(old[0], new[0]):
            print(f"    {test}: new in {env}'s patches, passed")
    return identical


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--backend", action="append", choices=BN_BACKENDS)
    args = parser.parse_args()
    backends = args.backend or BN_BACKENDS
    ref, env = os.environ["KBB_REF"], os.environ["KBB_ENV"]
    tree = args.dest / "keras"
    kbb = [sys.executable, "-m", "kbb", "tree", "keras", "--ref", ref]
    subprocess.run([*kbb, "--dest", str(tree)], check=True)
    # pytest exits 1 when tests fail; 2 and more: interrupted, usage, no tests.
    broken = [b for b in backends if run(tree, b) > 1]
    if broken:
        print(f"upstream_bn: pytest did not complete on {', '.join(broken)}")
        return 2
    if ref == "pristine":
        return 0
    return 0 if compare(os.environ["KBB_RESULTS"], env, backends) else 1


if __name__ == "__main__":
    sys.exit(main())
