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
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from kbb import KbbError
from kbb import build
from kbb import log
from kbb.git import commit_patch
from kbb.git import identity_env
from kbb.markdown import table
from kbb.upstream import apply
from kbb.upstream import checkout as upstream_checkout

BASE = "group/bessel"
# A fixed identity and date: a mutant's commit, and so its cached wheel,
# only changes when the patch or group/bessel does.
IDENTITY = identity_env(
    ("kbb mutants", "mutants@kbb.invalid"), "2026-01-01T00:00:00+0000"
)
ORDER = ("tensorflow", "torch", "jax")  # most tests that apply, fastest start


@dataclass
class Target:
    name: str
    tests: list
    upstream_tests: str | None = None
    source: str | None = None
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
        source="sdist",
        env={"TF_USE_LEGACY_KERAS": "1"},
    ),
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


def load_mutants(ws, target, selected):
    """The mutants of `target` whose name contains one of `selected`."""
    mutants = []
    folder = ws.root / "tests" / "mutants" / target.name
    for patch in sorted(folder.glob("*.patch")):
        text = patch.read_text()
        summary = re.search(r"^Mutant: (.+)$", text, re.M)
        backends = re.search(r"^Backends: (.+)$", text, re.M)
        first = re.search(r"^First: (.+)$", text, re.M)
        if not summary or not backends:
            raise KbbError(f"{patch} lacks its `Mutant:` or `Backends:` line")
        if not selected or any(s in patch.stem for s in selected):
            backends = sorted(backends[1].split(), key=ORDER.index)
            first = first[1] if first else ""
            mutants.append(
                Mutant(target.name, patch.stem, summary[1], backends, patch, first)
            )
    return mutants


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


def run_tests(ws, target, tree, backend, first=""):
    """(pytest's exit code, the ids of the tests that failed)."""
    env = {**os.environ, **target.env, "KERAS_BACKEND": backend}
    env.update(KBB_EXPECT="patched", KBB_FIRST=first)
    env.pop("KBB_RESULTS", None)  # the figures of the real builds stay
    paths = [ws.root / "src", ws.root / "tests", ws.root / "tests" / "mutants"]
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    command = pytest_command(target, tree)
    result = subprocess.run(
        command, cwd=ws.root, env=env, capture_output=True, text=True
    )
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.M)
    if result.returncode not in (0, 1):
        tail = (result.stdout + result.stderr).strip()[-3000:]
        raise KbbError(f"pytest exited with {result.returncode} on {backend}:\n{tail}")
    return result.returncode, [f.split("::", 1)[-1] for f in failed]


def prepare(ws, pin, ref, tmp):
    """Installs the build of `ref`; returns its wheel's name and the tree of
    its files (for upstream's tests)."""
    apply.ensure_applied(ws, pin, ref)
    name = build.install(ws, pin, ref).name
    tree = Path(tmp) / "tree"
    if TARGETS[pin.target].upstream_tests:
        build.tree(ws, pin, ref, tree)
    return name, tree


def check_fix(ws, pin, backends, checked):
    """The fix itself must pass the tests that the mutants are run with, on
    each backend before a mutant is: `checked` holds those already run."""
    with tempfile.TemporaryDirectory() as tmp:
        name, tree = prepare(ws, pin, BASE, tmp)
        for backend in backends:
            log(f"{pin.target}: the fix ({name}) on {backend}")
            code, failed = run_tests(ws, TARGETS[pin.target], tree, backend)
            if code:
                raise KbbError(
                    f"the fix itself fails on {backend}: {', '.join(failed)}; "
                    "every mutant would look caught (run the patched env)"
                )
            checked.add(backend)


def commit(checkout, mutant):
    """Commits `mutant` on group/bessel as refs/kbb/mutants/NAME, by
    IDENTITY; returns the commit."""
    ref = f"refs/kbb/mutants/{mutant.name}"
    message = f"Mutant {mutant.name}: {mutant.summary}\n"
    return commit_patch(checkout, BASE, mutant.patch, ref, message, IDENTITY)


def test_mutant(ws, pin, mutant, every_backend, checked):
    outcome = Outcome(mutant)
    sha = commit(ws.checkout(pin.target), mutant)
    with tempfile.TemporaryDirectory() as tmp:
        name, tree = prepare(ws, pin, sha, tmp)
        for backend in mutant.backends:
            if backend not in checked:
                check_fix(ws, pin, [backend], checked)
                name, tree = prepare(ws, pin, sha, tmp)
            log(f"{pin.target}: {mutant.name} ({name}) on {backend}")
            target = TARGETS[pin.target]
            code, failed = run_tests(ws, target, tree, backend, mutant.first)
            outcome.backends.append(backend)
            if code:
                outcome.caught = True
                outcome.failed += [f"{backend}: {test}" for test in failed]
                if not every_backend:
                    break
    return outcome


def outcomes_table(outcomes):
    rows = [
        [
            f"{o.mutant.target}/{o.mutant.name}: {o.mutant.summary}",
            ", ".join(o.backends),
            "<br>".join(o.failed) or "none",
            "yes" if o.caught else "**NO**",
        ]
        for o in outcomes
    ]
    header = "mutant | backends run | tests that failed | caught"
    return "\n".join(table(header, rows)).rstrip("\n")


def arguments(parser):
    add = parser.add_argument
    add("--target", action="append", choices=sorted(TARGETS), help="default: all")
    add("--mutant", action="append", help="only mutants whose name contains this")
    add(
        "--every-backend",
        action="store_true",
        help="run each mutant on all its backends, not only until one fails",
    )


def main(ws, args):
    outcomes = []
    for name in args.target or sorted(TARGETS):
        mutants = load_mutants(ws, TARGETS[name], args.mutant)
        if not mutants:
            continue
        pin = ws.pin(name)
        upstream_checkout.ensure(ws, pin, TARGETS[name].source)
        checked = set()
        # The backend each mutant is run on first; the others when needed.
        firsts = sorted({m.backends[0] for m in mutants}, key=ORDER.index)
        check_fix(ws, pin, firsts, checked)
        for mutant in mutants:
            outcomes.append(test_mutant(ws, pin, mutant, args.every_backend, checked))
    if not outcomes:
        raise KbbError("no mutant matches --target/--mutant: see tests/mutants/")
    print(outcomes_table(outcomes))
    survivors = [f"{o.mutant.target}/{o.mutant.name}" for o in outcomes if not o.caught]
    log(f"{len(outcomes) - len(survivors)} of {len(outcomes)} mutants caught")
    if survivors:
        log(f"survived: {', '.join(survivors)}", level=0)
        return 1
    return 0
