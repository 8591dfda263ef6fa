"""The workspace: where everything lies. Every path is spelled here."""

import configparser
import dataclasses
import os
from pathlib import Path

from kbb import KbbError
from kbb import pins
from kbb.series import Series


@dataclasses.dataclass(frozen=True)
class Workspace:
    """The workspace root and the paths below it. Hand-written: pins.toml,
    tox.ini, patches/, pr/, docs/ (some of it generated). Never committed:
    .upstream/ (fetched upstream code, downloads, wheels), out/, .asv/."""

    root: Path
    pins_file: Path
    tox_ini: Path
    docs: Path
    upstream_dir: Path
    downloads: Path
    wheels: Path
    lock_file: Path

    @classmethod
    def at(cls, root):
        root = Path(root)
        upstream = root / ".upstream"
        return cls(
            root=root,
            pins_file=root / "pins.toml",
            tox_ini=root / "tox.ini",
            docs=root / "docs",
            upstream_dir=upstream,
            downloads=upstream / "downloads",
            wheels=upstream / "wheels",
            lock_file=upstream / ".lock",
        )

    @classmethod
    def find(cls, root=None):
        """`root`, else the first folder holding pins.toml from the current
        one upward (as git finds its repository: the clone you stand in,
        never the one kbb was installed from), else $KBB_ROOT."""
        if root is None:
            here = Path.cwd().resolve()
            root = next(
                (d for d in (here, *here.parents) if (d / "pins.toml").is_file()),
                os.environ.get("KBB_ROOT"),
            )
        if root is None:
            raise KbbError(
                f"no pins.toml in {Path.cwd()} or above, and no $KBB_ROOT: run "
                "kbb in the workspace, or pass --root"
            )
        root = Path(root)
        if not (root / "pins.toml").is_file():
            raise KbbError(f"no pins.toml in {root}: run kbb in the workspace")
        return cls.at(root.resolve())

    def patches(self, series):
        return self.root / "patches" / series

    def pr_config(self, target):
        """pr/TARGET/: pr.toml and the templates of the pull requests."""
        return self.root / "pr" / target

    def checkout(self, target):
        return self.upstream_dir / target

    @property
    def results(self):
        """out/results/ (or $KBB_RESULTS): ENV.json of each test environment."""
        return Path(os.environ.get("KBB_RESULTS") or self.root / "out" / "results")

    def pr_out(self, target, group=""):
        """out/pr/TARGET/GROUP/ (without `group`: out/pr/TARGET/)."""
        return self.root / "out" / "pr" / target / group

    def shown(self, path):
        """`path` relative to the root, for messages."""
        return os.path.relpath(path, self.root)

    # What the files say.

    def pins(self):
        return pins.load(self.pins_file)

    def series(self, pin):
        """The patch series of `pin`, its only= options checked against the
        sources and the targets of pins.toml."""
        return Series.load(self.patches(pin.series), wheres=self.pins())

    def pin(self, target):
        found = self.pins()
        if target not in found:
            raise KbbError(
                f"unknown target {target!r}: {self.pins_file.name} pins "
                + ", ".join(sorted(found))
            )
        return found[target]

    def tox_envs(self, section="tox", key="env_list"):
        """The environments tox.ini lists under `key` of `section` (by
        default the default list; `testenv:report`, `depends`: the results
        the analysis reads)."""
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.tox_ini)
        try:
            value = parser[section][key]
        except KeyError:
            raise KbbError(f"{self.tox_ini}: [{section}] has no {key}") from None
        return [env for env in value.replace(",", "\n").split() if env]
