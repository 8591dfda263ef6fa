"""`kbb pr TARGET --push REMOTE`: pushes branch pr/GROUP of each group whose
PR.md the human made ready, then opens its pull request with gh, or prints
how to. It refuses, with every reason, while anything is left to do."""

import re
import shlex
import shutil
import subprocess

from kbb import KbbError
from kbb import redact
from kbb.git import cause
from kbb.git import git
from kbb.git import rev
from kbb.pr.prepare import identity
from kbb.pr.prepare import load_state
from kbb.series import Series

MARK = re.compile(r"\[kbb: [^\]]*\]")
UNCHECKED = re.compile(r"^\s*[-*] \[ \] (.+)$", re.MULTILINE)


def github(url):
    """'owner/name' of a GitHub URL, else None."""
    match = re.search(r"github\.com[:/]([^/]+/[^/]+?)(\.git)?/?$", url or "")
    return match.group(1) if match else None


def refusals(checkout, folder, state, pin):
    """Why pr/GROUP may not be pushed yet: the human's part of PR.md, and
    what the last `kbb pr` found."""
    text = (folder / "PR.md").read_text()
    group = state["group"]
    found = []
    unchecked = UNCHECKED.findall(text)
    if unchecked:
        found.append(
            f"PR.md has {len(unchecked)} unticked box(es), yours to tick: "
            + "; ".join(u.strip() for u in unchecked)
        )
    marks = MARK.findall(text)
    if marks:
        found.append(
            f"PR.md has {len(marks)} [kbb: ...] mark(s) left to fill in or remove"
        )
    if (folder / "PR.new.md").exists():
        found.append("merge PR.new.md, a newer rendering, into PR.md, delete it")
    if state.get("problems"):
        found.append(f"`kbb pr` found: {'; '.join(state['problems'])}")
    if state["base_kind"] != "upstream":
        found.append(
            f"pr/{group} is based on {state['based_on']}: `kbb pr {pin.target} "
            "--newest-git` (network) bases it on upstream's default branch"
        )
    if rev(checkout, f"refs/heads/pr/{group}") != state["commit"]:
        found.append(f"pr/{group} changed since PR.md was rendered: rerun `kbb pr`")
    return found + _authorship(checkout, state, group)


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


def _ready(ws, pin, checkout, groups):
    ready = []
    for group in groups:
        folder = ws.pr_out(pin.target, group)
        state = load_state(folder)
        if "commit" not in state or not (folder / "PR.md").is_file():
            raise KbbError(
                f"no {ws.shown(folder)}/PR.md: run `kbb pr {pin.target}` first; "
                "nothing was pushed"
            )
        found = refusals(checkout, folder, state, pin)
        if found:
            raise KbbError(
                f"{ws.shown(folder)}: {'; '.join(found)}; nothing was pushed"
            )
        ready.append((group, folder, state))
    return ready


def push(ws, pin, remote, groups=None):
    checkout = ws.checkout(pin.target)
    series = Series.load(ws.patches(pin.series))
    ready = _ready(ws, pin, checkout, groups or series.groups)
    url = (
        git("remote", "get-url", remote, cwd=checkout, check=False).stdout.strip()
        or remote
    )
    fork = (github(url) or "YOUR-GITHUB-USER/").split("/")[0]
    for group, folder, state in ready:
        result = git(
            "push",
            remote,
            f"{state['commit']}:refs/heads/pr/{group}",
            cwd=checkout,
            check=False,
            user_config=True,
        )
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
    (folder / "PR.body.md").write_text(body.lstrip("\n"))
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
