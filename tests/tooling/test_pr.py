"""`kbb pr` against the synthetic upstream: the checks of the series against
the pinned release and a newest upstream, upstream's lint, the rendered
ISSUE.md and PR.md, branch pr/GROUP, the pushing refusals, and the pre-commit
check `kbb check --applies`."""

import json
import os
import shutil
import subprocess
from importlib import metadata

import pytest
from packaging.version import Version

from conftest import FILES
from conftest import PROVENANCE
from conftest import run_git
from kbb import results
from kbb.pr import push
from kbb.pr import texts
from kbb.series import strip_provenance
from kbb.workspace import Workspace

PR_TOML = """\
[lint]
requires = ["ruff"]
commands = [["ruff", "check", "--no-cache", "--config", "pyproject.toml", "{files}"]]

[results]
implementation = "toy"
version-key = "toypkg"
envs = ["pristine", "patched"]

[tables]
frameworks = ["docs/analysis.md", "comparison"]

[texts]
pr-body-lines = 40
"""

ISSUE = "# Toy issue\n\n$issue_numbers\n"
PR = """\
# $title

$stack$commits

$files

$numbers

$frameworks

$tests

[kbb: fill in the disclosure]

- [ ] I am a human, and not a bot.
"""


def configure(toy, tmp_path, monkeypatch):
    """pr/toy/ for the toy workspace; the user has a git identity."""
    folder = toy.root / "pr" / "toy"
    folder.mkdir(parents=True)
    (folder / "pr.toml").write_text(PR_TOML)
    (folder / "ISSUE.md").write_text(ISSUE)
    (folder / "PR.md").write_text(PR)
    identity = tmp_path / "gitconfig"
    identity.write_text("[user]\n\tname = A Human\n\temail = human@example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(identity))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("KBB_RESULTS", raising=False)


@pytest.fixture
def toy_pr(toy_series, tmp_path, monkeypatch):
    configure(toy_series, tmp_path, monkeypatch)
    return toy_series


def out(toy, name):
    return toy.root / "out" / "pr" / "toy" / "fix" / name


def test_pr_renders_the_texts_and_the_branch(toy_pr):
    toy = toy_pr
    toy.kbb("apply", "toy")
    before = toy.git("rev-parse", "HEAD")
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    assert "fix/0001-Change-f3.patch: applies" in stdout
    assert (
        "newest  not checked: no newest upstream pinned (pins.toml [toy] has no "
        "newest); use --newest-git with network"
    ) in stdout
    assert "lint    ruff " in stdout and "on 1 file(s): clean" in stdout
    assert "on the toypkg==1.0 sdist commit, not an upstream commit" in stdout
    assert "not pushable" in stdout and "--newest-git" in stdout
    text = out(toy, "PR.md").read_text()
    assert text.startswith("# Change f9\n")
    assert "### Change f3\n" in text and "- `toypkg/core.py`: +2 -2" in text
    # The branch: the series on the pinned base, with the user as author,
    # without the workspace's headers; the checkout is untouched.
    assert toy.git("rev-list", "--count", "pristine..pr/fix") == "2"
    log = toy.git("log", "--format=%an <%ae>%n%B", "pristine..pr/fix")
    assert "A Human <human@example.org>" in log and "Bug:" not in log
    assert toy.git("diff", "series", "pr/fix") == ""
    assert toy.git("rev-parse", "HEAD") == before
    assert toy.git("status", "--porcelain") == ""
    assert len(toy.git("worktree", "list").splitlines()) == 1
    assert toy.leftovers() == []


def figure(version):
    return {
        "implementation": "toy",
        "toypkg": version,
        "backend": "numpy",
        "scenario": "convergence",
        "n": 2,
        "converged": 0.5 if version == "1.0" else 1.0,
        "expected": 0.5 if version == "1.0" else 1.0,
    }


def test_pr_marks_missing_and_stale_results(toy_pr):
    toy = toy_pr
    toy.write_results("pristine", [figure("1.0")], "pristine")
    toy.write_results("patched", [figure("1.0+bessel1")], "group/fix")
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    text = out(toy, "PR.md").read_text()
    assert "| n | (n - 1) / n | numpy, toypkg 1.0 | numpy, toypkg 1.0+bessel1 |" in text
    assert "| 2 | 0.5000 | 0.5000 | 1.0000 |" in text  # n, (n - 1) / n, before, after
    assert "[kbb: missing] docs/analysis.md" in text
    assert "kbb: stale" not in text
    # The patches change: the patched result is stale, the pristine one not.
    path = toy.patches / "fix" / "0002-Change-f9.patch"
    path.write_text(path.read_text().replace("x + 90", "x + 91"))
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    text = out(toy, "PR.md").read_text()
    assert (
        "**[kbb: stale] out/results/patched.json measured 1.0+bessel1, built from "
        "another patches/toy/ than now: rerun `tox -e patched`**"
    ) in text
    assert "  patched   stale: out/results/patched.json measured" in stdout
    assert "| 2 | 0.5000 | 0.5000 |" in text
    # A result of another pin is stale; a missing one is marked.
    toy.write_pins(url="https://example.org/elsewhere.git")
    (toy.root / "out" / "results" / "patched.json").unlink()
    toy.kbb("pr", "toy", "--offline")
    text = out(toy, "ISSUE.md").read_text()
    assert (
        "[kbb: stale] out/results/pristine.json measured 1.0, built from another "
        "pins.toml [toy] than now" in text
    )
    assert "[kbb: missing] out/results/patched.json: run `tox -e patched`" in text
    assert "0.5000" not in text


def test_results_of_unexported_commits_are_stale(toy_pr):
    toy = toy_pr
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 1\n", "x + 10\n", "Change f1" + PROVENANCE)
    toy.write_results("patched", [figure("1.0+bessel1")], "series")
    toy.kbb("pr", "toy", "--offline")
    assert (
        "a build with commits not exported to patches/toy/"
        in out(toy, "PR.md").read_text()
    )


def test_pr_shows_a_row_per_implementation(toy_pr):
    # tf-keras: two implementations of one layer, measured in each env.
    toy = toy_pr
    toml = toy.root / "pr" / "toy" / "pr.toml"
    toml.write_text(
        toml.read_text().replace(
            'implementation = "toy"\n',
            'implementation = ["toy-fused", "toy-plain"]\n'
            'labels = { "toy-fused" = "fused" }\n',
        )
    )
    results = toy.root / "out" / "results"
    results.mkdir(parents=True)

    def figure(implementation, version, n, converged):
        return {
            "implementation": implementation,
            "toypkg": version,
            "backend": "numpy",
            "scenario": "convergence",
            "n": n,
            "converged": converged,
        }

    issue = {
        "implementation": "toy-plain",
        "toypkg": "1.0",
        "backend": "numpy",
        "scenario": "issue-8982",
        "moving_variance": 0.46,
        "biased_reference": 0.46,
        "unbiased_reference": 0.92,
        "data_variance": 1.0,
    }
    upstream = [figure("toy-fused", "1.0", n, 1.0) for n in (2, 4)]
    upstream += [figure("toy-plain", "1.0", n, (n - 1) / n) for n in (2, 4)]
    upstream += [issue, dict(issue, implementation="other")]
    toy.write_results("pristine", upstream, "pristine")
    patched = [figure("toy-plain", "1.0+bessel1", n, 1.0) for n in (2, 4)]
    toy.write_results("patched", patched, "group/fix")
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    text = out(toy, "PR.md").read_text()
    assert (
        "| implementation | n | (n - 1) / n | numpy, toypkg 1.0 "
        "| numpy, toypkg 1.0+bessel1 |\n|---|---|---|---|---|\n"
        "| fused | 2 | 0.5000 | 1.0000 | n/a |\n"
        "| fused | 4 | 0.7500 | 1.0000 | n/a |\n"
        "| toy-plain | 2 | 0.5000 | 0.5000 | 1.0000 |\n"
        "| toy-plain | 4 | 0.7500 | 0.7500 | 1.0000 |\n"
    ) in text
    issue_text = out(toy, "ISSUE.md").read_text()
    assert (
        "| toypkg | backend | implementation | `moving_variance` | biased rule "
        "| unbiased rule | variance of the data |\n|---|---|---|---|---|---|---|\n"
        "| 1.0 | numpy | toy-plain | 0.4600 | 0.4600 | 0.9200 | 1.0000 |\n\n"
    ) in issue_text
    assert "1.0000 | n/a |" not in issue_text  # the pinned release only
    mark = "out/results/patched.json has no toy-fused result: run `tox -e patched`"
    assert f"[kbb: missing] {mark}" in text and f"patched   missing: {mark}" in stdout
    assert "pristine.json has no" not in text


def test_pr_describes_the_patches_an_sdist_checkout_skips(toy_pr):
    # tf-keras' tests patch (only=git) is not applied to the sdist checkout:
    # the texts still describe it, and the title is the change's.
    toy = toy_pr
    series = toy.patches / "series"
    series.write_text(
        series.read_text().replace(
            "0002-Change-f9.patch", "0002-Change-f9.patch only=git"
        )
    )
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    assert "fix/0002-Change-f9.patch: skipped (only=git)" in stdout
    text = out(toy, "PR.md").read_text()
    assert text.startswith("# Change f3\n")
    assert "### Change f3\n" in text and "### Change f9\n" in text
    assert "Bug:" not in text
    assert "- `toypkg/core.py`: +2 -2" in text  # both patches
    assert toy.git("rev-list", "--count", "pristine..pr/fix") == "1"


def test_pr_lints_on_the_newest_upstream_the_files_the_pinned_release_lacks(toy_pr):
    # tf-keras: its tests are in the repository only (an only=git patch);
    # with --newest-git, they are linted there.
    toy = toy_pr
    test = toy.repo / "toypkg" / "core_test.py"
    test.write_text("def test_f0():\n    pass\n")
    run_git("add", "-A", cwd=toy.repo)
    run_git("commit", "-qm", "Upstream adds a test", cwd=toy.repo)
    (toy.patches / "fix" / "0003-Test-f1.patch").write_text(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: A Human <human@example.org>\n"
        "Date: Thu, 26 Nov 2026 21:34:39 +0000\n"
        "Subject: [PATCH] Test f1\n"
        f"{PROVENANCE}---\n"
        "diff --git a/toypkg/core_test.py b/toypkg/core_test.py\n"
        "--- a/toypkg/core_test.py\n"
        "+++ b/toypkg/core_test.py\n"
        "@@ -1,2 +1,6 @@\n"
        " def test_f0():\n"
        "     pass\n"
        "+\n"
        "+\n"
        "+def test_f1():\n"
        "+    import os\n"
    )
    series = toy.patches / "series"
    series.write_text(series.read_text() + "fix/0003-Test-f1.patch only=git\n")
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    assert "fix/0003-Test-f1.patch: skipped (only=git)" in stdout
    assert "on 1 file(s): clean" in stdout
    assert "- `toypkg/core_test.py`: +4 -0" in out(toy, "PR.md").read_text()
    stdout, err = toy.kbb("pr", "toy", "--newest-git", expect=2)
    assert "fix/0003-Test-f1.patch: applies" in stdout
    assert (
        "on 2 file(s) (1 on the newest upstream: the pinned release lacks them): "
        "1 command(s) found issues"
    ) in stdout
    assert "F401" in stdout and "toypkg/core_test.py:6:12" in stdout
    assert "fix: upstream's lint found issues" in err


def test_tests_names_the_added_and_the_rewritten_tests():
    patch = """\
diff --git a/pkg/a_test.py b/pkg/a_test.py
--- a/pkg/a_test.py
+++ b/pkg/a_test.py
@@ -1,3 +1,6 @@
-def test_old(self):
+def test_old(self, rank):
     pass
+
+def test_new(self):
+    pass
@@ -9,1 +12,1 @@
-    x = 1
+    x = 2
"""
    assert texts.tests([patch]) == (
        "- `pkg/a_test.py`: adds `test_new`; rewrites `test_old`; changes "
        "existing tests in 1 place(s)"
    )


def test_pr_without_a_pinned_newest_is_not_a_failure_online(toy_pr):
    # tf-keras: no newest sdist pinned; pushing needs --newest-git.
    toy = toy_pr
    stdout, _ = toy.kbb("pr", "toy")
    assert "newest  not checked: no newest upstream pinned" in stdout
    state = json.loads(out(toy, "state.json").read_text())
    assert state["problems"] == []


def test_pr_of_several_targets_goes_on_after_one_fails(toy_pr):
    # `kbb pr keras tf-keras`: each target is prepared; the exit status says
    # that one was not ready.
    toy = toy_pr
    pins = toy.root / "pins.toml"
    text = pins.read_text()
    pins.write_text(text.replace("[toy]", "[broken]") + "\n" + text)
    (toy.root / "patches" / "broken").mkdir()
    _, err = toy.kbb("pr", "broken", "toy", "--offline", expect=2)
    assert "kbb: error: no pr/broken/pr.toml" in err
    assert out(toy, "PR.md").read_text().startswith("# Change f9\n")


def test_pr_names_the_conflicting_patch_file_and_hunk_of_the_newest_upstream(toy_pr):
    toy = toy_pr
    # Group "more": one patch with two hunks, in f1 and in f11.
    toy.kbb("apply", "toy")
    core = toy.checkout / "toypkg" / "core.py"
    text = core.read_text().replace("x + 1\n", "x + 100\n")
    core.write_text(text.replace("x + 11\n", "x + 110\n"))
    toy.git("commit", "-qam", "Change f1 and f11" + PROVENANCE)
    toy.kbb("export", "toy", "--new-group", "more")
    # The newest upstream changed f11 too.
    edited = toy.repo / "toypkg" / "core.py"
    edited.write_text(edited.read_text().replace("x + 11\n", "x + 11 + 0\n"))
    run_git("commit", "-qam", "Upstream changes f11", cwd=toy.repo)
    before = toy.snapshot()
    stdout, err = toy.kbb("pr", "toy", "--newest-git", expect=2)
    assert f"newest  main of {toy.url} (" in stdout
    assert "fix/0002-Change-f9.patch: applies" in stdout
    assert (
        "more/0001-Change-f1-and-f11.patch: DOES NOT APPLY: "
        "toypkg/core.py, hunk 2 of 2 (@@ -43,6 +43,6 @@)"
    ) in stdout
    assert err.strip().endswith(
        "toy is not ready for upstream: more: the series does not apply to the "
        "newest upstream"
    )
    # Group fix applies there: its branch is based on upstream's commit.
    upstream = run_git("rev-parse", "main", cwd=toy.repo)
    assert toy.git("rev-parse", "pr/fix~2") == upstream
    assert toy.git("rev-parse", "pr/more~3") == toy.git("rev-parse", "pristine")
    assert toy.snapshot() == before
    assert toy.git("status", "--porcelain") == ""
    assert len(toy.git("worktree", "list").splitlines()) == 1


def test_pr_checks_the_pinned_newest_sdist_without_its_missing_tests(
    toy, monkeypatch, tmp_path
):
    files = dict(FILES, **{"toypkg/core_test.py": "def test_f0():\n    pass\n"})
    toy.make_release(files)
    toy.add_nightly()
    toy.kbb("fetch", "toy")
    toy.git("checkout", "-q", "-b", "series", "pristine")
    toy.commit_edit("toypkg/core.py", "x + 3\n", "x + 30\n", "Change f3" + PROVENANCE)
    test = toy.checkout / "toypkg" / "core_test.py"
    test.write_text(test.read_text() + "\n\ndef test_f1():\n    pass\n")
    toy.git("commit", "-qam", "Test f1" + PROVENANCE)
    toy.kbb("export", "toy", "--new-group", "fix")
    configure(toy, tmp_path, monkeypatch)
    stdout, _ = toy.kbb("pr", "toy")
    assert (
        "newest  toypkg-nightly==1.1.dev1, PyPI sdist (pins.toml [toy-nightly]):"
    ) in stdout
    assert "fix/0001-Change-f3.patch: applies" in stdout
    assert "fix/0002-Test-f1.patch: not checked: it changes only test files" in stdout
    assert (
        "1 test-file hunk(s) not checked: the toypkg-nightly sdist ships no "
        "tests (toypkg/core_test.py)"
    ) in stdout
    assert "is not the newest" not in stdout
    assert "- `toypkg/core_test.py`: adds `test_f1`" in out(toy, "PR.md").read_text()
    # A newer nightly on the index: said, not a failure; the pin is checked.
    toy.publish_nightly(version="1.1.dev2")
    stdout, _ = toy.kbb("pr", "toy")
    if Version(metadata.version("pip")) < Version("25.1"):  # no --json
        newer = "  not asked whether toypkg-nightly has a newer sdist: pip has no"
    else:
        newer = "  pins.toml's toy-nightly 1.1.dev1 is not the newest: 1.1.dev2;"
    assert newer in stdout
    assert "newest  toypkg-nightly==1.1.dev1, PyPI sdist" in stdout
    # Offline, from the sha256-checked cache, without asking the index.
    shutil.rmtree(toy.index)
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    assert "newest  toypkg-nightly==1.1.dev1, PyPI sdist" in stdout
    assert "fix/0001-Change-f3.patch: applies" in stdout
    assert "is not the newest" not in stdout


def test_a_lint_finding_fails_the_run(toy_pr):
    toy = toy_pr
    toy.kbb("apply", "toy")
    core = toy.checkout / "toypkg" / "core.py"
    core.write_text("import os\n" + core.read_text())
    toy.git("commit", "-qam", "Import os" + PROVENANCE)
    toy.kbb("export", "toy")
    stdout, err = toy.kbb("pr", "toy", "--offline", expect=2)
    assert "on 1 file(s): 1 command(s) found issues" in stdout
    assert "F401" in stdout and "toypkg/core.py:1:8" in stdout
    assert "fix: upstream's lint found issues" in err
    state = json.loads(out(toy, "state.json").read_text())
    assert state["problems"] == ["upstream's lint found issues"]


def test_lint_needs_the_pinned_tools(toy_pr):
    toy = toy_pr
    toml = toy.root / "pr" / "toy" / "pr.toml"
    toml.write_text(toml.read_text().replace('"ruff"]', '"ruff==0.0.1"]'))
    _, err = toy.kbb("pr", "toy", "--offline", expect=2)
    assert "pr/toy/pr.toml lints with ruff==0.0.1, but" in err
    assert "run `tox -e pr`" in err


def test_push_refuses_until_the_human_made_pr_md_ready(toy_pr, tmp_path, monkeypatch):
    toy = toy_pr
    monkeypatch.setattr(push.shutil, "which", lambda name: None)  # no gh
    fork = tmp_path / "fork.git"  # the user's fork of upstream
    subprocess.run(["git", "clone", "-q", "--bare", toy.url, str(fork)], check=True)
    _, err = toy.kbb("pr", "toy", "--push", fork.as_uri(), expect=2)
    assert "no out/pr/toy/fix/PR.md: run `kbb pr toy` first" in err
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)  # no identity
    toy.kbb("pr", "toy", "--offline")
    _, err = toy.kbb("pr", "toy", "--push", fork.as_uri(), expect=2)
    assert (
        "PR.md has 1 of the template's 1 box(es) not ticked as `- [x]`, yours to "
        "tick: I am a human, and not a bot."
    ) in err
    # The disclosure, the missing results and docs/analysis.md are marked.
    assert "PR.md has 4 [kbb: ...] mark(s) left" in err
    assert "sdist commit, not an upstream commit" in err
    assert "set git config user.name and user.email" in err
    assert err.strip().endswith("nothing was pushed")
    # The human ticks the box, fills in the disclosure, and decides to go
    # without the missing results.
    path = out(toy, "PR.md")
    text = path.read_text().replace("- [ ]", "- [x]")
    text = text.replace("[kbb: fill in the disclosure]", "Disclosed.")
    path.write_text(push.MARK.sub("", text))
    _, err = toy.kbb("pr", "toy", "--push", fork.as_uri(), expect=2)
    assert "unticked" not in err and "mark" not in err
    # Based on upstream's newest commit, with an identity: the edited PR.md
    # is kept, and the new rendering must be merged into it first.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    toy.write_pins(url="https://github.com/toy-org/toypkg")  # upstream's address
    stdout, _ = toy.kbb("pr", "toy", "--newest-git", toy.url)
    assert "PR.md has your edits, kept; the new rendering is PR.new.md" in stdout
    assert (
        path.read_text().startswith("# Change f9\n")
        and "Disclosed." in path.read_text()
    )
    _, err = toy.kbb("pr", "toy", "--push", fork.as_uri(), expect=2)
    assert err.strip().endswith(
        "merge PR.new.md, a newer rendering, into PR.md, delete it; nothing was pushed"
    )
    out(toy, "PR.new.md").unlink()
    stdout, _ = toy.kbb("pr", "toy", "--push", fork.as_uri())
    state = json.loads(out(toy, "state.json").read_text())
    pushed = run_git("rev-parse", "pr/fix", cwd=fork)
    assert pushed == state["commit"] == toy.git("rev-parse", "pr/fix")
    assert (
        run_git("log", "-1", "--format=%ae", "pr/fix", cwd=fork) == "human@example.org"
    )
    assert "gh is not installed: open the pull request with" in stdout
    assert (
        "gh pr create --repo toy-org/toypkg --base main --head "
        "YOUR-GITHUB-USER:pr/fix --title 'Change f9' --body-file "
    ) in stdout
    assert "github.com/toy-org/toypkg/compare/main...YOUR-GITHUB-USER:pr/fix" in stdout
    assert out(toy, "PR.body.md").read_text().startswith("### Change f3\n")


