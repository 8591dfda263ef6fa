"""`kbb pr TARGET`: prepares the upstream pull requests of a target, one per
patch group, for a human to review and submit (docs/workflow.md).

For each group it checks that the series applies to the pinned release and
to the newest upstream (the pinned `newest` sdist, or a git remote's default
branch), runs upstream's formatter and linter (pr/TARGET/pr.toml) on the files
the group changes, renders ISSUE.md and PR.md from the templates of
pr/TARGET/ and the workspace's measured results into out/pr/TARGET/GROUP/, and
makes branch pr/GROUP in the upstream checkout. Nothing leaves the machine:
`kbb pr TARGET --push REMOTE` pushes a branch, only once the human has ticked
PR.md's boxes and filled in what it asks for.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import string
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from kbb import KbbError
from kbb import gitops
from kbb.gitops import git
from kbb.gitops import rev

TEST_FILE = gitops.TEST_FILE
MARK = re.compile(r"\[kbb: [^\]]*\]")
UNCHECKED = re.compile(r"^\s*[-*] \[ \] (.+)$", re.MULTILINE)
NEWEST_REF = "refs/kbb/newest"


# pr/TARGET/pr.toml ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """pr/TARGET/: pr.toml, and the templates ISSUE.md and PR.md."""

    directory: Path
    lint_requires: tuple
    lint_commands: tuple
    implementations: tuple  # of the records shown, in the tables' order
    labels: dict  # implementation -> its name in the tables (several only)
    version_key: str
    envs: tuple
    docs: dict  # placeholder -> (docs/FILE, what its first table shows)

    def template(self, group, name):
        for path in (self.directory / group / name, self.directory / name):
            if path.is_file():
                return path
        raise KbbError(
            f"no template {self.directory.name}/{name} in pr/ (see docs/workflow.md)"
        )


def load_config(ws, target):
    path = ws.root / "pr" / target / "pr.toml"
    if not path.is_file():
        raise KbbError(
            f"no pr/{target}/pr.toml: write how {target}'s pull requests are "
            "linted and which results they show (see docs/workflow.md)"
        )
    try:
        data = tomllib.loads(path.read_text())
        lint, results = data["lint"], data["results"]
        commands = tuple(tuple(c) for c in lint["commands"])
        implementations = results["implementation"]
        if isinstance(implementations, str):
            implementations = [implementations]
        labels = results.get("labels", {})
        config = Config(
            directory=path.parent,
            lint_requires=tuple(lint.get("requires", ())),
            lint_commands=commands,
            implementations=tuple(implementations),
            labels={i: labels.get(i, i) for i in implementations},
            version_key=results["version-key"],
            envs=tuple(results["envs"]),
            docs={k: tuple(v) for k, v in data.get("docs", {}).items()},
        )
    except tomllib.TOMLDecodeError as e:
        raise KbbError(f"pr/{target}/pr.toml: {e}") from None
    except KeyError as e:
        raise KbbError(f"pr/{target}/pr.toml lacks {e.args[0]!r}") from None
    if not all(c and "{files}" in c for c in commands):
        raise KbbError(f"pr/{target}/pr.toml: each lint command needs a {{files}}")
    if not all(len(v) == 2 for v in config.docs.values()):
        raise KbbError(f"pr/{target}/pr.toml: each [docs] entry is [FILE, WHAT]")
    return config


# The newest upstream -------------------------------------------------------


@dataclasses.dataclass
class Newest:
    """The upstream to check the series against besides the pinned one."""

    commit: str | None  # in the series' layout; None: not checked
    description: str
    source: str = "sdist"
    branch: str | None = None  # upstream's default branch, if the newest is on it
    omit: frozenset = frozenset()
    note: str = ""
    expected: bool = True  # left unchecked online, it is a problem
    newer: str = ""  # a newer sdist than the pinned one is on the index


def _newest(ws, pin, checkout, args, series_files):
    if args.newest_git:
        if args.offline:
            raise KbbError("--newest-git fetches from the network: leave out --offline")
        url = pin.git_url if args.newest_git is True else args.newest_git
        commit, branch = gitops.fetch_default_branch(checkout, url, NEWEST_REF)
        # The series is kept in the newest upstream's layout.
        described = f"{branch} of {url} ({commit[:12]})"
        return Newest(commit, described, "git", branch)
    if not pin.newest:
        # Nothing pinned (as for tf-keras, whose nightly sdists are older
        # than its releases): said, not a problem; pushing needs --newest-git.
        return Newest(
            None,
            "",
            note=f"no newest upstream pinned (pins.toml [{pin.target}] has no "
            "newest); use --newest-git with network",
            expected=False,
        )
    newest = ws.pin(pin.newest)
    try:
        archive = gitops.download_sdist(ws, newest, offline=args.offline)
    except gitops.Unreachable as e:
        return Newest(None, "", note=str(e))
    described = f"{newest.spec}, PyPI sdist (pins.toml [{newest.target}])"
    commit = gitops.commit_sdist(
        checkout, archive, f"{described} (sha256 {newest.sdist_sha256})"
    )
    git("update-ref", NEWEST_REF, commit, cwd=checkout)
    commit = gitops.in_layout(
        checkout, commit, newest.sdist_layout, newest.series_layout
    )
    omit = gitops.missing_tests_of(checkout, commit, series_files)
    note = f"the {newest.project} sdist ships no tests" if omit else ""
    newer = "" if args.offline else _newer_on_index(newest)
    return Newest(commit, described, omit=omit, note=note, newer=newer)


def _newer_on_index(newest):
    """A line saying whether the index has a newer sdist than the pin."""
    try:
        version = gitops.newest_version(newest.project)
    except gitops.Unreachable as e:
        return f"not asked whether {newest.project} has a newer sdist: {e}"
    if version == newest.version:
        return ""
    return (
        f"pins.toml's {newest.target} {newest.version} is not the newest: "
        f"{version}; bump the pin (docs/workflow.md)"
    )


# Upstream's formatter and linter --------------------------------------------


def _lint_tools(config):
    """'ruff 0.9.2, ...': the installed lint tools, checked against pr.toml."""
    found = []
    for requirement in config.lint_requires:
        name, _, wanted = requirement.partition("==")
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if version is None or wanted and version != wanted:
            raise KbbError(
                f"pr/{config.directory.name}/pr.toml lints with {requirement}, "
                f"but {sys.executable} has {version or 'none'}: run `tox -e pr`, "
                f"or `pip install {requirement}`"
            )
        found.append(f"{name} {version}")
    return ", ".join(found) or "the installed tools"


def _lint(config, tree, files):
    """Runs each lint command in `tree` on `files`; returns its findings."""
    findings = []
    if not files:  # without files, the tools would check the whole tree
        return findings
    for module, *arguments in config.lint_commands:
        argv = []
        for argument in arguments:
            argv += files if argument == "{files}" else [argument]
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


# The workspace's results and generated docs ----------------------------------


@dataclasses.dataclass
class Evidence:
    records: list  # fresh results of the implementations of pr.toml
    marks: list  # "[kbb: missing] ..." / "[kbb: stale] ...": in the texts


def _newest_mtime(path):
    files = (
        [p for p in Path(path).rglob("*") if p.is_file()] if path.is_dir() else [path]
    )
    return max((p.stat().st_mtime for p in files), default=0.0)


def _when(seconds):
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _results(ws, pin, config):
    """The results of out/results/ENV.json for each env of pr.toml: a result
    is stale when measured on another release than the pin, or, for the
    patched release, when older than the last change of patches/TARGET/."""
    directory = Path(os.environ.get("KBB_RESULTS") or ws.root / "out" / "results")
    series_time = _newest_mtime(ws.patches(pin.series))
    evidence = Evidence([], [])
    for env in config.envs:
        path = directory / f"{env}.json"
        shown = os.path.relpath(path, ws.root)
        rerun = f"run `tox -e {env}`"
        try:
            records = [
                r
                for r in json.loads(path.read_text())
                if r.get("implementation") in config.implementations
            ]
        except FileNotFoundError:
            evidence.marks.append(f"[kbb: missing] {shown}: {rerun}")
            continue
        except ValueError:
            evidence.marks.append(f"[kbb: missing] {shown} is not JSON: {rerun}")
            continue
        found = {r["implementation"] for r in records}
        absent = [i for i in config.implementations if i not in found]
        if absent:
            evidence.marks.append(
                f"[kbb: missing] {shown} has no {' or '.join(absent)} result: {rerun}"
            )
        if not records:
            continue
        versions = {str(r.get(config.version_key)) for r in records}
        # A patched build is the pin plus a local version: `+bessel1`, or
        # `+bessel1.native` for a build with a stacked group.
        if {v.split("+")[0] for v in versions} != {pin.version}:
            evidence.marks.append(
                f"[kbb: stale] {shown} measured {config.version_key} "
                f"{', '.join(sorted(map(str, versions)))}, not {pin.version} "
                f"(pins.toml): {rerun}"
            )
        elif any("+" in v for v in versions) and path.stat().st_mtime < series_time:
            evidence.marks.append(
                f"[kbb: stale] {shown} ({_when(path.stat().st_mtime)}) is older "
                f"than patches/{pin.series}/ ({_when(series_time)}): {rerun}"
            )
        else:
            evidence.records += [dict(r, env=env) for r in records]
    return evidence


def _changed(ws, path):
    """When `path` last changed: its last commit if committed unchanged,
    else its modification time (so a fresh clone keeps the commit order)."""
    relative = os.path.relpath(path, ws.root)
    dirty = git("status", "--porcelain", "--", relative, cwd=ws.root, check=False)
    if dirty.returncode == 0 and not dirty.stdout.strip():
        stamp = git("log", "-1", "--format=%ct", "--", relative, cwd=ws.root).strip()
        if stamp:
            return float(stamp)
    return _newest_mtime(path)


def _doc_table(ws, pin, name, what, group):
    """The first table of docs/NAME, or a mark saying why there is none. A
    document with one section per patch group (a heading that names branch
    group/GROUP, as docs/benchmarks.md has) gives the first table of the
    group's section."""
    path = ws.root / "docs" / name
    if not path.is_file():
        return f"[kbb: missing] docs/{name} ({what}) does not exist: generate it"
    text = path.read_text()
    section = re.search(rf"^#+ .*\bgroup/{re.escape(group)}\b.*$", text, re.MULTILINE)
    if section:
        text = text[section.end() :]
    table = re.search(r"(^\|.*\|\n)+", text, re.MULTILINE)
    if table is None:
        return f"[kbb: missing] docs/{name} has no table of {what}"
    inputs = [ws.patches(pin.series), ws.pins_file]
    newest = max(inputs, key=lambda p: _changed(ws, p))
    if _changed(ws, path) < _changed(ws, newest):
        return (
            f"[kbb: stale] docs/{name} is older than "
            f"{os.path.relpath(newest, ws.root)}: regenerate it"
        )
    return f"{table.group(0).rstrip()}\n\nFrom `docs/{name}` of the workspace."


