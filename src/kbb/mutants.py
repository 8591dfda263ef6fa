"""`kbb mutants` (`tox -e mutants`): the tests must catch every plausible wrong fix.

Each mutant is a small patch on the fix, tests/mutants/TARGET/NN-NAME.patch:
a `Mutant:` line saying what it gets wrong, a `Backends:` line naming where
it can show, an optional `First:` line naming tests to run first (it only
saves time, see first.py), then the diff against the files of branch
group/bessel of the upstream checkout (for tf-keras, its sdist layout). For
each target, this:

1. installs the fix itself (group/bessel) and runs the tests on each backend
   before the first mutant does: they must pass, or every mutant would look
   caught;
2. for each mutant, commits the patch on group/bessel (a fixed author and
   date: the same patch gives the same commit, whose wheel kbb keeps), as
   refs/kbb/mutants/NAME in .upstream/TARGET; builds and installs its wheel
   (3.15.1+bessel1.g<commit>); runs the tests backend by backend, each run
   stopping at its first failure (`pytest -x`), and the mutant's runs at
   the first backend where a test fails: one failure kills it.

The tests: tests/keras/test_moving_variance.py, then upstream's
batch_normalization_test.py from the mutant's own tree (keras); tests/tf_keras
(tf-keras, whose sdist ships no tests). A run fails unless every mutant is
caught, and a run of the fix's own tests that does not pass is an error. It
prints a table: mutant, backends run, the tests that failed, caught or not.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "mutants"
START = time.monotonic()


@dataclass
class Target:
    name: str
    tests: list
    upstream_tests: str | None = None
    kbb_args: list = field(default_factory=list)
    env: dict = field(default_factory=dict)


TARGETS = {
    "keras": Target(
        "keras",
        ["tests/keras/test_moving_variance.py"],
        upstream_tests="keras/src/layers/normalization/batch_normalization_test.py",
    ),
    "tf-keras": Target(
        "tf-keras",
        ["tests/tf_keras/test_moving_variance.py"],
        kbb_args=["--source", "sdist"],
        env={"TF_USE_LEGACY_KERAS": "1"},
    ),
}
BASE = "group/bessel"
# A fixed identity and date: a mutant's commit, and so its cached wheel, only
# changes when the patch or group/bessel does.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "kbb mutants",
    "GIT_AUTHOR_EMAIL": "mutants@kbb.invalid",
    "GIT_COMMITTER_NAME": "kbb mutants",
    "GIT_COMMITTER_EMAIL": "mutants@kbb.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+0000",
}


@dataclass
class Mutant:
    target: str
    name: str
    summary: str
    backends: list
    patch: Path
    first: str = ""


@dataclass
class Outcome:
    mutant: Mutant
    backends: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    caught: bool = False


def log(message):
    print(f"mutants [{time.monotonic() - START:6.0f} s] {message}", flush=True)


def fail(message):
    print(f"mutants: {message}", file=sys.stderr)
    sys.exit(2)


def run(command, env=None, cwd=ROOT):
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def kbb(target, *args):
    """Runs `python -m kbb` and returns the last line it printed."""
    command = [sys.executable, "-m", "kbb", args[0], target.name, *args[1:]]
    result = run(command + target.kbb_args)
    if result.returncode:
        fail(f"{' '.join(command)} failed: {result.stderr.strip()[-1500:]}")
    return result.stdout.strip().splitlines()[-1]


def git(checkout, *args, env=None, stdin=None):
    result = subprocess.run(
        ["git", *args],
        cwd=checkout,
        env={**os.environ, **GIT_ENV, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        fail(f"git {' '.join(args)} in {checkout}: {result.stderr.strip()}")
    return result.stdout.strip()


def load_mutants(target, selected):
    mutants = []
    for patch in sorted((HERE / target.name).glob("*.patch")):
        text = patch.read_text()
        summary = re.search(r"^Mutant: (.+)$", text, re.M)
        backends = re.search(r"^Backends: (.+)$", text, re.M)
        first = re.search(r"^First: (.+)$", text, re.M)
        if not summary or not backends:
            fail(f"{patch} lacks its `Mutant:` or `Backends:` line")
        if not selected or any(s in patch.stem for s in selected):
            mutants.append(
                Mutant(
                    target.name,
                    patch.stem,
                    summary[1],
                    sorted(backends[1].split(), key=order),
                    patch,
                    first[1] if first else "",
                )
            )
    return mutants


def commit(checkout, base, mutant):
    """Commits the mutant's patch on `base`; returns the commit."""
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(checkout, "read-tree", base, env=index)
        git(checkout, "apply", "--cached", str(mutant.patch), env=index)
        tree = git(checkout, "write-tree", env=index)
    message = f"Mutant {mutant.name}: {mutant.summary}\n"
    sha = git(checkout, "commit-tree", tree, "-p", base, stdin=message)
    git(checkout, "update-ref", f"refs/kbb/mutants/{mutant.name}", sha)
    return sha


