"""The checks of `kbb pr`: the series applied to the pinned release and to
the newest upstream (kbb.upstream.am, in temporary worktrees, so that the checkout's
branches and files stay as they are), and upstream's own formatter and
linter (pr.toml) on the files each group changes. Each check gives report
lines and problems."""

import dataclasses
import importlib.metadata
import subprocess
import sys

from packaging.requirements import Requirement

from kbb import KbbError
from kbb import layout
from kbb import results
from kbb.git import git
from kbb.git import rev
from kbb.git import scratch
from kbb.pr import live
from kbb.pr import newest as newest_upstream
from kbb.series import patch_files
from kbb.upstream import am
from kbb.upstream import mirror


def lint_tools(config):
    """'ruff 0.9.2, ...': the installed lint tools, checked against pr.toml."""
    found = []
    for requirement in config.lint_requires:
        wanted = Requirement(requirement)
        try:
            version = importlib.metadata.version(wanted.name)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if version is None or not wanted.specifier.contains(version, prereleases=True):
            raise KbbError(
                f"pr/{config.directory.name}/pr.toml lints with {requirement}, "
                f"but {sys.executable} has {version or 'none'}: run `tox -e pr`, "
                f"or `pip install {requirement}`"
            )
        found.append(f"{wanted.name} {version}")
    return ", ".join(found) or "the installed tools"


def lint(config, tree, files):
    """Runs each lint command in `tree` on `files`; returns its findings."""
    findings = []
    if not files:  # without files, the tools would check the whole tree
        return findings
    for module, *arguments in config.lint_commands:
        argv = [a for arg in arguments for a in (files if arg == "{files}" else [arg])]
        result = subprocess.run(
            [sys.executable, "-m", module, *argv],
            cwd=tree,
            capture_output=True,
            text=True,
        )
        if result.returncode:
            output = (result.stdout + result.stderr).strip()
            findings.append(f"$ {module} {' '.join(argv)}\n{output}")
    return findings


def _lint_as_released(config, tree, files, translate):
    """Lints `files` of a tree in the series' layout as the pinned release
    spells them (`translate`, None: as they are): translated back in place,
    since a translation spells upstream's own lines anew (keras' flat
    release in the ops layout has longer ones), then the tree is restored."""
    if translate is None:
        return lint(config, tree, files)
    paths = []
    for path in files:
        found = translate.to_checkout(path, (tree / path).read_bytes())
        if found is not None:
            (tree / found[0]).parent.mkdir(parents=True, exist_ok=True)
            (tree / found[0]).write_bytes(found[1])
            paths.append(found[0])
    try:
        return lint(config, tree, paths)
    finally:
        git("checkout", "-q", "--", ".", cwd=tree)
        git("clean", "-q", "-f", "-d", cwd=tree)


@dataclasses.dataclass
class Run:
    """The series checked against the pinned release and the newest upstream."""

    series: object
    texts: dict  # patch name -> text
    source: str  # of the checkout: sdist or git
    pinned: am.Attempt
    newest: newest_upstream.Newest
    newest_attempt: am.Attempt | None
    lint: dict  # group -> (files, findings, the files linted on the newest upstream)
    live: dict  # (base, group) -> (dead files, the layout of the backends' ops)
    tests: dict  # (base, group) -> [(env, state, line)]: its regression tests there


def check(ws, pin, checkout, source, config, series, newest_git, offline):
    """Applies the series to the pinned release, lints each group there,
    and applies it to the newest upstream, linting there the files that the
    pinned release lacks (tf-keras' tests, not in its sdist)."""
    spelled = pin.layout(source)
    pristine = rev(checkout, "refs/heads/pristine")
    pristine = mirror.in_layout(checkout, pristine, spelled, pin.series_layout)
    texts = {p.name: p.path.read_text() for p in series.patches}
    ls = git("ls-tree", "-r", "--name-only", pristine, cwd=checkout).split()
    newest = newest_upstream.find(
        ws, pin, checkout, newest_git, offline, series.files() & set(ls)
    )

    def python_files(group, tree):
        return {
            f
            for p in series.group_patches(group)
            for f in patch_files(texts[p.name])
            if f.endswith(".py") and (tree / f).is_file()
        }

    translate = None
    if spelled not in layout.GENERATED:
        translate = layout.translator(spelled, pin.series_layout)
    lints, lives = {}, {}
    with scratch(checkout, pristine) as tree:
        pinned = am.try_series(tree, series, (source, pin.target))
        for group, commit in pinned.tips.items():
            git("checkout", "-q", "--detach", commit, cwd=tree)
            files = sorted(python_files(group, tree))
            lives["pinned", group] = (live.dead(tree, files), spelled)
            findings = _lint_as_released(config, tree, files, translate)
            lints[group] = (files, findings, [])
    attempt = None
    if newest.commit:
        with scratch(checkout, newest.commit) as tree:
            attempt = am.try_series(
                tree, series, (newest.source, pin.newest), newest.omit
            )
            for group, commit in attempt.tips.items():
                files, findings, _ = lints.get(group, ([], [], []))
                git("checkout", "-q", "--detach", commit, cwd=tree)
                changed = sorted(python_files(group, tree))
                dead = live.dead(tree, changed)
                lives["newest", group] = (dead, live.backend_layout(tree))
                more = sorted(set(changed) - set(files))
                if more:
                    found = findings + lint(config, tree, more)
                    lints[group] = (sorted(files + more), found, more)
    tests = _tests(ws, pin, config, newest)
    return Run(series, texts, source, pinned, newest, attempt, lints, lives, tests)


