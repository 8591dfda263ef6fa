"""`kbb mutants`' own steps that need no ML framework: the mutants of
tests/mutants/ load, and each is committed on group/bessel by a fixed
identity, in a temporary index (kbb.mutants)."""

from conftest import ROOT
from conftest import make_git_repo
from conftest import run_git
from kbb import mutants
from kbb.workspace import Workspace

PATCH = """\
--- a/toypkg/version.py
+++ b/toypkg/version.py
@@ -1 +1 @@
-__version__ = "1.0"
+__version__ = "1.0.mutant"
"""


def test_every_mutant_of_the_workspace_loads():
    ws = Workspace.find(ROOT)
    for target in mutants.TARGETS.values():
        found = mutants.load_mutants(ws, target, [])
        assert found, target.name
        for mutant in found:
            assert mutant.patch.is_file() and mutant.summary and mutant.backends


def test_a_mutant_is_committed_on_group_bessel_by_a_fixed_identity(tmp_path):
    repo = tmp_path / "repo"
    base = make_git_repo(repo)
    run_git("branch", "group/bessel", cwd=repo)
    (tmp_path / "01-version.patch").write_text(PATCH)
    mutant = mutants.Mutant(
        "toy", "01-version", "a wrong version", ["torch"], tmp_path / "01-version.patch"
    )
    sha = mutants.commit(repo, mutant)
    assert run_git("rev-parse", "refs/kbb/mutants/01-version", cwd=repo) == sha
    assert run_git("rev-parse", f"{sha}^", cwd=repo) == base
    author = run_git("log", "-1", "--format=%an <%ae> %ad", "--date=iso", sha, cwd=repo)
    assert author == "kbb mutants <mutants@kbb.invalid> 2026-01-01 00:00:00 +0000"
    shown = run_git("show", f"{sha}:toypkg/version.py", cwd=repo)
    assert shown == '__version__ = "1.0.mutant"'
    # The checkout's branch, index and files stay as they were.
    assert run_git("rev-parse", "HEAD", cwd=repo) == base
    assert run_git("status", "--porcelain", cwd=repo) == ""
    # The same patch on the same base: the same commit (its wheel cached).
    assert mutants.commit(repo, mutant) == sha