_BACKENDS = ("tensorflow", "jax", "torch")


def _column(version, backend):
    """Sorts the pinned release before the patched one, then by backend."""
    rank = _BACKENDS.index(backend) if backend in _BACKENDS else len(_BACKENDS)
    return "+" in str(version), rank, str(backend)


def _numbers(evidence, pin, config, patched):
    """Markdown tables of the measured figures (with `patched`: of both
    releases), followed by the marks of the missing or stale results. With
    several implementations (pr.toml), the rows name theirs."""
    key = config.version_key
    records = [r for r in evidence.records if patched or r.get(key) == pin.version]
    order = config.implementations
    several = len(order) > 1

    def label(r):
        return [config.labels[r["implementation"]]] if several else []

    parts = []
    issue = [r for r in records if r.get("scenario") == "issue-8982"]
    if issue:
        head = [pin.project, "backend"] + (["implementation"] if several else [])
        head += [
            "`moving_variance`",
            "biased rule",
            "unbiased rule",
            "variance of the data",
        ]
        rows = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for r in sorted(
            issue,
            key=lambda r: (
                order.index(r["implementation"]),
                _column(r[key], r["backend"]),
            ),
        ):
            cells = [str(r[key]), r["backend"], *label(r)]
            cells += [
                f"{r[k]:.4f}"
                for k in (
                    "moving_variance",
                    "biased_reference",
                    "unbiased_reference",
                    "data_variance",
                )
            ]
            rows.append("| " + " | ".join(cells) + " |")
        parts.append(
            "The script of the issue: `moving_variance` at the end, and what the "
            "biased and the unbiased rules give over the same batches (float64 "
            "references):\n\n" + "\n".join(rows)
        )
    converge = [r for r in records if r.get("scenario") == "convergence"]
    if converge:
        columns = sorted(
            {(r[key], r["backend"]) for r in converge}, key=lambda c: _column(*c)
        )
        cell = {
            (r["implementation"], r["n"], r[key], r["backend"]): r["converged"]
            for r in converge
        }
        head = (["implementation"] if several else []) + ["n", "(n - 1) / n"]
        head += [f"{b}, {pin.project} {v}" for v, b in columns]
        rows = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for implementation in order:
            for n in sorted({r["n"] for r in converge}):
                values = [(n - 1) / n]
                values += [cell.get((implementation, n, v, b)) for v, b in columns]
                cells = [f"{x:.4f}" if x is not None else "n/a" for x in values]
                name = [config.labels[implementation]] if several else []
                rows.append("| " + " | ".join([*name, str(n), *cells]) + " |")
        parts.append(
            "Batches of n values of N(0, 1) in each of 1024 channels, momentum "
            "0.9, 200 steps: the mean over the channels of `moving_variance`, "
            "which should be the variance of the data, 1:\n\n" + "\n".join(rows)
        )
    marks = [f"- **{m}**" for m in evidence.marks]
    if not parts and not marks:
        marks = ["- **[kbb: missing] no measured figure**"]
    return "\n\n".join(parts + ["\n".join(marks)] if marks else parts)


