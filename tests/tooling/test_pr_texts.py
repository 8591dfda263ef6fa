"""The workspace's own pull-request texts (pr/keras/, pr/tf-keras/), rendered
from fixture results: every table of every template is the one it names,
with the header that table has, and nothing of the workspace goes upstream.
No git, no network: the texts' other placeholders are stand-ins."""

import dataclasses

import pytest

from kbb import markdown
from kbb import results
from kbb.pr import config as pr_config
from kbb.pr import numbers
from kbb.pr import texts
from kbb.report import analysis
from kbb.series import Series

STAND_INS = ("project", "version", "title", "commits", "files", "tests", "stack")


def stamped(ws, target, patched):
    pin = ws.pin(target)
    build = results.Build(
        target=target,
        ref="group/bessel" if patched else "pristine",
        commit="0" * 40,
        version=f"{pin.version}+bessel1" if patched else pin.version,
        series=results.series_digest(ws, pin) if patched else None,
        unexported=False,
        pin=pin.digest(),
    )
    return {target: dataclasses.asdict(build)}


def records(implementation, version, backend):
    patched = "+" in version
    issue = {
        "implementation": implementation,
        "keras": version,
        "backend": backend,
        "scenario": "issue-8982",
        "moving_variance": 0.92 if patched else 0.46,
        "biased_reference": 0.46,
        "unbiased_reference": 0.92,
        "data_variance": 1.0,
    }
    converge = [
        {
            "implementation": implementation,
            "keras": version,
            "backend": backend,
            "scenario": "convergence",
            "n": n,
            "converged": 1.0 if patched else (n - 1) / n,
        }
        for n in analysis.CONVERGENCE_N
    ]
    return [issue, *converge]


def write_fixture_results(ws, target, config):
    pin = ws.pin(target)
    for env in config.envs:
        patched = "patched" in env
        version = f"{pin.version}+bessel1" if patched else pin.version
        backend = next((b for b in ("jax", "torch") if env.endswith(b)), "tensorflow")
        found = [
            r for i in config.implementations for r in records(i, version, backend)
        ]
        results.write(ws.results, env, found, stamped(ws, target, patched))


def write_fixture_docs(ws, pin, config, groups):
    """The documents pr.toml's tables name: docs/analysis.md by `kbb
    report`; the others with each of their named tables (a header naming
    it), several in one document where pr.toml names several."""
    analysis.write(ws)
    names = {}
    for file, name in config.tables.values():
        names.setdefault(file, []).append(name)
    for file, found in names.items():
        path = ws.root / file
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [results.stamp_line(ws, pin), ""]
        for name in found:
            for group in groups:
                table = name.format(group=group)
                lines += markdown.table(f"{table} | ratio", [("a", "1.00")], table)
        path.write_text("\n".join(lines))


def rendered_texts(ws, target):
    pin = ws.pin(target)
    config = pr_config.load(ws, target)
    groups = Series.load(ws.patches(pin.series)).groups
    write_fixture_results(ws, target, config)
    write_fixture_docs(ws, pin, config, groups)
    evidence = numbers.collect(ws, pin, config)
    states = [state for _, state, _ in evidence.statuses[: len(config.envs)]]
    assert states == ["current"] * len(config.envs)
    for group in groups:
        found, marks = texts.table_values(ws, pin, group, evidence, config)
        assert marks == []
        found.update({key: f"({key})" for key in STAND_INS})
        for name in ("ISSUE.md", "PR.md"):
            text = texts.render(config.template(group, name), found)
            yield group, name, texts.split_notes(text)[0], config


def expected_headers(ws, config, group):
    """The headers that each table of the texts may have: the named tables
    of pr.toml (from their documents) and the tables of measured figures."""
    headers = []
    for file, name in config.tables.values():
        doc = markdown.tables((ws.root / file).read_text())
        headers.append(markdown.header(doc[name.format(group=group)]))
    return headers


def tables_of(text):
    """The header of every Markdown table of a text."""
    found, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not previous.startswith("|"):
            found.append(markdown.header(line))
        previous = line
    return found


@pytest.mark.parametrize("target", ["keras", "tf-keras"])
def test_every_table_of_the_texts_is_the_one_it_names(ws, target):
    checked = 0
    for group, name, text, config in rendered_texts(ws, target):
        allowed = expected_headers(ws, config, group)
        for header in tables_of(text):
            figures = header[:2] in (["n", "(n - 1) / n"], ["implementation", "n"])
            figures = figures or header[1:2] == ["backend"]
            assert figures or header in allowed, (group, name, header)
            assert header[:2] != ["environment", "figures"]  # never "results read"
            checked += 1
        assert "<!--" not in text
        assert texts.body_problems(text, None) == [], (group, name)
    assert checked
