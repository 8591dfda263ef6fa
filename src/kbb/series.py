"""The patch series, as text: patches/SERIES/series lists `git format-patch`
files in order, each folder (`GROUP/`) a patch group, one upstream pull
request; groups stack in series order."""

import hashlib
import re

from kbb import KbbError
from kbb.git import cause
from kbb.git import git

PROVENANCE = ("Bug", "Origin", "Forwarded")
# Upstream's test files (keras and tf-keras name them so).
TEST_FILE = re.compile(r"_test\.py$")
SOURCES = ("sdist", "git")


class Patch:
    """One line of a series file: `GROUP/FILE.patch [only=WHERE]`, WHERE a
    source (sdist, git: a checkout made from it) or a target of pins.toml
    (a patch that only that release needs, such as a backport)."""

    def __init__(self, directory, name, only=None):
        self.name = name
        self.path = directory / name
        self.group = name.split("/", 1)[0]
        self.only = only

    def applies_to(self, where):
        """Whether the patch applies where the series is applied: `where`
        names its source and its target."""
        return self.only is None or self.only in where

    def line(self):
        return self.name + (f" only={self.only}" if self.only else "")


def parse_line(line):
    """(name, only) of a series line; ValueError says what is wrong.

    >>> parse_line("fix/0001-a.patch"), parse_line("fix/0002-b.patch only=git")
    (('fix/0001-a.patch', None), ('fix/0002-b.patch', 'git'))
    >>> parse_line("0003-c.patch only=Git")
    Traceback (most recent call last):
    ValueError: unknown option 'only=Git'
    """
    name, *options = line.split()
    only = None
    for option in options:
        if not re.fullmatch(r"only=[a-z0-9][a-z0-9-]*", option):
            raise ValueError(f"unknown option {option!r}")
        only = option.split("=", 1)[1]
    if name.count("/") != 1 or not name.endswith(".patch"):
        raise ValueError(f"expected GROUP/NAME.patch, got {name!r}")
    return name, only


class Series:
    """patches/SERIES/series: patch groups, each a folder, in order."""

    def __init__(self, directory, header, patches):
        self.directory = directory
        self.header = header
        self.patches = patches

    @classmethod
    def load(cls, directory, wheres=None):
        """Loads patches/SERIES/; with `wheres` (the targets of pins.toml),
        each only= must name a source or one of them."""
        path = directory / "series"
        if not path.is_file():
            raise KbbError(f"no series file: {path}")
        header, patches, lines = [], [], {}
        wheres = None if wheres is None else (*SOURCES, *wheres)
        for number, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                if not patches:
                    header.append(raw)
                continue
            try:
                patch = Patch(directory, *parse_line(line))
            except ValueError as e:
                raise KbbError(f"{path}:{number}: {e}") from None
            if not patch.path.is_file():
                raise KbbError(f"{path}:{number}: {patch.path} does not exist")
            if patch.name in lines:
                raise KbbError(
                    f"{path}:{number}: {patch.name} is listed twice (also on "
                    f"line {lines[patch.name]}): remove one of the lines"
                )
            if wheres is not None and patch.only not in (None, *wheres):
                raise KbbError(
                    f"{path}: {patch.name} has only={patch.only}, which is neither "
                    f"a source nor a target of pins.toml ({', '.join(wheres)})"
                )
            lines[patch.name] = number
            patches.append(patch)
        series = cls(directory, header, patches)
        series._check_groups(path)
        return series

    def _check_groups(self, path):
        seen = []
        for patch in self.patches:
            if seen and seen[-1] == patch.group:
                continue
            if patch.group in seen:
                raise KbbError(
                    f"{path}: the patches of group {patch.group!r} are not contiguous"
                )
            seen.append(patch.group)
        for group in seen:
            flags = [p.only in SOURCES for p in self.group_patches(group)]
            if flags != sorted(flags):
                raise KbbError(
                    f"{path}: in group {group!r}, patches with only=SOURCE must "
                    "come last"
                )

    def require_patches(self, target):
        """Refuses a series that lists no patch (nothing to apply or check)."""
        if not self.patches:
            raise KbbError(
                f"{self.directory / 'series'} lists no patch: start a group with "
                f"`kbb export {target} --new-group NAME`"
            )

    @property
    def groups(self):
        return list(dict.fromkeys(p.group for p in self.patches))

    def group_patches(self, group):
        return [p for p in self.patches if p.group == group]

    def upto(self, group):
        """The series of the groups up to `group`, in order."""
        if group not in self.groups:
            raise KbbError(f"no group {group!r} in {self.directory / 'series'}")
        keep = self.groups[: self.groups.index(group) + 1]
        kept = [p for p in self.patches if p.group in keep]
        return Series(self.directory, self.header, kept)

    def files(self):
        """The files that the patches change."""
        return {f for p in self.patches for f in patch_files(p.path.read_text())}

    def write(self, patches):
        lines = self.header + [p.line() for p in patches]
        (self.directory / "series").write_text("\n".join(lines) + "\n")

    def digest(self, group=None):
        """A hash of the patches (their series lines and bytes; up to `group`
        if given): what a build, a result and an applied checkout were made
        from. The series file's comments are not part of it, nor are the
        groups after `group`."""
        digest = hashlib.sha256()
        for patch in (self.upto(group) if group else self).patches:
            digest.update(patch.line().encode() + b"\n")
            digest.update(patch.path.read_bytes())
        return digest.hexdigest()