# What the group changes ------------------------------------------------------


def _unwrap(body):
    """Joins the wrapped lines of each plain paragraph of a commit message
    (GitHub shows every newline of a description)."""
    paragraphs = []
    for paragraph in body.strip().split("\n\n"):
        lines = paragraph.splitlines()
        if any(re.match(r"\s|[-*] |\d+\. ", line) for line in lines):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(lines))
    return "\n\n".join(paragraphs)


def _message(checkout, patch):
    """The commit message of a patch file, as `git am` would commit it."""
    with tempfile.TemporaryDirectory() as tmp:
        message, diff = Path(tmp) / "message", Path(tmp) / "diff"
        info = git(
            "mailinfo",
            str(message),
            str(diff),
            cwd=checkout,
            input=patch.path.read_text(),
        )
        subject = re.search(r"^Subject: (.*)$", info, re.MULTILINE)
        return f"{subject.group(1) if subject else ''}\n\n{message.read_text()}"


def _title(checkout, patches):
    """The subject of the group's last patch for every source: a patch marked
    only=SOURCE (upstream's tests) does not name the change."""
    shipped = [p for p in patches if p.only is None] or patches
    return _message(checkout, shipped[-1]).partition("\n")[0].strip()


def _commits(checkout, start, end, patches, skipped):
    """A section per patch: its commit's message, or, for a patch that was
    not applied to this source (only=), the message of its file."""
    commits = iter(
        git("rev-list", "--reverse", f"{start}..{end}", cwd=checkout).split()
    )
    sections = []
    for patch in patches:
        if patch.name in skipped:
            message = _message(checkout, patch)
        else:
            message = git("log", "-1", "--format=%B", next(commits), cwd=checkout)
        subject, _, body = gitops.strip_provenance(message).partition("\n")
        sections.append(f"### {subject.strip()}\n\n{_unwrap(body)}".rstrip())
    return "\n\n".join(sections)


