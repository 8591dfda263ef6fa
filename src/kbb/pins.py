"""The declarative pins of pins.toml: one table per upstream target.

Every error names the file, the table and the key, in one line.
"""

import dataclasses
import hashlib
import json
import re
import tomllib

from packaging.version import InvalidVersion
from packaging.version import Version

from kbb import KbbError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")


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
    # Layout names (see kbb.layout): how the sdist, the git repository and
    # the stored patch series lay out the package.
    sdist_layout: str = "same"
    git_layout: str = "same"
    series_layout: str = "same"

    @property
    def spec(self):
        return f"{self.project}=={self.version}"

    @property
    def pristine_tag(self):
        return f"pristine-{self.version}"

    def layout(self, source):
        return self.sdist_layout if source == "sdist" else self.git_layout

    def digest(self):
        """A hash of the pin's values: results record the pin they measured."""
        values = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(values.encode()).hexdigest()


_REQUIRED = ("project", "version", "sdist-sha256", "version-files", "local-version")
_GIT = ("git-url", "git-tag", "git-commit")
_LAYOUTS = ("sdist-layout", "git-layout", "series-layout")
# Every key is a string, but the lists of strings.
_LISTS = ("version-files",)
_KEYS = (*_REQUIRED, *_GIT, "series", "newest", *_LAYOUTS)


def _check_keys(table, where):
    unknown = ", ".join(sorted(set(table) - set(_KEYS)))
    missing = ", ".join(key for key in _REQUIRED if key not in table)
    found = [f"lacks {missing}"] * bool(missing)
    found += [f"has unknown keys {unknown}"] * bool(unknown)
    if found:
        raise KbbError(f"{where} {'; '.join(found)}")
    for key, value in table.items():
        what, fits = "a string", isinstance(value, str)
        if key in _LISTS:
            what = "a list of strings"
            fits = isinstance(value, list) and all(isinstance(i, str) for i in value)
        if not fits:
            raise KbbError(
                f"{where} {key} must be {what}, not {type(value).__name__} "
                f"{json.dumps(value, default=str)}"
            )
    git = [key for key in _GIT if key in table]
    if git and len(git) != len(_GIT):
        raise KbbError(
            f"{where} has {', '.join(git)} but not "
            + ", ".join(key for key in _GIT if key not in table)
            + " (all three, or none for a nightly sdist)"
        )


def _check_values(table, where):
    if not _SHA256.fullmatch(table["sdist-sha256"]):
        raise KbbError(f"{where} sdist-sha256 is not 64 hex digits")
    if "git-commit" in table and not _SHA1.fullmatch(table["git-commit"]):
        raise KbbError(f"{where} git-commit is not 40 hex digits")
    try:
        local = Version(f"{table['version']}+{table['local-version']}").local
    except InvalidVersion:
        local = None
    if local != table["local-version"]:
        raise KbbError(
            f"{where} version and local-version must make a PEP 440 version "
            "VERSION+LOCAL (local-version: lower-case letters, digits and dots)"
        )


def _pin(target, table, path):
    where = f"{path}: [{target}]"
    if not isinstance(table, dict):
        raise KbbError(f"{path}: {target} must be a table, [{target}]")
    _check_keys(table, where)
    _check_values(table, where)
    fields = {key.replace("-", "_"): value for key, value in table.items()}
    fields["version_files"] = tuple(fields["version_files"])
    fields.setdefault("series", target)
    return Pin(target=target, **fields)


def _check_links(pins, path):
    """`series` and `newest` name pinned targets; the targets that share a
    series store it in one layout."""
    for pin in pins.values():
        for key, name in (("series", pin.series), ("newest", pin.newest)):
            if name is not None and name not in pins:
                raise KbbError(
                    f"{path}: [{pin.target}] {key} = {name!r} is not a table of it"
                )
        owner = pins[pin.series]
        if pin.series_layout != owner.series_layout:
            raise KbbError(
                f"{path}: [{pin.target}] shares the series of [{owner.target}] "
                f"but names another series-layout ({pin.series_layout!r}, not "
                f"{owner.series_layout!r})"
            )


def load(path):
    """{target: Pin} of a pins.toml."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise KbbError(f"{path}: {e}") from None
    pins = {name: _pin(name, table, path) for name, table in data.items()}
    _check_links(pins, path)
    return pins
