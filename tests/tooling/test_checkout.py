"""Fetch, apply, export and wheel against the synthetic upstream."""

import shutil

import pytest

from conftest import CORE
from conftest import FILES
from conftest import PROVENANCE
from conftest import make_sdist
from kbb import layout
from kbb.series import provenance_missing


def test_fetch_sdist_makes_a_tagged_pristine_commit(toy):
    out, err = toy.kbb("fetch", "toy")
    assert out.strip() == str(toy.checkout)
    assert "downloading the toypkg==1.0 sdist with pip" in err
    assert toy.git("rev-parse", "pristine") == toy.git("rev-parse", "pristine-1.0")
    assert toy.git("rev-list", "--count", "pristine") == "1"
    assert (toy.checkout / "toypkg" / "core.py").read_text().startswith("def f0")
    assert toy.git("status", "--porcelain") == ""


def test_fetch_is_cached(toy):
    toy.kbb("fetch", "toy")
    pristine = toy.git("rev-parse", "pristine")
    shutil.rmtree(toy.index)  # no index any more: nothing can be downloaded
    _, err = toy.kbb("fetch", "toy")
    assert "downloading" not in err
    shutil.rmtree(toy.checkout)  # the download cache alone is enough
    _, err = toy.kbb("fetch", "toy")
    assert "downloading" not in err
    # The same sdist gives the same pristine commit.
    assert toy.git("rev-parse", "pristine") == pristine


def test_fetch_hash_mismatch_discards_the_download(toy):
    toy.write_pins(sha256="0" * 64)
    _, err = toy.kbb("fetch", "toy", expect=2)
    assert "sha256 mismatch for toypkg-1.0.tar.gz" in err
    assert "it was discarded" in err
    assert [line for line in err.splitlines() if "error" in line] == [
        err.splitlines()[-1]
    ]
    assert not toy.checkout.exists()
    assert list((toy.root / ".upstream" / "downloads").iterdir()) == []
    assert toy.leftovers() == []


def test_fetch_without_network_and_cache(toy):
    shutil.rmtree(toy.index)
    toy.index.mkdir()
    _, err = toy.kbb("fetch", "toy", expect=2)
    assert "cannot download toypkg==1.0 with pip, and no verified copy" in err
    assert [line for line in err.splitlines() if "error" in line] == [
        err.splitlines()[-1]
    ]
    assert not toy.checkout.exists()
    assert toy.leftovers() == []


def test_unknown_target(toy):
    _, err = toy.kbb("fetch", "nope", expect=2)
    assert err.strip() == "kbb: error: unknown target 'nope': pins.toml pins toy"


def test_bad_pin_is_reported(toy):
    toy.write_pins(commit="abc")
    _, err = toy.kbb("fetch", "toy", expect=2)
    assert "git-commit is not 40 hex digits" in err


def test_fetch_git_source(toy):
    toy.kbb("fetch", "toy", "--source", "git")
    assert toy.git("rev-parse", "pristine") == toy.commit
    assert toy.git("config", "kbb.source") == "git"
    # Asking for the other source needs a clean first.
    _, err = toy.kbb("fetch", "toy", "--source", "sdist", expect=2)
    assert "made from the git source" in err


def test_fetch_git_source_checks_the_pinned_commit(toy):
    toy.write_pins(commit="1" * 40)
    _, err = toy.kbb("fetch", "toy", "--source", "git", expect=2)
    assert f"v1.0 at {toy.url} is commit {toy.commit}" in err
    assert not toy.checkout.exists()
    assert toy.leftovers() == []


def test_fetch_git_source_unreachable(toy):
    toy.write_pins(url=(toy.tmp / "missing.git").as_uri())
    _, err = toy.kbb("fetch", "toy", "--source", "git", expect=2)
    assert "cannot fetch v1.0 from" in err
    assert not toy.checkout.exists()


def test_export_writes_the_series(toy_series):
    toy = toy_series
    series = (toy.patches / "series").read_text().splitlines()
    assert series == [
        "# toy series",
        "fix/0001-Change-f3.patch",
        "fix/0002-Change-f9.patch",
    ]
    patch = (toy.patches / "fix" / "0001-Change-f3.patch").read_text()
    assert patch.startswith("From 0000000000000000000000000000000000000000 ")
    assert "-    return x + 3\n+    return x + 30\n" in patch
    assert provenance_missing(patch) == []


