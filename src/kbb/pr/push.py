"""`kbb pr TARGET --push REMOTE`: pushes branch pr/GROUP of each group whose
PR.md the human made ready, then opens its pull request with gh, or prints
how to. It refuses, with every reason, while anything is left to do."""

import re
import shlex
import shutil
import subprocess

from kbb import KbbError
from kbb import redact
from kbb.files import write_text
from kbb.git import cause
from kbb.git import git
from kbb.git import rev
from kbb.pr import config as pr_config
from kbb.pr import texts
from kbb.pr.newest import NEWEST_REF
from kbb.pr.prepare import identity
from kbb.pr.prepare import load_state
from kbb.pr.prepare import state_refusals

MARK = re.compile(r"\[kbb: [^\]]*\]")
# A list item with a box that is not ticked `[x]`, in any spelling.
OTHER_BOX = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s*\[\s{0,2}\].*$", re.M)


def github(url):
    """'owner/name' of a GitHub URL, else None."""
    match = re.search(r"github\.com[:/]([^/]+/[^/]+?)(\.git)?/?$", url or "")
    return match.group(1) if match else None


def _box_refusals(text, state):
    """Every box of the template must be ticked `- [x]` in PR.md, as it
    was written: a box deleted or mangled (`- []`, `+ [ ]`, `1. [ ]`) is
    not ticked."""
    if "boxes" not in state:
        return ["state.json lists no boxes of the template: rerun `kbb pr`"]
    unticked = [
        box
        for box in state["boxes"]
        if not re.search(rf"^\s*[-*] \[[xX]\] {re.escape(box)}\s*$", text, re.M)
    ]
    found = []
    if unticked:
        found.append(
            f"PR.md has {len(unticked)} of the template's {len(state['boxes'])} "
            "box(es) not ticked as `- [x]`, yours to tick: " + "; ".join(unticked)
        )
    plain = {f"- [ ] {box}" for box in unticked}
    others = [line.strip() for line in OTHER_BOX.findall(text)]
    others = [line for line in others if line not in plain]
    if others:
        found.append(f"PR.md has unticked or mangled boxes: {'; '.join(others)}")
    return found


def _base_refusals(checkout, state, pin):
    group = state["group"]
    if state["base_kind"] != "upstream":
        return [
            f"pr/{group} is based on {state['based_on']}: `kbb pr {pin.target} "
            "--newest-git` (network) bases it on upstream's default branch"
        ]
    found = []
    if rev(checkout, NEWEST_REF) != state["base"]:
        found.append(
            f"pr/{group} is not based on the newest upstream that `kbb pr` "
            f"fetched last: rerun `kbb pr {pin.target} --newest-git`"
        )
    if rev(checkout, f"refs/heads/pr/{group}") != state["commit"]:
        found.append(f"pr/{group} changed since PR.md was rendered: rerun `kbb pr`")
    return found


def refusals(ws, pin, checkout, folder, state, config):
    """Why pr/GROUP may not be pushed yet: the human's part of PR.md, what
    must not go upstream, and what `kbb pr` found, for the series as now."""
    text = (folder / "PR.md").read_text()
    found = _box_refusals(text, state)
    marks = MARK.findall(text)
    if marks:
        found.append(
            f"PR.md has {len(marks)} [kbb: ...] mark(s) left to fill in or remove"
        )
    if (folder / "PR.new.md").exists():
        found.append("merge PR.new.md, a newer rendering, into PR.md, delete it")
    found += texts.body_problems(text, config.body_lines)
    found += state_refusals(ws, pin, state)
    if state.get("problems"):
        found.append(f"`kbb pr` found: {'; '.join(state['problems'])}")
    found += _base_refusals(checkout, state, pin)
    return found + _authorship(checkout, state, state["group"])


def _authorship(checkout, state, group):
    author = identity(checkout)
    span = f"{state['base']}..{state['commit']}"
    authors = set(git("log", "--format=%an <%ae>", span, cwd=checkout).splitlines())
    if author is None:
        return ["set git config user.name and user.email, then rerun `kbb pr`"]
    if authors - {"{} <{}>".format(*author)}:
        return [
            f"pr/{group} is authored by {', '.join(sorted(authors))}, not by you: "
            "rerun `kbb pr` (the CLA check needs your identity)"
        ]
    return []


def push(ws, pin, remote, groups=None):
    checkout = ws.checkout(pin.target)
    config = pr_config.load(ws, pin.target)
    ready = []  # every group is checked before any is pushed
    for group in groups or ws.series(pin).groups:
        folder = ws.pr_out(pin.target, group)
        state = load_state(folder)
        if "commit" not in state or not (folder / "PR.md").is_file():
            raise KbbError(
                f"no {ws.shown(folder)}/PR.md: run `kbb pr {pin.target}` first; "
                "nothing was pushed"
            )
        found = refusals(ws, pin, checkout, folder, state, config)
        if found:
            raise KbbError(
                f"{ws.shown(folder)}: {'; '.join(found)}; nothing was pushed"
            )
        ready.append((group, folder, state))
    url = git("remote", "get-url", remote, cwd=checkout, check=False).stdout.strip()
    url = url or remote
    fork = (github(url) or "YOUR-GITHUB-USER/").split("/")[0]
    for group, folder, state in ready:
        ref = f"{state['commit']}:refs/heads/pr/{group}"
        result = git("push", remote, ref, cwd=checkout, check=False, user_config=True)
        if result.returncode:
            raise KbbError(
                f"git push {redact(remote)} pr/{group} failed: "
                f"{cause(result.stderr)} (is your fork up to date with upstream? "
                "`gh repo sync` brings it there)"
            )
        print(redact(f"pushed pr/{group} ({state['commit'][:12]}) to {url}"))
        _open(ws, pin, group, folder, state, fork)


def _open(ws, pin, group, folder, state, fork):
    """Opens the pull request with gh, or says how to."""
    upstream = github(pin.git_url)
    title, _, body = (folder / "PR.md").read_text().partition("\n")
    body_file = ws.shown(folder / "PR.body.md")
    write_text(folder / "PR.body.md", body.lstrip("\n"))
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
