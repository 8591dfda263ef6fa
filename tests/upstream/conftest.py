"""Options and fixtures of the tests that run upstream's own tests and
scripts against a build (test_bn.py, test_integration.py,
test_tf_keras_repo.py; tox.ini runs each in its environment, with `-s` so
that their long runs show progress)."""

import shlex
import shutil
from pathlib import Path

import pytest

from kbb.cli import main as kbb

ROOT = Path(__file__).resolve().parents[2]


def pytest_addoption(parser):
    group = parser.getgroup("kbb upstream")
    group.addoption(
        "--git-url", help="the repository to clone (default: the pinned git-url)"
    )
    group.addoption(
        "--ref",
        help="the branch to build and test (default: group/bessel, the fix)",
    )
    group.addoption(
        "--stand-in-mnist",
        action="store_true",
        help="integration: run numerical_test.py on random data of MNIST's "
        "shapes (no download)",
    )
    group.addoption(
        "--upstream-args",
        default="",
        metavar="ARGS",
        help="more arguments of the pytest sessions of upstream's tests, "
        'e.g. "-k dtensor"',
    )


@pytest.fixture(scope="session")
def ref(request):
    return request.config.getoption("ref") or "group/bessel"


@pytest.fixture(scope="session")
def upstream_args(request):
    return shlex.split(request.config.getoption("upstream_args"))


def workspace(dest, target, git_url):
    """A scratch workspace under `dest` with this one's pins and series of
    `target`, its upstream applied from the git source (`kbb apply TARGET
    --source git`); returns a function that runs `kbb` there."""
    shutil.rmtree(dest, ignore_errors=True)
    root = dest / "workspace"
    (root / "patches").mkdir(parents=True)
    shutil.copy(ROOT / "pins.toml", root)
    shutil.copytree(ROOT / "patches" / target, root / "patches" / target)

    def run(*command):
        if kbb(["--root", str(root), *command]):
            pytest.fail(f"kbb {' '.join(command)} failed (its message is above)")

    url = ["--git-url", git_url] if git_url else []
    run("apply", target, "--source", "git", *url)
    return run
