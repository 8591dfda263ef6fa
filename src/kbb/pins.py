"""The declarative pins (pins.toml) and where the workspace keeps things."""

import dataclasses
import os
import re
import tomllib
from pathlib import Path

from kbb import KbbError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_LOCAL = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)*")


@dataclasses.dataclass(frozen=True)
class Pin:
    """One upstream release and where to get it."""

    target: str
    project: str
    version: str
    sdist_sha256: str
    git_url: str
    git_tag: str
    git_commit: str
    version_files: tuple[str, ...]
    local_version: str
    newest_project: str | None = None
    # Layout names (see kbb.layouts): how the sdist, the git repository and
    # the stored patch series lay out the package.
    sdist_layout: str = "same"
    git_layout: str = "same"
    series_layout: str = "same"

    @property
    def spec(self):
        return f"{self.project}=={self.version}"

    @property
    def patched_version(self):
        return f"{self.version}+{self.local_version}"

    @property
    def pristine_tag(self):
        return f"pristine-{self.version}"

    def layout(self, source):
        return self.sdist_layout if source == "sdist" else self.git_layout


_REQUIRED = (
    "project",
    "version",
    "sdist-sha256",
    "git-url",
    "git-tag",
    "git-commit",
    "version-files",
    "local-version",
)
_OPTIONAL = ("newest-project", "sdist-layout", "git-layout", "series-layout")


def _pin(target, table, where):
    unknown = set(table) - set(_REQUIRED) - set(_OPTIONAL)
    missing = [key for key in _REQUIRED if key not in table]
    if unknown or missing:
        raise KbbError(
            f"{where}: [{target}] "
            + (f"lacks {', '.join(missing)}" if missing else "")
            + ("; " if unknown and missing else "")
            + (f"has unknown keys {', '.join(sorted(unknown))}" if unknown else "")
        )
    if not _SHA256.fullmatch(table["sdist-sha256"]):
        raise KbbError(f"{where}: [{target}] sdist-sha256 is not 64 hex digits")
    if not _SHA1.fullmatch(table["git-commit"]):
        raise KbbError(f"{where}: [{target}] git-commit is not 40 hex digits")
    if not _LOCAL.fullmatch(table["local-version"]):
        raise KbbError(
            f"{where}: [{target}] local-version must be a PEP 440 local "
            "version label (lower-case letters, digits and dots)"
        )
    fields = {key.replace("-", "_"): value for key, value in table.items()}
    fields["version_files"] = tuple(fields["version_files"])
    return Pin(target=target, **fields)


@dataclasses.dataclass(frozen=True)
class Workspace:
    """The workspace root: pins.toml, patches/ and the .upstream/ cache."""

    root: Path

    @classmethod
    def find(cls, root=None):
        root = Path(root or os.environ.get("KBB_ROOT") or _default_root())
        if not (root / "pins.toml").is_file():
            raise KbbError(f"no pins.toml in {root}")
        return cls(root.resolve())

    @property
    def pins_file(self):
        return self.root / "pins.toml"

    @property
    def upstream_dir(self):
        return self.root / ".upstream"

    @property
    def downloads(self):
        return self.upstream_dir / "downloads"

    def checkout(self, target):
        return self.upstream_dir / target

    def patches(self, target):
        return self.root / "patches" / target

    def pins(self):
        try:
            data = tomllib.loads(self.pins_file.read_text())
        except tomllib.TOMLDecodeError as e:
            raise KbbError(f"{self.pins_file}: {e}") from None
        return {name: _pin(name, table, self.pins_file) for name, table in data.items()}

    def pin(self, target):
        pins = self.pins()
        if target not in pins:
            raise KbbError(
                f"unknown target {target!r}: {self.pins_file.name} pins "
                + ", ".join(sorted(pins))
            )
        return pins[target]


def _default_root():
    # src/kbb/pins.py -> the workspace root, when run from a checkout.
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pins.toml").is_file() else Path.cwd()
