"""`kbb pr TARGET`: for each patch group, the checks (kbb.pr.checks), the
texts (kbb.pr.texts) and branch pr/GROUP in the checkout, written to
out/pr/TARGET/GROUP/ (report.txt, ISSUE.md, PR.md, state.json)."""

import hashlib
import json

from kbb import KbbError
from kbb import log
from kbb import redact
from kbb import results
from kbb.files import write_text
from kbb.git import BOT
from kbb.git import commit_tree
from kbb.git import commits
from kbb.git import git
from kbb.git import identity_env
from kbb.git import meta
from kbb.git import rev
from kbb.pr import checks
from kbb.pr import config as pr_config
from kbb.pr import numbers
from kbb.pr import texts
from kbb.series import strip_provenance
from kbb.upstream.checkout import source_of


def identity(checkout):
    """The user's git (name, email), or None."""
    found = [
        git("config", key, cwd=checkout, check=False, user_config=True).stdout.strip()
        for key in ("user.name", "user.email")
    ]
    return tuple(found) if all(found) else None


def load_state(folder):
    try:
        return json.loads((folder / "state.json").read_text())
    except FileNotFoundError:
        return {}


def summary(ws, pin):
    """{group: its state.json without the seal, credentials redacted, and
    "stale": why it no longer holds} of each group `kbb pr` prepared (`kbb
    pr --json`, `kbb status`)."""
    found = {}
    for folder in sorted(ws.pr_out(pin.target).glob("*/state.json")):
        state = load_state(folder.parent)
        shown = {k: v for k, v in state.items() if k != "seal"}
        shown["stale"] = state_refusals(ws, pin, state)
        found[folder.parent.name] = _redacted(shown)
    return found


def _redacted(value):
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return redact(value) if isinstance(value, str) else value