def _files(checkout, start, end, skipped=()):
    """What the group changes per file; the patches that were not applied to
    this source (only=) are counted from their files."""
    stats = git("diff", "--numstat", start, end, cwd=checkout)
    for patch in skipped:
        stats += git("apply", "--numstat", str(patch.path), cwd=checkout)
    counts = {}
    for line in stats.splitlines():
        added, removed, path = line.split("\t")
        if path in counts and "-" not in (added, removed, *counts[path]):
            added = str(int(counts[path][0]) + int(added))
            removed = str(int(counts[path][1]) + int(removed))
        counts[path] = (added, removed)
    paths = sorted(counts) if skipped else counts
    return "\n".join(f"- `{p}`: +{counts[p][0]} -{counts[p][1]}" for p in paths)


def _tests(texts):
    """What the patches change in upstream's test files: the tests they add,
    the ones they rewrite (a `def` removed and added), the other changes."""
    added, removed, other = {}, {}, {}
    for text in texts:
        for file, _, hunks in gitops.file_diffs(text)[1]:
            if TEST_FILE.search(file):
                for hunk in hunks:
                    new = re.findall(r"^\+[ \t]*def (test\w*)\(", hunk, re.MULTILINE)
                    gone = re.findall(r"^-[ \t]*def (test\w*)\(", hunk, re.MULTILINE)
                    added.setdefault(file, []).extend(new)
                    removed.setdefault(file, []).extend(gone)
                    other[file] = other.get(file, 0) + (not new)
    lines = []
    for file, names in added.items():
        parts = []
        for verb, kept in (("adds", False), ("rewrites", True)):
            chosen = [n for n in names if (n in removed[file]) == kept]
            if chosen:
                parts.append(f"{verb} {', '.join(f'`{n}`' for n in chosen)}")
        if other[file]:
            parts.append(f"changes existing tests in {other[file]} place(s)")
        lines.append(f"- `{file}`: {'; '.join(parts)}")
    return "\n".join(lines) or "(no test file changes)"