def ready_to_push(toy, tmp_path, monkeypatch):
    """The toy's PR.md made ready by the human, based on upstream's newest
    commit; returns the URL of the user's fork."""
    monkeypatch.setattr(push.shutil, "which", lambda name: None)  # no gh
    fork = tmp_path / "fork.git"
    subprocess.run(["git", "clone", "-q", "--bare", toy.url, str(fork)], check=True)
    toy.write_pins(url="https://github.com/toy-org/toypkg")
    toy.kbb("pr", "toy", "--newest-git", toy.url)
    path = out(toy, "PR.md")
    text = path.read_text().replace("- [ ]", "- [x]")
    path.write_text(push.MARK.sub("", text))
    return fork.as_uri()


@pytest.mark.parametrize(
    "box",
    [
        "",
        "- [] I am a human, and not a bot.",
        "+ [ ] I am a human, and not a bot.",
        "1. [ ] I am a human, and not a bot.",
        "- [x] I am a human",
    ],
)
def test_push_needs_every_box_of_the_template_ticked(
    toy_pr, tmp_path, monkeypatch, box
):
    toy = toy_pr
    fork = ready_to_push(toy, tmp_path, monkeypatch)
    path = out(toy, "PR.md")
    ticked = "- [x] I am a human, and not a bot."
    path.write_text(path.read_text().replace(ticked, box))
    _, err = toy.kbb("pr", "toy", "--push", fork, expect=2)
    assert "of the template's 1 box(es) not ticked as `- [x]`" in err
    assert "nothing was pushed" in err
    path.write_text(
        path.read_text().replace(box, ticked)
        if box
        else path.read_text() + ticked + "\n"
    )
    toy.kbb("pr", "toy", "--push", fork)


