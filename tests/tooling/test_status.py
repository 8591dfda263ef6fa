"""`kbb status` on the toy workspace: read-only, with or without checkout,
results and pull requests; and `kbb check --json`, `kbb pr --json`."""

import json

from test_pr import configure

from conftest import PROVENANCE
from kbb import results
from kbb.workspace import Workspace


def status(toy, *args, expect=0):
    out, _ = toy.kbb("status", *args, expect=expect)
    return json.loads(out) if "--json" in args else out


def test_status_of_a_fresh_workspace_writes_nothing(toy):
    before = sorted(p.relative_to(toy.root) for p in toy.root.rglob("*"))
    out = status(toy)
    assert out.splitlines()[1:] == [
        "toy: toypkg==1.0, patches/toy/ (groups: none)",
        "  checkout     none",
    ]
    assert sorted(p.relative_to(toy.root) for p in toy.root.rglob("*")) == before
    (toy.root / "pins.toml").write_text("[toy]\nproject = 1\n")
    _, err = toy.kbb("status", expect=2)
    assert err.startswith("kbb: error: ") and "pins.toml: [toy]" in err


def test_status_after_apply(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    found = status(toy, "--json")["targets"]["toy"]
    checkout = found["checkout"]
    assert found["groups"] == ["fix"] and found["series_problem"] is None
    assert checkout["head"] == "series" and checkout["applied"] == "the series applied"
    assert checkout["source"] == "sdist" and checkout["pinned"]
    assert checkout["made_from"] == toy.sha256 == checkout["config"]["kbb.pin"]
    assert sorted(checkout["config"]) == [
        "kbb.omitted",
        "kbb.pin",
        "kbb.series",
        "kbb.source",
        "kbb.target",
        "kbb.upto",
    ]
    assert checkout["refs"] == {"applied": 1}
    assert checkout["unexported"] == {} and checkout["uncommitted"] == 0
    out = status(toy)
    assert "  head         series; the series applied\n" in out
    assert "  refs/kbb/    applied 1\n" in out


def test_status_names_unexported_commits_and_backups(toy_series):
    toy = toy_series
    toy.kbb("apply", "toy")
    toy.commit_edit("toypkg/core.py", "x + 2\n", "x + 20\n", "Change f2" + PROVENANCE)
    (toy.checkout / "toypkg" / "core.py").write_text("changed\n")
    checkout = status(toy, "--json")["targets"]["toy"]["checkout"]
    line = toy.git("log", "-1", "--format=%h %s", "--abbrev=12")
    assert checkout["unexported"] == {line: ["series"]}
    assert checkout["uncommitted"] == 1
    assert f"               {line} (on series)\n" in status(toy)
    toy.git("checkout", "-q", "--", ".")
    toy.kbb("apply", "toy", "--force")
    checkout = status(toy, "--json")["targets"]["toy"]["checkout"]
    assert checkout["unexported"] == {}
    assert checkout["refs"] == {"applied": 1, "backup": 1}


def test_status_of_stale_results_documents_and_pull_requests(
    toy_series, tmp_path, monkeypatch
):
    toy = toy_series
    configure(toy, tmp_path, monkeypatch)
    toy.kbb("apply", "toy")
    toy.write_results("patched", [], "group/fix")
    (toy.root / "out" / "results" / "broken.json").write_text("{")
    ws = Workspace.find(toy.root)
    docs = toy.root / "docs"
    docs.mkdir()
    (docs / "analysis.md").write_text(results.stamp_line(ws, ws.pin("toy")) + "\n")
    toy.kbb("pr", "toy", "--offline")
    found = status(toy, "--json")
    toy_state = found["targets"]["toy"]
    assert toy_state["results"] == {"patched": None}
    assert toy_state["documents"] == {"docs/analysis.md": None}
    assert toy_state["pr"]["fix"]["stale"] == []
    assert found["other"] == [
        "out/results/broken.json is not JSON (Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1)): rerun `tox -e broken`"
    ]
    # Another local version: a new pin, so the results, the document and the
    # pull request's state were made for another one.
    pins = toy.root / "pins.toml"
    pins.write_text(pins.read_text().replace('"bessel1"', '"bessel2"'))
    toy_state = status(toy, "--json")["targets"]["toy"]
    assert toy_state["results"]["patched"].startswith(
        "out/results/patched.json measured 1.0+bessel1, built from another "
        "pins.toml [toy] than now"
    )
    assert "was generated for another" in toy_state["documents"]["docs/analysis.md"]
    assert toy_state["pr"]["fix"]["stale"] == [
        "pins.toml [toy] changed since `kbb pr toy`: rerun `kbb pr toy`"
    ]
    out = status(toy)
    assert "  pr           fix: pr/fix on the toypkg==1.0 sdist commit" in out


def test_pr_json_prints_each_group_state(toy_series, tmp_path, monkeypatch):
    toy = toy_series
    configure(toy, tmp_path, monkeypatch)
    out, _ = toy.kbb("pr", "toy", "--offline", "--json")
    found = json.loads(out.splitlines()[-1])
    assert list(found) == ["fix"]
    assert "seal" not in found["fix"] and found["fix"]["stale"] == []
    assert found["fix"]["group"] == "fix" and found["fix"]["problems"] == []
    assert found["fix"]["base_kind"] == "sdist"


def test_check_json(toy_series):
    toy = toy_series
    out, _ = toy.kbb("check", "--json")
    assert json.loads(out) == {
        "series": "toy",
        "patches": 2,
        "problems": [],
        "applies": None,
    }
    path = toy.patches / "fix" / "0001-Change-f3.patch"
    path.write_text(path.read_text().replace("Forwarded: no\n", ""))
    out, _ = toy.kbb("check", "toy", "--json", expect=2)
    assert json.loads(out)["problems"] == ["fix/0001-Change-f3.patch: lacks Forwarded:"]