# Rendering and the output folder ----------------------------------------------


def _render(path, values):
    try:
        return string.Template(path.read_text()).substitute(values)
    except KeyError as e:
        raise KbbError(
            f"{path}: unknown placeholder ${e.args[0]} (known: "
            f"{', '.join(sorted(values))})"
        ) from None
    except ValueError as e:
        raise KbbError(f"{path}: {e} (write $$ for a dollar sign)") from None


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _write(folder, name, text, state, notes):
    """Writes folder/NAME, unless the human edited it since it was rendered:
    then the new rendering goes to NAME.new.md beside it."""
    path, new = folder / name, folder / name.replace(".md", ".new.md")
    rendered = state.get("rendered", {})
    if path.is_file() and _sha(path.read_text()) != rendered.get(name):
        new.write_text(text)
        notes.append(f"{name} has your edits, kept; the new rendering is {new.name}")
        return
    path.write_text(text)
    new.unlink(missing_ok=True)
    rendered[name] = _sha(text)
    state["rendered"] = rendered


def _state(folder):
    try:
        return json.loads((folder / "state.json").read_text())
    except FileNotFoundError:
        return {}


def _identity(checkout):
    """The user's git (name, email), or None."""
    values = [
        git("config", key, cwd=checkout, check=False, user_config=True).stdout.strip()
        for key in ("user.name", "user.email")
    ]
    return tuple(values) if all(values) else None


def _github(url):
    """'owner/name' of a GitHub URL, else None."""
    match = re.search(r"github\.com[:/]([^/]+/[^/]+?)(\.git)?/?$", url or "")
    return match.group(1) if match else None