def test_push_does_not_trust_an_edited_state(toy_pr, tmp_path, monkeypatch):
    # A lint finding is a problem of the last `kbb pr`; clearing it from
    # state.json by hand does not make the branch pushable.
    toy = toy_pr
    toy.kbb("apply", "toy")
    core = toy.checkout / "toypkg" / "core.py"
    core.write_text("import os\n" + core.read_text())
    toy.git("commit", "-qam", "Import os" + PROVENANCE)
    toy.kbb("export", "toy")
    monkeypatch.setattr(push.shutil, "which", lambda name: None)
    fork = tmp_path / "fork.git"
    subprocess.run(["git", "clone", "-q", "--bare", toy.url, str(fork)], check=True)
    toy.write_pins(url="https://github.com/toy-org/toypkg")
    toy.kbb("pr", "toy", "--newest-git", toy.url, expect=2)
    path = out(toy, "PR.md")
    path.write_text(push.MARK.sub("", path.read_text().replace("- [ ]", "- [x]")))
    state_file = out(toy, "state.json")
    state = json.loads(state_file.read_text())
    assert state["problems"] == ["upstream's lint found issues"]
    _, err = toy.kbb("pr", "toy", "--push", fork.as_uri(), expect=2)
    assert "`kbb pr` found: upstream's lint found issues" in err
    state_file.write_text(json.dumps(dict(state, problems=[])))
    _, err = toy.kbb("pr", "toy", "--push", fork.as_uri(), expect=2)
    assert (
        "state.json was edited since `kbb pr toy` wrote it: rerun `kbb pr toy`" in err
    )
    assert run_git("branch", "--list", "pr/fix", cwd=fork) == ""