def provenance_missing(text):
    """The DEP-3 style headers that a patch's message lacks.

    >>> provenance_missing("Subject\\n\\nBug: none\\nOrigin: vendor\\n---\\n")
    ['Forwarded']
    """
    message = text.split("\n---\n", 1)[0]
    return [k for k in PROVENANCE if not re.search(rf"^{k}: \S", message, re.M)]


def unparsable(patch):
    """Why git cannot parse the text of a patch (cut short, corrupt, no
    diff), in one line with the mend, or None. Applies nothing."""
    result = git("apply", "--numstat", "-", input=patch, check=False)
    mend = "the file is cut short or damaged: restore it from git, or export it again"
    return f"{cause(result.stderr)} ({mend})" if result.returncode else None


def strip_provenance(message):
    """A commit message without the workspace's DEP-3 style headers.

    >>> strip_provenance("Fix\\n\\nWhy.\\n\\nBug: none\\nOrigin: x\\nForwarded: no\\n")
    'Fix\\n\\nWhy.\\n'
    """
    paragraphs = message.rstrip("\n").split("\n\n")
    last = [
        line
        for line in paragraphs[-1].splitlines()
        if not re.match(rf"({'|'.join(PROVENANCE)}): ", line)
    ]
    paragraphs[-1:] = ["\n".join(last)] if last else []
    return "\n\n".join(paragraphs) + "\n"


def hunks(text):
    """[(file, number, count, header)] for each hunk of a patch, in order.

    >>> hunks("diff --git a/f.py b/f.py\\n@@ -1 +1 @@\\n-a\\n+b\\n@@ -9 +9 @@ x\\n")
    [('f.py', 1, 2, '@@ -1 +1 @@'), ('f.py', 2, 2, '@@ -9 +9 @@')]
    """
    return [
        (file, number, len(parts), part.split(" @@")[0] + " @@")
        for file, _, parts in file_diffs(text)[1]
        for number, part in enumerate(parts, 1)
    ]


def file_diffs(text):
    """Splits a patch: (message, [(file, head, [hunk, ...]), ...]), where
    `head` is the diff's header up to its first hunk."""
    message, *diffs = re.split(r"^(?=diff --git )", text, flags=re.MULTILINE)
    split = []
    for diff in diffs:
        file = re.match(r"diff --git a/(\S+) b/", diff).group(1)
        head, *parts = re.split(r"^(?=@@ )", diff, flags=re.MULTILINE)
        split.append((file, head, parts))
    return message, split


def hunk_patches(text):
    """A patch of each hunk of `text` alone, in the order of `hunks(text)`."""
    return [head + hunk for _, head, parts in file_diffs(text)[1] for hunk in parts]


def drop_files(text, files):
    """`text` without the diffs of `files`; returns (text, [(file, hunks)])."""
    message, diffs = file_diffs(text)
    kept = [head + "".join(parts) for f, head, parts in diffs if f not in files]
    dropped = [(f, len(parts)) for f, _, parts in diffs if f in files]
    return message + "".join(kept), dropped


def patch_files(text):
    """The files a patch changes, as they are named after it."""
    return re.findall(r"^diff --git a/\S+ b/(\S+)$", text, re.MULTILINE)


def tests_only(patches):
    """True when the patches change only upstream's test files."""
    files = [f for p in patches for f in patch_files(p.path.read_text())]
    return all(TEST_FILE.search(f) for f in files)