# kbb pr TARGET ------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """The series checked against the pinned release and the newest upstream,
    and what the texts and the branches are made from."""

    config: Config
    series: gitops.Series
    texts: dict  # patch name -> text
    source: str  # of the checkout: sdist or git
    pinned: gitops.Attempt
    newest: Newest
    newest_attempt: gitops.Attempt | None
    lint: dict  # group -> (files, findings, the files linted on the newest upstream)
    evidence: Evidence | None = None
    identity: tuple | None = None  # the user's (name, email)


def prepare(ws, pin, checkout, args):
    """Checks, lints, renders and branches each group; raises KbbError at the
    end when a group is not ready for upstream."""
    config = load_config(ws, pin.target)
    tools = _lint_tools(config)
    series = gitops.Series.load(ws.patches(pin.series))
    groups = args.group or series.groups
    unknown = sorted(set(groups) - set(series.groups))
    if unknown:
        raise KbbError(f"no group {', '.join(unknown)} in patches/{pin.series}/")
    if rev(checkout, "refs/heads/series") not in (
        None,
        rev(checkout, "refs/kbb/applied"),
    ):
        gitops.log(
            f"branch series has commits not in patches/{pin.series}/: the pull "
            "requests are made from patches/ (`kbb export` them to include them)"
        )
    run = _check(ws, pin, checkout, args, config, series)
    run.evidence = _results(ws, pin, config)
    run.identity = _identity(checkout)
    failed = []
    for group in groups:
        folder = ws.root / "out" / "pr" / pin.target / group
        folder.mkdir(parents=True, exist_ok=True)
        state = _state(folder)
        lines, trouble = _report_checks(pin, run, group, tools, args.offline)
        if group in run.pinned.tips:
            lines += _branch(ws, pin, checkout, run, group, state)
            lines += _texts(ws, pin, checkout, run, group, folder, state)
        state["problems"] = trouble
        (folder / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        (folder / "report.txt").write_text("\n".join(lines) + "\n")
        print(f"{pin.target}: group {group}")
        print("\n".join("  " + line for line in lines), flush=True)
        if trouble:
            failed.append(f"{group}: {'; '.join(trouble)}")
    if failed:
        raise KbbError(f"{pin.target} is not ready for upstream: {' | '.join(failed)}")


def _check(ws, pin, checkout, args, config, series):
    """Applies the series to the pinned release, lints each group there,
    and applies it to the newest upstream."""
    source = gitops._source(checkout)
    pristine = gitops.in_layout(
        checkout,
        rev(checkout, "refs/heads/pristine"),
        pin.layout(source),
        pin.series_layout,
    )
    texts = {p.name: p.path.read_text() for p in series.patches}
    changed = {f for text in texts.values() for f in gitops.patch_files(text)}
    pinned_files = git("ls-tree", "-r", "--name-only", pristine, cwd=checkout)
    newest = _newest(ws, pin, checkout, args, changed & set(pinned_files.split()))

    def python_files(group, tree):
        return {
            f
            for p in series.group_patches(group)
            for f in gitops.patch_files(texts[p.name])
            if f.endswith(".py") and (tree / f).is_file()
        }

    lint = {}  # group -> (files, findings, the files linted on the newest upstream)
    with gitops.scratch(checkout, pristine) as tree:
        pinned = gitops.try_series(tree, series, source)
        for group, commit in pinned.tips.items():
            git("checkout", "-q", "--detach", commit, cwd=tree)
            files = sorted(python_files(group, tree))
            lint[group] = (files, _lint(config, tree, files), [])
    newest_attempt = None
    if newest.commit:
        with gitops.scratch(checkout, newest.commit) as tree:
            newest_attempt = gitops.try_series(tree, series, newest.source, newest.omit)
            # The files that the pinned release lacks (tf-keras' tests, not
            # in its sdist) are linted where the group applies on the newest upstream.
            for group, commit in newest_attempt.tips.items():
                files, findings, _ = lint.get(group, ([], [], []))
                git("checkout", "-q", "--detach", commit, cwd=tree)
                more = sorted(python_files(group, tree) - set(files))
                if more:
                    findings = findings + _lint(config, tree, more)
                    lint[group] = (sorted(files + more), findings, more)
    return Run(config, series, texts, source, pinned, newest, newest_attempt, lint)


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


def _report_checks(pin, run, group, tools, offline):
    """The report lines of the checks of a group, and its problems."""
    series, pinned, newest, newest_attempt = (
        run.series,
        run.pinned,
        run.newest,
        run.newest_attempt,
    )
    patches = series.group_patches(group)
    release = "PyPI sdist" if run.source == "sdist" else pin.git_tag
    lines = [f"pinned  {pin.spec}, {release}:"]
    lines += [f"  {p.name}: {_status(pinned, series, p)}" for p in patches]
    if group not in pinned.tips:
        return lines, [f"the series does not apply to {pin.spec}"]
    trouble = []
    if newest_attempt is None:
        lines.append(f"newest  not checked: {newest.note}")
        if not offline and newest.expected:
            trouble.append("the newest upstream was not checked")
    else:
        lines.append(f"newest  {newest.description}:")
        if newest.newer:
            lines.append(f"  {newest.newer}")
        lines += [f"  {p.name}: {_status(newest_attempt, series, p)}" for p in patches]
        if group not in newest_attempt.tips:
            trouble.append("the series does not apply to the newest upstream")
        dropped = [d for p in patches for d in newest_attempt.omitted.get(p.name, [])]
        if dropped:
            lines.append(
                f"  {sum(n for _, n in dropped)} test-file hunk(s) not checked: "
                f"{newest.note} ({', '.join(sorted({f for f, _ in dropped}))})"
            )
    files, findings, on_newest = run.lint[group]
    where = (
        f" ({len(on_newest)} on the newest upstream: the pinned release lacks them)"
        if on_newest
        else ""
    )
    lines.append(
        f"lint    {tools} (pr/{pin.target}/pr.toml) on {len(files)} file(s)"
        + f"{where}: "
        + (f"{len(findings)} command(s) found issues" if findings else "clean")
    )
    lines += ["  " + line for finding in findings for line in finding.splitlines()]
    if findings:
        trouble.append("upstream's lint found issues")
    return lines, trouble


def _branch(ws, pin, checkout, run, group, state):
    """Makes branch pr/GROUP: the series up to GROUP on upstream's commit
    where it applies there, else on the pinned release, without the
    workspace's headers, authored by the user. Returns report lines."""
    newest, newest_attempt = run.newest, run.newest_attempt
    on_newest = (
        newest_attempt is not None
        and newest.branch
        and group in newest_attempt.tips
        and not newest_attempt.omitted
        and not newest_attempt.unchecked
    )
    attempt = newest_attempt if on_newest else run.pinned
    commit = gitops.rewrite(
        checkout,
        attempt.base,
        attempt.tips[group],
        gitops.strip_provenance,
        run.identity,
    )
    git("branch", "-f", f"pr/{group}", commit, cwd=checkout)
    if on_newest:
        kind, based = "upstream", f"upstream's {newest.description}"
    elif run.source == "sdist":
        kind, based = "sdist", f"the {pin.spec} sdist commit, not an upstream commit"
    else:
        kind, based = "release", f"the release tag {pin.git_tag}"
    state.update(
        group=group,
        commit=commit,
        base=attempt.base,
        base_kind=kind,
        based_on=based,
        upstream_branch=newest.branch if on_newest else None,
    )
    count = git("rev-list", "--count", f"{attempt.base}..{commit}", cwd=checkout)
    lines = [
        f"branch  pr/{group} ({commit[:12]}) in "
        f"{os.path.relpath(checkout, ws.root)}: {count.strip()} commit(s) on {based}"
    ]
    if kind != "upstream":
        lines.append(
            "  not pushable: a pull request starts on upstream's default branch; "
            f"`kbb pr {pin.target} --newest-git` (network) bases pr/{group} there"
        )
    if run.identity is None:
        lines.append(
            f"  authored by {gitops.BOT_NAME}: set git config user.name and "
            "user.email (the CLA check needs your identity), then rerun"
        )
    return lines


