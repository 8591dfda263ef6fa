"""ISSUE.md and PR.md of a patch group, rendered from the templates of
pr/TARGET/ (`string.Template`: $title, $commits, $files, $tests, $numbers,
...), the group's commits and the measured results. The human edits them;
a rendering never overwrites an edited file (it goes to NAME.new.md)."""

import hashlib
import re
import string
import tempfile
from pathlib import Path

from kbb import KbbError
from kbb import markdown
from kbb import results
from kbb.files import write_text
from kbb.git import commits
from kbb.git import git
from kbb.pr.numbers import numbers
from kbb.series import TEST_FILE
from kbb.series import file_diffs
from kbb.series import strip_provenance


def _unwrap(body):
    """Joins the wrapped lines of each plain paragraph of a commit message
    (GitHub shows every newline of a description)."""
    paragraphs = []
    for paragraph in body.strip().split("\n\n"):
        lines = paragraph.splitlines()
        kept = any(re.match(r"\s|[-*] |\d+\. ", line) for line in lines)
        paragraphs.append(paragraph if kept else " ".join(lines))
    return "\n\n".join(paragraphs)


def _message(checkout, patch):
    """The commit message of a patch file, as `git am` would commit it."""
    with tempfile.TemporaryDirectory() as tmp:
        message, diff = Path(tmp) / "message", Path(tmp) / "diff"
        text = patch.path.read_text()
        info = git("mailinfo", str(message), str(diff), cwd=checkout, input=text)
        subject = re.search(r"^Subject: (.*)$", info, re.MULTILINE)
        return f"{subject.group(1) if subject else ''}\n\n{message.read_text()}"


def title(checkout, patches):
    """The subject of the group's last patch for every source: a patch marked
    only=SOURCE (upstream's tests) does not name the change."""
    shipped = [p for p in patches if p.only is None] or patches
    return _message(checkout, shipped[-1]).partition("\n")[0].strip()


def commit_sections(checkout, start, end, patches, skipped):
    """A section per patch: its commit's message, or, for a patch that was
    not applied to this source (only=), the message of its file."""
    made = iter(commits(checkout, f"{start}..{end}"))
    sections = []
    for patch in patches:
        if patch.name in skipped:
            message = _message(checkout, patch)
        else:
            message = git("log", "-1", "--format=%B", next(made), cwd=checkout)
        subject, _, body = strip_provenance(message).partition("\n")
        sections.append(f"### {subject.strip()}\n\n{_unwrap(body)}".rstrip())
    return "\n\n".join(sections)


def changed_files(checkout, start, end, skipped=()):
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


def tests(texts):
    """What the patches change in upstream's test files: the tests they add,
    the ones they rewrite (a `def` removed and added), the other changes."""
    added, removed, other = {}, {}, {}
    for text in texts:
        for file, _, hunks in file_diffs(text)[1]:
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


def named_table(ws, pin, file, name, group):
    """The table marked `<!-- table: NAME -->` in the generated document
    FILE ({group} in NAME: the patch group), or a mark saying why there is
    none: the document is missing, has no such table, or is stale."""
    name = name.format(group=group)
    path = ws.root / file
    if not path.is_file():
        return f"[kbb: missing] {file} does not exist: generate it"
    found = markdown.tables(path.read_text())
    if name not in found:
        return f"[kbb: missing] {file} has no table named {name}"
    stale = results.doc_staleness(ws, path, pin)
    if stale:
        return f"[kbb: stale] {stale}"
    return found[name]


# Lines of a text that point into the workspace: links to its files.
_WORKSPACE_LINK = re.compile(
    r"\]\((?:\./)?(?:docs|out|pr|patches|src|study|scripts|\.upstream|"
    r"tests/(?:keras|tf_keras|evidence|tooling))/[^)]*\)"
)


def body_problems(text, body_lines):
    """What in PR.md must not go upstream: HTML comments, links to the
    workspace's files, a body longer than pr.toml's pr-body-lines."""
    problems = []
    if "<!--" in text:
        problems.append("PR.md has an HTML comment (reviewer notes go to REVIEW.md)")
    links = _WORKSPACE_LINK.findall(text)
    if links:
        problems.append(f"PR.md links to the workspace's files: {', '.join(links)}")
    body = text.partition("\n")[2].strip("\n")
    count = len(body.splitlines())
    if body_lines is not None and count > body_lines:
        problems.append(
            f"PR.md's body has {count} lines, more than pr.toml's "
            f"pr-body-lines ({body_lines})"
        )
    return problems


_BOX = re.compile(r"^\s*[-*] \[ \] (.+?)\s*$", re.MULTILINE)


def boxes(text):
    """The texts of the unticked `- [ ]` boxes of a rendered template."""
    return _BOX.findall(text)


def split_notes(text):
    """(the text without its HTML comments, the comments' contents): the
    templates' notes for the reviewer never go upstream."""
    notes = [n.strip() for n in re.findall(r"<!--(.*?)-->", text, flags=re.DOTALL)]
    return markdown.strip_comments(text), notes


def table_values(ws, pin, group, evidence, config):
    """The placeholders of the measured figures and of the named tables of
    pr.toml, and the marks of the documents that are missing or stale."""
    tables = {
        placeholder: named_table(ws, pin, file, name, group)
        for placeholder, (file, name) in config.tables.items()
    }
    found = {
        "issue_numbers": numbers(evidence, pin, config, patched=False),
        "numbers": numbers(evidence, pin, config, patched=True),
        **{k: v if v.startswith("|") else f"**{v}**" for k, v in tables.items()},
    }
    return found, [v for v in tables.values() if v.startswith("[")]


def values(ws, pin, checkout, run, group, evidence, config):
    """The values of the placeholders of the templates of a group, and the
    marks of the documents that are missing or stale."""
    series, attempt = run.series, run.pinned
    index = series.groups.index(group)
    start, stack = attempt.base, ""
    if index:
        start = attempt.tips[series.groups[index - 1]]
        stack = (
            f"Stacked on the `{series.groups[index - 1]}` pull request "
            "([kbb: fill in its link]): its first commits are that pull request's, "
            "to be merged first.\n"
        )
    end = attempt.tips[group]
    patches = series.group_patches(group)
    skipped = [p for p in patches if p.name in attempt.skipped]
    found, marks = table_values(ws, pin, group, evidence, config)
    found.update(
        project=pin.project,
        version=pin.version,
        title=title(checkout, patches),
        commits=commit_sections(checkout, start, end, patches, attempt.skipped),
        files=changed_files(checkout, start, end, skipped),
        tests=tests(run.texts[p.name] for p in patches),
        stack=stack,
    )
    return found, marks


def render(path, found):
    try:
        return string.Template(path.read_text()).substitute(found)
    except KeyError as e:
        raise KbbError(
            f"{path}: unknown placeholder ${e.args[0]} (known: "
            f"{', '.join(sorted(found))})"
        ) from None
    except ValueError as e:
        raise KbbError(f"{path}: {e} (write $$ for a dollar sign)") from None


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def write(folder, name, text, state, notes):
    """Writes folder/NAME, unless the human edited it since it was rendered:
    then the new rendering goes to NAME.new.md beside it."""
    path, new = folder / name, folder / name.replace(".md", ".new.md")
    rendered = state.get("rendered", {})
    if path.is_file() and sha(path.read_text()) != rendered.get(name):
        write_text(new, text)
        notes.append(f"{name} has your edits, kept; the new rendering is {new.name}")
        return
    write_text(path, text)
    new.unlink(missing_ok=True)
    rendered[name] = sha(text)
    state["rendered"] = rendered