def test_push_refuses_an_old_branch_after_the_patches_changed(
    toy_pr, tmp_path, monkeypatch
):
    toy = toy_pr
    fork = ready_to_push(toy, tmp_path, monkeypatch)
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 1\n", "x + 10\n", "Change f1" + PROVENANCE)
    toy.kbb("export", "toy")
    _, err = toy.kbb("pr", "toy", "--push", fork, expect=2)
    assert "patches/toy/ changed since `kbb pr toy` made pr/fix: rerun" in err
    assert run_git("branch", "--list", "pr/fix", cwd=tmp_path / "fork.git") == ""


def test_check_applies_in_a_copy(toy_series):
    toy = toy_series
    shutil.rmtree(toy.checkout)
    stdout, _ = toy.kbb("check", "--applies")
    assert stdout.splitlines() == [
        "patches/toy: 2 patches, headers ok",
        "patches/toy: applies to toypkg==1.0",
    ]
    assert not toy.checkout.exists()
    toy.break_context()
    _, err = toy.kbb("check", "toy", "--applies", expect=2)
    assert "fix/0002-Change-f9.patch does not apply to toypkg==1.0: " in err
    assert "toypkg/core.py, hunk 1 of 1 (@@ -35,7 +35,7 @@)" in err
    # Nothing cached and no index: said, and not a failure.
    shutil.rmtree(toy.root / ".upstream" / "downloads")
    shutil.rmtree(toy.index)
    toy.index.mkdir()
    stdout, err = toy.kbb("check", "toy", "--applies")
    assert "not checked whether patches/toy/ applies: cannot download" in err
    assert stdout.strip() == "patches/toy: 2 patches, headers ok"