def install(target, ref):
    """Builds (or reuses) and installs the wheel of `ref`; returns it."""
    wheel = kbb(target, "wheel", "--ref", ref)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    result = run(pip + ["--force-reinstall", "--disable-pip-version-check", wheel])
    if result.returncode:
        fail(f"pip install {wheel} failed: {result.stderr.strip()[-1500:]}")
    return Path(wheel).name


def pytest_command(target, tree):
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["-p", "first", "-x", "-q", "-rfE", "-o", "addopts="]
    command += target.tests
    if target.upstream_tests:
        # Upstream's tests, from the built tree, as the patched environments
        # run them (tests/upstream_plugin.py).
        command += ["-p", "upstream_plugin", "--import-mode=importlib"]
        command += ["--rootdir", str(tree), "-c", str(tree / "pyproject.toml")]
        command.append(str(tree / target.upstream_tests))
    return command


def run_tests(target, tree, backend, first=""):
    """(pytest's exit code, the ids of the tests that failed)."""
    env = {**os.environ, **target.env, "KERAS_BACKEND": backend}
    env.update(KBB_EXPECT="patched", KBB_FIRST=first)
    env.pop("KBB_RESULTS", None)  # the figures of the real builds stay
    paths = [ROOT / "src", ROOT / "tests", HERE]
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    result = run(pytest_command(target, tree), env=env)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.M)
    if result.returncode not in (0, 1):
        tail = (result.stdout + result.stderr).strip()[-3000:]
        fail(f"pytest exited with {result.returncode} on {backend}:\n{tail}")
    return result.returncode, [f.split("::", 1)[-1] for f in failed]


def prepare(target, ref, tmp):
    """Installs the build of `ref`; returns the tree of its files."""
    name = install(target, ref)
    tree = Path(tmp) / "tree"
    if target.upstream_tests:
        kbb(target, "tree", "--ref", ref, "--dest", str(tree))
    return name, tree


def check_fix(target, backends, checked):
    """The fix itself must pass the tests that the mutants are run with, on
    each backend before a mutant is: `checked` holds those already run."""
    with tempfile.TemporaryDirectory() as tmp:
        name, tree = prepare(target, BASE, tmp)
        for backend in backends:
            log(f"{target.name}: the fix ({name}) on {backend}")
            code, failed = run_tests(target, tree, backend)
            if code:
                fail(
                    f"the fix itself fails on {backend}: {', '.join(failed)}; "
                    "every mutant would look caught (run the patched env)"
                )
            checked.add(backend)


def test_mutant(target, checkout, mutant, every_backend, checked):
    outcome = Outcome(mutant)
    sha = commit(checkout, BASE, mutant)
    with tempfile.TemporaryDirectory() as tmp:
        name, tree = prepare(target, sha, tmp)
        for backend in mutant.backends:
            if backend not in checked:
                check_fix(target, [backend], checked)
                name, tree = prepare(target, sha, tmp)
            log(f"{target.name}: {mutant.name} ({name}) on {backend}")
            code, failed = run_tests(target, tree, backend, mutant.first)
            outcome.backends.append(backend)
            if code:
                outcome.caught = True
                outcome.failed += [f"{backend}: {test}" for test in failed]
                if not every_backend:
                    break
    return outcome


def table(outcomes):
    lines = [
        "| mutant | backends run | tests that failed | caught |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        failed = "<br>".join(o.failed) or "none"
        lines.append(
            f"| {o.mutant.target}/{o.mutant.name}: {o.mutant.summary} "
            f"| {', '.join(o.backends)} "
            f"| {failed} | {'yes' if o.caught else '**NO**'} |"
        )
    return "\n".join(lines)


def arguments(parser):
    parser.add_argument(
        "--target", action="append", choices=sorted(TARGETS), help="default: all"
    )
    parser.add_argument(
        "--mutant", action="append", help="only mutants whose name contains this"
    )
    parser.add_argument(
        "--every-backend",
        action="store_true",
        help="run each mutant on all its backends, not only until one fails",
    )


def main(ws, args):
    outcomes = []
    for name in args.target or sorted(TARGETS):
        target = TARGETS[name]
        mutants = load_mutants(target, args.mutant)
        if not mutants:
            continue
        checkout = kbb(target, "fetch")
        checked = set()
        # The backend each mutant is run on first; the others when needed.
        firsts = sorted({m.backends[0] for m in mutants}, key=order)
        check_fix(target, firsts, checked)
        for mutant in mutants:
            outcomes.append(
                test_mutant(target, checkout, mutant, args.every_backend, checked)
            )
    if not outcomes:
        fail("no mutant matches --target/--mutant")
    print(table(outcomes))
    survivors = [f"{o.mutant.target}/{o.mutant.name}" for o in outcomes if not o.caught]
    log(f"{len(outcomes) - len(survivors)} of {len(outcomes)} mutants caught")
    if survivors:
        print(f"mutants: survived: {', '.join(survivors)}", file=sys.stderr)
        return 1
    return 0


def order(backend):
    """TensorFlow first: it has the most tests that apply and starts fast."""
    return ["tensorflow", "torch", "jax"].index(backend)
