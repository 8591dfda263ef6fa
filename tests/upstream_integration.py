"""Runs upstream Keras' integration tests that exercise BatchNormalization,
as Keras' CI runs them, against a build made from the git source.

    python tests/upstream_integration.py --dest DIR [--git-url URL] [--ref REF]
        [--stand-in-mnist]

The integration tests are only in keras' repository (the sdist leaves them
out). In a scratch workspace under DIR, this clones the repository at the
pinned tag and applies the series (`kbb apply keras --source git`), builds
and installs the wheel of branch REF (default: group/bessel, the fix) into
this Python, and writes REF's files to DIR/repository. There it runs, as
`python integration_tests/SCRIPT` with KERAS_BACKEND set, what Keras' CI
runs on each backend:

- numerical_test.py (TensorFlow, JAX, PyTorch): a Conv2D and
  BatchNormalization model trained with Keras 3 and with tf_keras from the
  same weights, every weight compared within 1e-3. It loads MNIST with
  `keras.datasets.mnist.load_data()`, which downloads it unless it is
  cached under $KERAS_HOME/datasets or ~/.keras/datasets; with
  --stand-in-mnist it runs on random data of MNIST's shapes instead
  (tests/stand_in_mnist.py), for a machine without the network;
- tf_distribute_training_test.py (TensorFlow): BatchNormalization under
  MirroredStrategy on two logical CPUs.

With $KBB_RESULTS set, each run's exit status and duration go to
$KBB_RESULTS/$KBB_ENV.json (kbbtest.Results' format, scenario
"upstream-integration").
"""

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import kbbtest
from kbb.cli import main as kbb

ROOT = Path(__file__).resolve().parents[1]
# (script, backends), as Keras' CI runs them (.github/workflows/actions.yml).
SCRIPTS = (
    ("integration_tests/numerical_test.py", ("tensorflow", "jax", "torch")),
    ("integration_tests/tf_distribute_training_test.py", ("tensorflow",)),
)
# The script that loads MNIST.
MNIST = "integration_tests/numerical_test.py"


def build(dest, git_url, ref):
    """Applies the series to a git checkout in a scratch workspace, installs
    the wheel of `ref` and writes its files; returns their folder."""
    workspace = dest / "workspace"
    (workspace / "patches").mkdir(parents=True)
    shutil.copy(ROOT / "pins.toml", workspace)
    shutil.copytree(ROOT / "patches" / "keras", workspace / "patches" / "keras")
    url = ["--git-url", git_url] if git_url else []
    repository = dest / "repository"
    for command in (
        ["apply", "keras", "--source", "git", *url],
        ["install", "keras", "--ref", ref],
        ["tree", "keras", "--ref", ref, "--dest", str(repository)],
    ):
        if kbb(["--root", str(workspace), *command]):
            raise SystemExit(2)
    return repository


def run(repository, script, backend, stand_in):
    """Runs one integration script (through tests/stand_in_mnist.py if
    `stand_in`); returns (exit status, seconds)."""
    print(f"upstream_integration: {script} on {backend}", flush=True)
    env = {**os.environ, "KERAS_BACKEND": backend}
    wrapper = [str(ROOT / "tests" / "stand_in_mnist.py")] if stand_in else []
    start = time.monotonic()
    command = [sys.executable, *wrapper, script]
    status = subprocess.run(command, cwd=repository, env=env)
    return status.returncode, time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--git-url", help="default: the pinned git-url")
    parser.add_argument("--ref", default="group/bessel")
    parser.add_argument(
        "--stand-in-mnist",
        action="store_true",
        help=f"run {MNIST} on random data of MNIST's shapes (no download)",
    )
    args = parser.parse_args()
    shutil.rmtree(args.dest, ignore_errors=True)
    repository = build(args.dest, args.git_url, args.ref)
    version = importlib.metadata.version("keras")
    commit = subprocess.run(
        ["git", "rev-parse", args.ref],
        cwd=args.dest / "workspace" / ".upstream" / "keras",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    results = kbbtest.Results()
    failed = []
    for script, backends in SCRIPTS:
        for backend in backends:
            stand_in = args.stand_in_mnist and script == MNIST
            status, seconds = run(repository, script, backend, stand_in)
            if status:
                failed.append(f"{script} on {backend} (exit {status})")
            results.entries.append(
                {
                    "implementation": "keras3",
                    "test": script,
                    "keras": version,
                    "backend": backend,
                    "scenario": "upstream-integration",
                    "ref": args.ref,
                    "commit": commit,
                    "git_url": args.git_url or "pinned",
                    "data": "stand-in MNIST" if stand_in else None,
                    "exitstatus": status,
                    "seconds": round(seconds, 1),
                }
            )
    results.write()
    for line in failed:
        print(f"upstream_integration: failed: {line}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