def _texts(ws, pin, checkout, run, group, folder, state):
    """Renders ISSUE.md and PR.md of the group; returns report lines."""
    series, attempt = run.series, run.pinned
    index = series.groups.index(group)
    start = attempt.tips[series.groups[index - 1]] if index else attempt.base
    end = attempt.tips[group]
    patches = series.group_patches(group)
    skipped = [p for p in patches if p.name in attempt.skipped]
    docs = {
        placeholder: _doc_table(ws, pin, name, what, group)
        for placeholder, (name, what) in run.config.docs.items()
    }
    values = {
        "project": pin.project,
        "version": pin.version,
        "title": _title(checkout, patches),
        "commits": _commits(checkout, start, end, patches, attempt.skipped),
        "files": _files(checkout, start, end, skipped),
        "tests": _tests(run.texts[p.name] for p in patches),
        "stack": _stack(series, group),
        "issue_numbers": _numbers(run.evidence, pin, run.config, patched=False),
        "numbers": _numbers(run.evidence, pin, run.config, patched=True),
        **{k: v if v.startswith("|") else f"**{v}**" for k, v in docs.items()},
    }
    marks = run.evidence.marks + [v for v in docs.values() if v[0] == "["]
    lines = [
        f"results {len(run.evidence.records)} figure(s)"
        + ("; marked in the texts:" if marks else "")
    ]
    lines += [f"  {m}" for m in marks]
    notes = []
    for name in ("ISSUE.md", "PR.md"):
        text = _render(run.config.template(group, name), values)
        _write(folder, name, text, state, notes)
    lines.append(f"texts   {os.path.relpath(folder, ws.root)}/ISSUE.md, PR.md")
    return lines + [f"  {note}" for note in notes]


def _stack(series, group):
    index = series.groups.index(group)
    if index == 0:
        return ""
    return (
        f"This pull request is stacked on the one of {series.groups[index - 1]} "
        "([kbb: fill in its link]): its first commits are that pull request's, "
        "to be merged first.\n"
    )


# kbb pr TARGET --push REMOTE --------------------------------------------------


