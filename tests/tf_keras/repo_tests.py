"""Runs tf-keras' own BatchNormalization tests against the installed tf-keras.

    python tests/tf_keras/repo_tests.py --dest DIR [--git-url URL] [--ref REF]

tf-keras' tests are only in its repository (the sdist leaves them out), and
spell the package's modules as the repository does (`tf_keras.layers...`),
while the installed package has the sdist's layout (`tf_keras.src.layers...`).
This script applies the series to a git checkout in a scratch workspace under
DIR (`kbb apply tf-keras --source git`), takes the test files of branch REF
(default: patched), rewrites their imports as pip_build.py does, and runs them
with pytest: the TF2 tests as they are, the legacy TF1 ones with TensorFlow's
v2 behavior disabled, as their `run_v1_only` decorators require.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from kbb.cli import main as kbb
from kbb.layout.tf_keras import to_sdist_text

ROOT = Path(__file__).resolve().parents[2]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--git-url", help="default: the pinned git-url")
    parser.add_argument("--ref", default="patched")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    shutil.rmtree(args.dest, ignore_errors=True)
    workspace = args.dest / "workspace"
    (workspace / "patches").mkdir(parents=True)
    shutil.copy(ROOT / "pins.toml", workspace)
    shutil.copytree(ROOT / "patches" / "tf-keras", workspace / "patches" / "tf-keras")
    git_url = ["--git-url", args.git_url] if args.git_url else []
    repo = args.dest / "repository"
    for command in (
        ["apply", "tf-keras", "--source", "git", *git_url],
        ["tree", "tf-keras", "--ref", args.ref, "--dest", str(repo)],
    ):
        if kbb(["--root", str(workspace), *command]):
            return 2
    failed = False
    for mode, tests in TESTS.items():
        folder = args.dest / mode
        folder.mkdir()
        if mode == "tf1":
            (folder / "conftest.py").write_text(TF1_CONFTEST)
        for test in tests:
            text = to_sdist_text((repo / test).read_text())
            (folder / Path(test).name).write_text(text)
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        command += ["--rootdir", str(folder), "-q", *args.pytest_args, str(folder)]
        print(f"repo_tests: {mode}: {', '.join(tests)}", flush=True)
        failed |= subprocess.run(command).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