def _tests(ws, pin, config, newest):
    """(base, group) -> [(env, state, line)]: the results of the envs that
    ran each group's regression tests on each base (pr.toml [results.tests]);
    the newest sdist's envs say nothing of upstream's default branch."""
    pins = {"pinned": pin}
    if newest.source == "sdist" and pin.newest:
        pins["newest"] = ws.pin(pin.newest)
    found = {}
    for group, bases in config.tests.items():
        for base, envs in bases.items():
            if base in pins:
                found[base, group] = [
                    (env, *results.status(ws, ws.results, env, pins[base]))
                    for env in envs
                ]
    return found


def live_lines(run, base, group):
    """The report lines of the changed files' liveness on a base, and its
    problems."""
    if (base, group) not in run.live:
        return [], []
    said = [
        f"  tests: {env} {state}" + ("" if state == "current" else f": {line}")
        for env, state, line in run.tests.get((base, group), [])
    ] or ["  tests: no environment runs the regression tests on this base"]
    dead, spelled = run.live[base, group]
    found = f"layout {spelled}" if spelled else "no keras backend found"
    if not dead:
        return [f"  live: every changed module is imported ({found})", *said], []
    return said + [
        f"  DEAD: {f} is not imported by the package ({found}): the patch "
        "changes a copy that does not run; port it to the live module"
        for f in dead
    ], [f"the group changes modules that do not run on the {base} base"]


def _status(attempt, series, patch):
    names = [p.name for p in series.patches]
    if attempt.failed is not None:
        failed = names.index(attempt.failed.name)
        if names.index(patch.name) == failed:
            return f"DOES NOT APPLY: {attempt.reason}"
        if names.index(patch.name) > failed:
            return "not checked: a patch before it does not apply"
    if patch.name in attempt.skipped:
        return f"skipped (only={patch.only})"
    if patch.name in attempt.unchecked:
        return "not checked: it changes only test files that the newest upstream lacks"
    return "applies"


def _newest_lines(run, patches, offline):
    newest, attempt, group = run.newest, run.newest_attempt, patches[0].group
    if attempt is None:
        expected = not offline and newest.expected
        return [f"newest  not checked: {newest.note}"], (
            ["the newest upstream was not checked"] if expected else []
        )
    lines = [f"newest  {newest.description}:"]
    lines += [f"  {newest.newer}"] if newest.newer else []
    lines += [f"  {p.name}: {_status(attempt, run.series, p)}" for p in patches]
    more, trouble = live_lines(run, "newest", group)
    lines += more
    if group not in attempt.tips:
        trouble.append("the series does not apply to the newest upstream")
    dropped = attempt.dropped(patches)
    if dropped:
        lines.append(
            f"  {sum(n for _, n in dropped)} test-file hunk(s) not checked: "
            f"{newest.note} ({', '.join(sorted({f for f, _ in dropped}))})"
        )
    return lines, trouble


def report_lines(pin, run, group, tools, offline):
    """The report lines of the checks of a group, and its problems."""
    patches = run.series.group_patches(group)
    release = "PyPI sdist" if run.source == "sdist" else pin.git_tag
    lines = [f"pinned  {pin.spec}, {release}:"]
    lines += [f"  {p.name}: {_status(run.pinned, run.series, p)}" for p in patches]
    if group not in run.pinned.tips:
        return lines, [f"the series does not apply to {pin.spec}"]
    more, trouble = live_lines(run, "pinned", group)
    lines += more
    more, problems = _newest_lines(run, patches, offline)
    lines += more
    trouble += problems
    files, findings, on_newest = run.lint[group]
    where = f" ({len(on_newest)} on the newest upstream: the pinned release lacks them)"
    lines.append(
        f"lint    {tools} (pr/{pin.target}/pr.toml) on {len(files)} file(s)"
        f"{where if on_newest else ''}: "
        + (f"{len(findings)} command(s) found issues" if findings else "clean")
    )
    lines += ["  " + line for finding in findings for line in finding.splitlines()]
    if findings:
        trouble.append("upstream's lint found issues")
    return lines, trouble