def push(ws, pin, checkout, args):
    """Pushes branch pr/GROUP of each group whose PR.md the human made
    ready, then opens its pull request with gh, or prints how to."""
    series = gitops.Series.load(ws.patches(pin.series))
    ready = []
    for group in args.group or series.groups:
        folder = ws.root / "out" / "pr" / pin.target / group
        shown = os.path.relpath(folder, ws.root)
        state = _state(folder)
        if "commit" not in state or not (folder / "PR.md").is_file():
            raise KbbError(
                f"no {shown}/PR.md: run `kbb pr {pin.target}` first; nothing was pushed"
            )
        refusals = _refusals(checkout, folder, state, pin)
        if refusals:
            raise KbbError(f"{shown}: {'; '.join(refusals)}; nothing was pushed")
        ready.append((group, folder, state))
    remote = git("remote", "get-url", args.push, cwd=checkout, check=False)
    url = remote.stdout.strip() or args.push
    upstream = _github(pin.git_url)
    fork = (_github(url) or "YOUR-GITHUB-USER/").split("/")[0]
    for group, folder, state in ready:
        result = git(
            "push",
            args.push,
            f"{state['commit']}:refs/heads/pr/{group}",
            cwd=checkout,
            check=False,
            user_config=True,
        )
        if result.returncode:
            said = " ".join(line.strip() for line in result.stderr.splitlines())
            raise KbbError(
                f"git push {args.push} pr/{group} failed: {said} (is your fork "
                "up to date with upstream? `gh repo sync` brings it there)"
            )
        print(f"pushed pr/{group} ({state['commit'][:12]}) to {url}")
        title, _, body = (folder / "PR.md").read_text().partition("\n")
        body_file = os.path.relpath(folder / "PR.body.md")
        Path(body_file).write_text(body.lstrip("\n"))
        base, head = state["upstream_branch"], f"{fork}:pr/{group}"
        command = ["gh", "pr", "create", "--repo", str(upstream), "--base", base]
        command += ["--head", head, "--title", title.removeprefix("# ").strip()]
        command += ["--body-file", body_file]
        if upstream is None:
            print(
                f"{pin.git_url} is not on GitHub: open the pull request of "
                f"pr/{group} there, with the text of {body_file}"
            )
        elif shutil.which("gh"):
            if subprocess.run(command).returncode:
                raise KbbError(
                    f"gh pr create failed; pr/{group} is pushed: {shlex.join(command)}"
                )
        else:
            print("gh is not installed: open the pull request with")
            print(f"  {shlex.join(command)}")
            print(
                f"or at https://github.com/{upstream}/compare/{base}...{head}"
                f"?expand=1, with the text of {body_file}"
            )
        print(
            "then set `Forwarded:` to its URL in the patches of "
            f"patches/{pin.series}/{group}/ (docs/workflow.md)"
        )


def _refusals(checkout, folder, state, pin):
    """Why pr/GROUP may not be pushed yet: the human's part of PR.md, and
    what the last `kbb pr` found."""
    text = (folder / "PR.md").read_text()
    group = state["group"]
    refusals = []
    unchecked = UNCHECKED.findall(text)
    if unchecked:
        refusals.append(
            f"PR.md has {len(unchecked)} unticked box(es), yours to tick: "
            + "; ".join(u.strip() for u in unchecked)
        )
    marks = MARK.findall(text)
    if marks:
        refusals.append(
            f"PR.md has {len(marks)} [kbb: ...] mark(s) left to fill in or remove"
        )
    if (folder / "PR.new.md").exists():
        refusals.append("merge PR.new.md, a newer rendering, into PR.md, delete it")
    if state.get("problems"):
        refusals.append(f"`kbb pr` found: {'; '.join(state['problems'])}")
    if state["base_kind"] != "upstream":
        refusals.append(
            f"pr/{group} is based on {state['based_on']}: `kbb pr {pin.target} "
            "--newest-git` (network) bases it on upstream's default branch"
        )
    if rev(checkout, f"refs/heads/pr/{group}") != state["commit"]:
        refusals.append(f"pr/{group} changed since PR.md was rendered: rerun `kbb pr`")
    identity = _identity(checkout)
    span = f"{state['base']}..{state['commit']}"
    authors = set(git("log", "--format=%an <%ae>", span, cwd=checkout).splitlines())
    if identity is None:
        refusals.append("set git config user.name and user.email, then rerun `kbb pr`")
    elif authors - {"{} <{}>".format(*identity)}:
        refusals.append(
            f"pr/{group} is authored by {', '.join(sorted(authors))}, not by you: "
            "rerun `kbb pr` (the CLA check needs your identity)"
        )
    return refusals
