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
    version_files: tuple[str, ...]
    local_version: str
    # The upstream git repository and the release's tag and commit; a
    # nightly sdist has no tag, and carries no commit id.
    git_url: str | None = None
    git_tag: str | None = None
    git_commit: str | None = None
    # The target whose patches/TARGET/ series this one applies (default:
    # its own), and the pinned newest upstream that `kbb pr` checks.
    series: str | None = None
    newest: str | None = None
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
    "version-files",
    "local-version",
)
_GIT = ("git-url", "git-tag", "git-commit")
_OPTIONAL = (*_GIT, "series", "newest", "sdist-layout", "git-layout", "series-layout")


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
    git = [key for key in _GIT if key in table]
    if git and len(git) != len(_GIT):
        raise KbbError(
            f"{where}: [{target}] has {', '.join(git)} but not "
            + ", ".join(key for key in _GIT if key not in table)
            + " (all three, or none for a nightly sdist)"
        )
    if git and not _SHA1.fullmatch(table["git-commit"]):
        raise KbbError(f"{where}: [{target}] git-commit is not 40 hex digits")
    if not _LOCAL.fullmatch(table["local-version"]):
        raise KbbError(
            f"{where}: [{target}] local-version must be a PEP 440 local "
            "version label (lower-case letters, digits and dots)"
        )
    fields = {key.replace("-", "_"): value for key, value in table.items()}
    fields["version_files"] = tuple(fields["version_files"])
    fields.setdefault("series", target)
    return Pin(target=target, **fields)


def _check_links(pins, where):
    """`series` and `newest` name pinned targets; the targets that share a
    series store it in one layout."""
    for pin in pins.values():
        for key, name in (("series", pin.series), ("newest", pin.newest)):
            if name is not None and name not in pins:
                raise KbbError(
                    f"{where}: [{pin.target}] {key} = {name!r} is not a table of it"
                )
        owner = pins[pin.series]
        if pin.series_layout != owner.series_layout:
            raise KbbError(
                f"{where}: [{pin.target}] shares the series of [{owner.target}] "
                f"but names another series-layout ({pin.series_layout!r}, not "
                f"{owner.series_layout!r})"
            )


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
        pins = {name: _pin(name, table, self.pins_file) for name, table in data.items()}
        _check_links(pins, self.pins_file)
        return pins

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
