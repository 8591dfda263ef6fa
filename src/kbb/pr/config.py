"""pr/TARGET/pr.toml and the templates ISSUE.md and PR.md beside it
(pr/TARGET/GROUP/NAME.md overrides pr/TARGET/NAME.md for one group)."""

import dataclasses
import tomllib
from pathlib import Path

from kbb import KbbError


@dataclasses.dataclass(frozen=True)
class Config:
    directory: Path
    lint_requires: tuple
    lint_commands: tuple
    implementations: tuple  # of the records shown, in the tables' order
    labels: dict  # implementation -> its name in the tables (several only)
    version_key: str
    envs: tuple
    tables: dict  # placeholder -> (FILE, NAME): a named table of a document
    body_lines: int | None  # the most lines PR.md's body may have
    ci_envs: tuple = ()  # also run for the PR: only their state is reported
    # group -> base ("pinned", "newest") -> the envs of its regression tests
    tests: dict = dataclasses.field(default_factory=dict)

    def template(self, group, name):
        for path in (self.directory / group / name, self.directory / name):
            if path.is_file():
                return path
        raise KbbError(
            f"no template {self.directory.name}/{name} in pr/ (see docs/workflow.md)"
        )


def load(ws, target):
    path = ws.pr_config(target) / "pr.toml"
    if not path.is_file():
        raise KbbError(
            f"no pr/{target}/pr.toml: write how {target}'s pull requests are "
            "linted and which results they show (see docs/workflow.md)"
        )
    try:
        data = tomllib.loads(path.read_text())
        if "docs" in data:
            raise KbbError(
                f"pr/{target}/pr.toml: [docs] took the first table of a document; "
                "name the table instead: [tables] PLACEHOLDER = [FILE, NAME]"
            )
        lint, results = data["lint"], data["results"]
        implementations = results["implementation"]
        if isinstance(implementations, str):
            implementations = [implementations]
        labels = results.get("labels", {})
        config = Config(
            directory=path.parent,
            lint_requires=tuple(lint.get("requires", ())),
            lint_commands=tuple(tuple(c) for c in lint["commands"]),
            implementations=tuple(implementations),
            labels={i: labels.get(i, i) for i in implementations},
            version_key=results["version-key"],
            envs=tuple(results["envs"]),
            tables={k: tuple(v) for k, v in data.get("tables", {}).items()},
            body_lines=data.get("texts", {}).get("pr-body-lines"),
            ci_envs=tuple(results.get("ci-envs", ())),
            tests=results.get("tests", {}),
        )
    except tomllib.TOMLDecodeError as e:
        raise KbbError(f"pr/{target}/pr.toml: {e}") from None
    except KeyError as e:
        raise KbbError(f"pr/{target}/pr.toml lacks {e.args[0]!r}") from None
    if not all(c and "{files}" in c for c in config.lint_commands):
        raise KbbError(f"pr/{target}/pr.toml: each lint command needs a {{files}}")
    if not all(
        len(v) == 2 and all(isinstance(i, str) for i in v)
        for v in config.tables.values()
    ):
        raise KbbError(
            f"pr/{target}/pr.toml: each [tables] entry is [FILE, NAME] (a table "
            "marked `<!-- table: NAME -->` in FILE; {group} in NAME: the group)"
        )
    if config.body_lines is not None and not isinstance(config.body_lines, int):
        raise KbbError(f"pr/{target}/pr.toml: [texts] pr-body-lines must be a number")
    return config