def test_strip_provenance():
    message = "Subject\n\nBody.\n\nBug: x\nOrigin: y\nForwarded: no\n"
    assert strip_provenance(message) == "Subject\n\nBody.\n"


def test_named_tables_are_found_by_name(toy_pr):
    # The texts take the table a placeholder names, never the first one; a
    # table of another name, or a stale document, is marked.
    toy = toy_pr
    docs = toy.root / "docs"
    docs.mkdir()
    analysis = docs / "analysis.md"
    analysis.write_text(
        "<!-- table: results-read -->\n| environment | figures |\n|---|---|\n"
        "| `patched` | 3 |\n\n<!-- table: comparison -->\n| implementation | "
        "n = 2 |\n|---|---|\n| Keras | 1.0000 |\n"
    )
    toy.kbb("pr", "toy", "--offline")
    text = out(toy, "PR.md").read_text()
    assert "**[kbb: stale] docs/analysis.md has no stamp of the series" in text
    ws = Workspace.find(toy.root)
    stamp = results.stamp_line(ws, ws.pin("toy"))
    analysis.write_text(analysis.read_text() + stamp + "\n")
    toy.kbb("pr", "toy", "--offline")
    text = out(toy, "PR.md").read_text()
    assert "| implementation | n = 2 |\n|---|---|\n| Keras | 1.0000 |" in text
    assert "| environment | figures |" not in text
    assert "docs/analysis.md" not in text  # nothing of the workspace
    analysis.write_text(analysis.read_text().replace("table: comparison", "table: x"))
    toy.kbb("pr", "toy", "--offline")
    text = out(toy, "PR.md").read_text()
    assert "[kbb: missing] docs/analysis.md has no table named comparison" in text