def seal(state):
    """A digest of the state without its seal: an edited state.json does
    not match it."""
    content = {k: v for k, v in state.items() if k != "seal"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def state_refusals(ws, pin, state):
    """Why state.json is not as `kbb pr` wrote it for the series and pin as
    now: edited, or made from other patches/ or pins.toml."""
    found = []
    if state.get("seal") != seal(state):
        found.append(f"state.json was edited since `kbb pr {pin.target}` wrote it")
    if state.get("series") != results.series_digest(ws, pin, state.get("group")):
        found.append(
            f"patches/{pin.series}/ changed since `kbb pr {pin.target}` made "
            f"pr/{state.get('group')}"
        )
    if state.get("pin") != pin.digest():
        found.append(f"pins.toml [{pin.target}] changed since `kbb pr {pin.target}`")
    if found:
        found[-1] += f": rerun `kbb pr {pin.target}`"
    return found


def save_state(ws, pin, folder, state):
    """Writes state.json with the digests of the series and the pin it was
    made from, sealed."""
    group = state.get("group")
    state.update(series=results.series_digest(ws, pin, group), pin=pin.digest())
    state["seal"] = seal(state)
    write_text(folder / "state.json", json.dumps(state, indent=1) + "\n")


def rewrite(repo, base, tip, author):
    """Remakes the commits base..tip without the workspace's headers, with
    `author` (name, email) as their author and committer if given (the
    dates are kept); returns the new tip."""
    new = base
    for commit in commits(repo, f"{base}..{tip}"):
        name, email, date, message = meta(repo, commit)
        env = identity_env(
            author=author or (name, email), date=date, committer=author or BOT
        )
        new = commit_tree(
            repo, f"{commit}^{{tree}}", [new], strip_provenance(message), env
        )
    return new


def prepare(ws, pin, groups=None, newest_git=None, offline=False):
    """Checks, lints, renders and branches each group; raises KbbError at the
    end when a group is not ready for upstream."""
    checkout = ws.checkout(pin.target)
    config = pr_config.load(ws, pin.target)
    tools = checks.lint_tools(config)
    series = ws.series(pin)
    groups = groups or series.groups
    unknown = sorted(set(groups) - set(series.groups))
    if unknown:
        raise KbbError(f"no group {', '.join(unknown)} in patches/{pin.series}/")
    tip = rev(checkout, "refs/heads/series")
    if tip not in (None, rev(checkout, "refs/kbb/applied")):
        log(
            f"branch series has commits not in patches/{pin.series}/: the pull "
            "requests are made from patches/ (`kbb export` them to include them)"
        )
    source = source_of(checkout)
    run = checks.check(ws, pin, checkout, source, config, series, newest_git, offline)
    evidence = numbers.collect(ws, pin, config)
    author = identity(checkout)
    failed = []
    for group in groups:
        folder = ws.pr_out(pin.target, group)
        folder.mkdir(parents=True, exist_ok=True)
        state = load_state(folder)
        lines, trouble = checks.report_lines(pin, run, group, tools, offline)
        if group in run.pinned.tips:
            lines += _branch(ws, pin, checkout, run, group, state, author)
            more, problems = _texts(
                ws, pin, checkout, run, group, folder, state, evidence, config
            )
            lines += more
            trouble += problems
        state["problems"] = trouble
        save_state(ws, pin, folder, state)
        write_text(folder / "report.txt", "\n".join(lines) + "\n")
        print(f"{pin.target}: group {group}")
        print("\n".join("  " + line for line in lines), flush=True)
        if trouble:
            failed.append(f"{group}: {'; '.join(trouble)}")
    if failed:
        raise KbbError(f"{pin.target} is not ready for upstream: {' | '.join(failed)}")


def _branch(ws, pin, checkout, run, group, state, author):
    """Makes branch pr/GROUP: the series up to GROUP on upstream's commit
    where it applies there, else on the pinned release, without the
    workspace's headers, authored by the user. Returns report lines."""
    newest, attempt = run.newest, run.newest_attempt
    on_newest = attempt is not None and newest.branch and group in attempt.tips
    on_newest = on_newest and not attempt.omitted and not attempt.unchecked
    attempt = attempt if on_newest else run.pinned
    commit = rewrite(checkout, attempt.base, attempt.tips[group], author)
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
    count = len(commits(checkout, f"{attempt.base}..{commit}"))
    lines = [
        f"branch  pr/{group} ({commit[:12]}) in {ws.shown(checkout)}: "
        f"{count} commit(s) on {based}"
    ]
    if kind != "upstream":
        lines.append(
            "  not pushable: a pull request starts on upstream's default branch; "
            f"`kbb pr {pin.target} --newest-git` (network) bases pr/{group} there"
        )
    if author is None:
        lines.append(
            f"  authored by {BOT[0]}: set git config user.name and user.email "
            "(the CLA check needs your identity), then rerun"
        )
    return lines


def _texts(ws, pin, checkout, run, group, folder, state, evidence, config):
    """Renders ISSUE.md and PR.md of the group, without the templates'
    notes, which go to REVIEW.md with the state of the results; returns
    report lines and problems."""
    found, doc_marks = texts.values(ws, pin, checkout, run, group, evidence, config)
    kept, review, shown = [], [], ""
    for name in ("ISSUE.md", "PR.md"):
        text, comments = texts.split_notes(
            texts.render(config.template(group, name), found)
        )
        shown += text
        review += [f"## {name}", "", *comments, ""] if comments else []
        texts.write(folder, name, text, state, kept)
        if name == "PR.md":
            state["boxes"] = texts.boxes(text)
    lines = [f"results {len(evidence.records)} figure(s), by pr.toml's environments:"]
    width = max((len(env) for env, _, _ in evidence.statuses), default=0)
    for env, status, line in evidence.statuses:
        said = "" if status == "current" else f": {line}"
        lines.append(f"  {env.ljust(width)}  {status}{said}")
    # Only the marks of the tables that the group's texts show.
    lines += [f"  {mark}" for mark in doc_marks if mark in shown]
    review = [f"# Review notes of pr/{group}", "", *lines, "", *review]
    write_text(folder / "REVIEW.md", "\n".join(review).rstrip() + "\n")
    problems = texts.body_problems((folder / "PR.md").read_text(), config.body_lines)
    lines.append(f"texts   {ws.shown(folder)}/ISSUE.md, PR.md; notes: REVIEW.md")
    lines += [f"  {note}" for note in kept] + [f"  {p}" for p in problems]
    return lines, problems