@pytest.mark.parametrize("source", ["sdist", "git"])
def test_apply_then_export_changes_no_byte(toy, source):
    toy.kbb("fetch", "toy", "--source", source)
    toy.git("checkout", "-q", "-b", "series", "pristine")
    toy.commit_edit("toypkg/core.py", "x + 5\n", "x + 50\n", "Change f5" + PROVENANCE)
    toy.kbb("export", "toy", "--new-group", "fix")
    before = toy.snapshot()
    toy.kbb("apply", "toy")
    first = toy.git("rev-parse", "series")
    toy.kbb("export", "toy")
    assert toy.snapshot() == before
    # Applying again gives the same commits: the ids are deterministic.
    toy.kbb("apply", "toy")
    assert toy.git("rev-parse", "series") == first
    assert toy.git("rev-parse", "group/fix") == first


def test_edit_in_checkout_round_trips(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    # A contributor amends the second patch and adds a third.
    toy.commit_edit("toypkg/core.py", "x + 90\n", "x + 99\n", "Tweak f9" + PROVENANCE)
    toy.git("reset", "-q", "--soft", "HEAD~2")
    toy.git("commit", "-q", "-m", "Change f9" + PROVENANCE)
    toy.commit_edit(
        "toypkg/core.py", "x + 11\n", "x + 110\n", "Change f11" + PROVENANCE
    )
    out, _ = toy.kbb("export", "toy")
    assert out.split() == [
        "patches/toy/fix/0001-Change-f3.patch",
        "patches/toy/fix/0002-Change-f9.patch",
        "patches/toy/fix/0003-Change-f11.patch",
    ]
    assert (
        "+    return x + 99\n" in (toy.patches / "fix/0002-Change-f9.patch").read_text()
    )
    before = toy.snapshot()
    toy.kbb("clean", "toy")
    toy.kbb("apply", "toy")
    assert "return x + 110" in (toy.checkout / "toypkg/core.py").read_text()
    toy.kbb("export", "toy")
    assert toy.snapshot() == before


def test_apply_refuses_to_discard_unexported_work(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 1\n", "x + 1000\n", "Change f1" + PROVENANCE)
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "has 1 commit(s) that are not in patches/toy/" in err
    _, err = toy.kbb("clean", "toy", expect=2)
    assert "has 1 commit(s) that are not in patches/toy/" in err
    toy.kbb("apply", "toy", "--force")
    assert "x + 1000" not in (toy.checkout / "toypkg/core.py").read_text()


def test_apply_refuses_a_dirty_checkout(toy_series):
    toy = toy_series
    (toy.checkout / "toypkg" / "core.py").write_text("edited\n")
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "has uncommitted changes" in err


def test_conflict_names_patch_file_and_hunk(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    patched = toy.git("rev-parse", "series")
    # Break the second patch's context, as a new upstream release would.
    toy.break_context()
    _, err = toy.kbb("apply", "toy", "--force", expect=2)
    assert (
        "fix/0002-Change-f9.patch does not apply to toypkg==1.0: "
        "toypkg/core.py, hunk 1 of 1 (@@ -35,7 +35,7 @@)"
    ) in err
    assert "the checkout is back on branch series, as it was" in err
    # Nothing half-done: clean, back on series, old branches kept.
    assert toy.git("status", "--porcelain") == ""
    assert toy.git("rev-parse", "HEAD") == patched
    assert toy.git("rev-parse", "series") == patched
    assert not (toy.checkout / ".git" / "rebase-apply").exists()


def test_export_requires_provenance_headers(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    before = toy.snapshot()
    toy.commit_edit("toypkg/core.py", "x + 2\n", "x + 20\n", "Change f2\n\nNo headers.")
    _, err = toy.kbb("export", "toy", expect=2)
    assert "0003-Change-f2.patch lacks the provenance header(s) Bug:, Origin:" in err
    assert toy.snapshot() == before


def test_check_reports_missing_headers(toy_series):
    toy = toy_series
    toy.kbb("check", "toy")
    path = toy.patches / "fix" / "0001-Change-f3.patch"
    path.write_text(path.read_text().replace("Forwarded: no\n", ""))
    _, err = toy.kbb("check", "toy", expect=2)
    assert "fix/0001-Change-f3.patch: lacks Forwarded:" in err


def test_new_group_stacks_on_the_last(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 7\n", "x + 70\n", "Change f7" + PROVENANCE)
    toy.kbb("export", "toy", "--new-group", "more")
    assert (toy.patches / "series").read_text().splitlines()[1:] == [
        "fix/0001-Change-f3.patch",
        "fix/0002-Change-f9.patch",
        "more/0001-Change-f7.patch",
    ]
    before = toy.snapshot()
    toy.kbb("apply", "toy")
    assert toy.git("rev-list", "--count", "pristine..group/fix") == "2"
    assert toy.git("rev-list", "--count", "group/fix..group/more") == "1"
    assert toy.git("rev-parse", "group/more") == toy.git("rev-parse", "series")
    toy.kbb("export", "toy")
    assert toy.snapshot() == before


def test_series_errors(toy_series):
    toy = toy_series
    series = toy.patches / "series"
    series.write_text("fix/0001-Change-f3.patch only=pypi\n")
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "has only=pypi, which is neither a source nor a target" in err
    series.write_text("fix/missing.patch\n")
    _, err = toy.kbb("apply", "toy", expect=2)
    assert "missing.patch does not exist" in err


def test_only_git_patches_are_skipped_on_sdist_and_kept(toy_series):
    toy = toy_series
    series = toy.patches / "series"
    series.write_text(
        series.read_text().replace(
            "0002-Change-f9.patch", "0002-Change-f9.patch only=git"
        )
    )
    before = toy.snapshot()
    _, err = toy.kbb("apply", "toy")
    assert "skipping fix/0002-Change-f9.patch (only=git; this is toy, sdist)" in err
    assert "x + 90" not in (toy.checkout / "toypkg/core.py").read_text()
    toy.kbb("export", "toy")
    assert toy.snapshot() == before


def test_only_git_patches_keep_their_marker_on_a_git_export(toy_series):
    toy = toy_series
    series = toy.patches / "series"
    series.write_text(
        series.read_text().replace(
            "0002-Change-f9.patch", "0002-Change-f9.patch only=git"
        )
    )
    before = toy.snapshot()
    toy.kbb("clean", "toy")
    toy.kbb("fetch", "toy", "--source", "git")
    toy.kbb("apply", "toy")
    assert "x + 90" in (toy.checkout / "toypkg/core.py").read_text()
    toy.kbb("export", "toy")
    assert toy.snapshot() == before


def test_wheel_versions(toy_series, tmp_path):
    toy = toy_series
    out, _ = toy.kbb("wheel", "toy", "--output", str(tmp_path / "dist"))
    assert out.strip().endswith("dist/toypkg-1.0+bessel1-py3-none-any.whl")
    out, _ = toy.kbb("wheel", "toy", "--ref", "pristine")
    assert out.strip().endswith("toypkg-1.0-py3-none-any.whl")
    # Built once per commit; the checkout is untouched.
    _, err = toy.kbb("wheel", "toy")
    assert "building" not in err
    assert toy.git("status", "--porcelain") == ""


def test_wheel_of_an_unbuildable_layout_is_a_clear_error(toy_series, monkeypatch):
    toy = toy_series
    monkeypatch.setitem(layout.NO_WHEEL, "toy-git", "no setup here")
    toy.write_pins(extra={"git_layout": "toy-git", "series_layout": "toy-git"})
    toy.kbb("clean", "toy")
    toy.kbb("fetch", "toy", "--source", "git")
    _, err = toy.kbb("wheel", "toy", "--ref", "pristine", expect=2)
    assert err.splitlines()[-1] == (
        f"kbb: error: cannot build a wheel from {toy.checkout}, a git checkout: "
        "no setup here; build it from the sdist (`kbb clean toy`, then "
        "`kbb wheel toy`)"
    )


def test_wheel_applies_an_edited_series(toy_series):
    toy = toy_series
    toy.kbb("wheel", "toy")
    first = toy.git("rev-parse", "series")
    path = toy.patches / "fix" / "0002-Change-f9.patch"
    path.write_text(path.read_text().replace("x + 90", "x + 91"))
    _, err = toy.kbb("wheel", "toy")
    assert "applied 2 patches" in err
    assert toy.git("rev-parse", "series") != first


# Layout translation, with a toy pair of layouts: the "flat" series names
# files toypkg/..., the "nested" checkout src/toypkg/..., and its
# README.sdist has no counterpart.


class NestedToFlat:
    def to_series(self, path, data):
        if not path.startswith("src/"):
            return None
        return path[4:], data.replace(b"NESTED", b"FLAT")

    def to_checkout(self, path, data):
        return "src/" + path, data.replace(b"FLAT", b"NESTED")


def test_translated_layout_round_trips(toy, monkeypatch):
    monkeypatch.setitem(layout.TRANSLATORS, ("toy-nested", "toy-flat"), NestedToFlat)
    files = {
        ("src/" + name if name.startswith("toypkg/") else name): text
        for name, text in FILES.items()
    }
    files["src/toypkg/core.py"] = CORE.replace("return x", "return NESTED + x")
    files["README.sdist"] = "sdist only\n"
    files["toypkg/version.py"] = FILES["toypkg/version.py"]  # for the backend
    toy.sha256 = make_sdist(toy.index / "toypkg-1.0.tar.gz", files)
    toy.write_pins(extra={"sdist_layout": "toy-nested", "series_layout": "toy-flat"})
    toy.kbb("fetch", "toy")
    toy.git("checkout", "-q", "-b", "series", "pristine")
    toy.commit_edit(
        "src/toypkg/core.py",
        "NESTED + x + 4\n",
        "NESTED + x + 40\n",
        "Change f4" + PROVENANCE,
    )
    toy.kbb("export", "toy", "--new-group", "fix")
    patch = (toy.patches / "fix" / "0001-Change-f4.patch").read_text()
    # The series is in the flat layout, with translated content.
    assert "diff --git a/toypkg/core.py b/toypkg/core.py" in patch
    assert "+    return FLAT + x + 40\n" in patch
    before = toy.snapshot()
    toy.kbb("apply", "toy")
    core = (toy.checkout / "src/toypkg/core.py").read_text()
    assert "return NESTED + x + 40\n" in core
    assert (toy.checkout / "README.sdist").exists()
    toy.kbb("export", "toy")
    assert toy.snapshot() == before
    # A commit touching a file without counterpart cannot be exported.
    toy.commit_edit("README.sdist", "only", "ONLY", "Edit readme" + PROVENANCE)
    _, err = toy.kbb("export", "toy", expect=2)
    assert "changes README.sdist, which has no counterpart" in err
    assert toy.snapshot() == before


def test_wheel_version_names_the_stacked_groups(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 7\n", "x + 70\n", "Change f7" + PROVENANCE)
    toy.kbb("export", "toy", "--new-group", "more")
    out, _ = toy.kbb("wheel", "toy", "--ref", "group/fix")
    assert out.strip().endswith("toypkg-1.0+bessel1-py3-none-any.whl")
    out, _ = toy.kbb("wheel", "toy", "--ref", "series")
    assert out.strip().endswith("toypkg-1.0+bessel1.more-py3-none-any.whl")
    # A commit on a group that is no group's tip is labelled with its id,
    # never with a group it is not.
    toy.git("checkout", "-q", "--detach", "group/fix")
    toy.commit_edit("toypkg/core.py", "x + 1\n", "x + 10\n", "Mutant" + PROVENANCE)
    commit = toy.git("rev-parse", "HEAD")
    out, _ = toy.kbb("wheel", "toy", "--ref", commit)
    assert out.strip().endswith(f"toypkg-1.0+bessel1.g{commit[:12]}-py3-none-any.whl")


def test_wheel_version_skips_a_group_of_test_files_only(toy):
    toy.kbb("fetch", "toy")
    toy.git("checkout", "-q", "-b", "series", "pristine")
    (toy.checkout / "toypkg" / "core_test.py").write_text("def test_f():\n    pass\n")
    toy.git("add", "toypkg/core_test.py")
    toy.git("commit", "-q", "-m", "Add a test" + PROVENANCE)
    toy.kbb("export", "toy", "--new-group", "tests")
    toy.commit_edit("toypkg/core.py", "x + 5\n", "x + 50\n", "Change f5" + PROVENANCE)
    toy.kbb("export", "toy", "--new-group", "fix")
    out, _ = toy.kbb("wheel", "toy", "--ref", "group/tests")
    assert out.strip().endswith("toypkg-1.0+tests-py3-none-any.whl")
    out, _ = toy.kbb("wheel", "toy", "--ref", "group/fix")
    assert out.strip().endswith("toypkg-1.0+bessel1-py3-none-any.whl")


def test_a_group_ref_needs_only_the_groups_up_to_it(toy_series):
    # A newer upstream where the last group does not apply yet: the builds
    # of the groups before it still work, and nothing is exported from them.
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 7\n", "x + 70\n", "Change f7" + PROVENANCE)
    toy.kbb("export", "toy", "--new-group", "more")
    path = toy.patches / "more" / "0001-Change-f7.patch"
    path.write_text(path.read_text().replace(" def f7(x):", " def f7(y):"))
    toy.kbb("wheel", "toy", "--ref", "series", expect=2)
    out, err = toy.kbb("wheel", "toy", "--ref", "group/fix")
    assert "applying the groups up to fix only, as group/fix needs" in err
    assert out.strip().endswith("toypkg-1.0+bessel1-py3-none-any.whl")
    assert toy.git("branch", "--list", "group/more") == ""
    _, err = toy.kbb("wheel", "toy", "--ref", "group/fix")
    assert "applying" not in err  # current for group/fix
    _, err = toy.kbb("export", "toy", expect=2)
    assert "has the groups up to fix only" in err
    _, err = toy.kbb("wheel", "toy", "--ref", "group/more", expect=2)
    assert "more/0001-Change-f7.patch does not apply" in err