def test_reviewer_notes_and_the_body_length(toy_pr):
    toy = toy_pr
    template = toy.root / "pr" / "toy" / "PR.md"
    template.write_text(
        template.read_text().replace(
            "$stack", "<!-- Review every line: you are the author. -->\n$stack"
        )
    )
    stdout, _ = toy.kbb("pr", "toy", "--offline")
    text = out(toy, "PR.md").read_text()
    assert "<!--" not in text and "Review every line" not in text
    review = out(toy, "REVIEW.md").read_text()
    assert "Review every line: you are the author." in review
    assert (
        "  pristine  missing: out/results/pristine.json: run `tox -e pristine`"
        in review
    )
    assert "  pristine  missing: out/results/pristine.json" in stdout
    # pr.toml's pr-body-lines (40): a longer body is a problem.
    template.write_text(template.read_text() + "line\n" * 40)
    stdout, err = toy.kbb("pr", "toy", "--offline", expect=2)
    assert (
        "PR.md's body has " in stdout
        and "more than pr.toml's pr-body-lines (40)" in err
    )
    state = json.loads(out(toy, "state.json").read_text())
    assert any("pr-body-lines" in p for p in state["problems"])


def test_body_problems():
    text = "# Title\n\nSee [the analysis](docs/analysis.md).\n<!-- x -->\n"
    problems = texts.body_problems(text, 1)
    assert problems[0].startswith("PR.md has an HTML comment")
    assert problems[1] == "PR.md links to the workspace's files: ](docs/analysis.md)"
    assert problems[2].startswith("PR.md's body has 2 lines")
    upstream_link = "# T\n\n[policy](../CONTRIBUTING.md#ai) [x](https://a.org/docs/b)\n"
    assert texts.body_problems(upstream_link, 60) == []


def test_pr_names_a_changed_module_the_newest_upstream_no_longer_imports(toy_pr):
    # Upstream moved core.py to impl.py and left the old copy behind: the
    # series still applies there, to a module that does not run.
    toy = toy_pr
    toy.kbb("apply", "toy")
    core = toy.repo / "toypkg" / "core.py"
    (toy.repo / "toypkg" / "impl.py").write_text(core.read_text())
    (toy.repo / "toypkg" / "__init__.py").write_text(
        "from toypkg.impl import *  # noqa\n"
    )
    run_git("add", "-A", cwd=toy.repo)
    run_git("commit", "-qm", "Move core to impl", cwd=toy.repo)
    stdout, err = toy.kbb("pr", "toy", "--newest-git", expect=2)
    assert "  live: every changed module is imported (layout same)" in stdout
    assert "  DEAD: toypkg/core.py is not imported by the package" in stdout
    assert "  tests: no environment runs the regression tests on this base" in stdout
    assert "fix: the group changes modules that do not run on the newest base" in err
