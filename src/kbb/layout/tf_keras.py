"""tf-keras' two layouts: its git repository's and its PyPI sdist's.

tf-keras' `pip_build.py` makes the sdist from the repository: it copies
`tf_keras/X` to `tf_keras/src/X`, rewrites the package's imports and writes
each file back with one more newline at its end (docs/tf-keras.md, "Two
layouts, one series", says what exactly). `SdistToGit` undoes the copy and
the rewrite exactly, so that the series can be kept in the git layout, with
the repository's blob ids; both directions check that the other one gives
the file back, so a file that the rewrite cannot reproduce fails loudly
rather than producing a wrong patch.
"""

from kbb import KbbError

_PACKAGE = "tf_keras"
_SRC = f"{_PACKAGE}/src/"
# (repository, sdist) spellings, in the order pip_build.py rewrites them;
# undone in the reverse order.
_TO_SDIST = (
    ("import tf_keras.", "import tf_keras.src."),
    ("from tf_keras.", "from tf_keras.src."),
    ("from tf_keras import", "from tf_keras.src import"),
    ("import tf_keras as ", "import tf_keras.src as "),
    ('globals(), "tf_keras.', 'globals(), "tf_keras.src.'),
)
_TO_GIT = [(sdist, repository) for repository, sdist in reversed(_TO_SDIST)]
_BARE = ("import tf_keras", "import tf_keras.src as tf_keras")
# Folders of the repository that the sdist does not ship: pip_build.py
# leaves out the first two, and ships `protobuf` compiled, elsewhere.
_NOT_SHIPPED = {"tools", "integration_test", "protobuf"}


def _kept(line):
    """Lines that pip_build.py never rewrites."""
    stripped = line.strip()
    return (
        stripped.startswith('"""')
        or stripped.endswith('"""')
        or "import tf_keras.protobuf" in line
        or "from tf_keras.protobuf" in line
    )


def _rewrite_line(line, rewrites, bare):
    """`line` with each (old, new) of `rewrites` replaced, or with `bare`
    (old, new) when it is that whole import; a line that pip_build.py never
    rewrites as it is."""
    if _kept(line):
        return line
    if line.strip() == bare[0]:
        return line.replace(*bare)
    for old, new in rewrites:
        line = line.replace(old, new)
    return line


def to_sdist_text(text):
    """What pip_build.py makes of a repository file.

    >>> to_sdist_text("from tf_keras.layers import Dense")
    'from tf_keras.src.layers import Dense\\n'
    >>> to_git_text("import tf_keras.src as tf_keras\\n")
    'import tf_keras'
    """
    lines = [_rewrite_line(line, _TO_SDIST, _BARE) for line in text.split("\n")]
    return "\n".join(lines) + "\n"


def to_git_text(text):
    """The repository file that pip_build.py made `text` from."""
    if not text.endswith("\n"):
        raise ValueError("no final newline")
    lines = text[:-1].split("\n")
    return "\n".join(_rewrite_line(line, _TO_GIT, _BARE[::-1]) for line in lines)


def _checked(path, data, convert, back):
    """Converts a file's bytes, checking that `back` gives them back."""
    try:
        text = data.decode("utf-8")
        result = convert(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise KbbError(f"{path}: not a tf-keras source file ({e})") from None
    if back(result) != text:
        raise KbbError(
            f"{path}: pip_build.py's import rewrite cannot be undone exactly "
            "for this file, so it has no exact counterpart in the other layout"
        )
    return result.encode("utf-8")


class SdistToGit:
    """Translator (see kbb.layout) from the sdist's layout to the git one.

    >>> SdistToGit().to_series("tf_keras/src/a.py", b"from tf_keras.src import b\\n")
    ('tf_keras/a.py', b'from tf_keras import b')
    >>> SdistToGit().to_checkout("tf_keras/a_test.py", b"") is None
    True
    """

    def to_series(self, path, data):
        if not path.startswith(_SRC) or not path.endswith(".py"):
            return None  # setup.py, PKG-INFO, egg-info, generated API files
        git_path = _PACKAGE + "/" + path[len(_SRC) :]
        return git_path, _checked(path, data, to_git_text, to_sdist_text)

    def to_checkout(self, path, data):
        parts = path.split("/")
        if (
            parts[0] != _PACKAGE
            or not path.endswith(".py")
            or path.endswith("_test.py")
            or _NOT_SHIPPED.intersection(parts[1:-1])
        ):
            return None  # tests, BUILD files, tools: only in the repository
        sdist_path = _SRC + path[len(_PACKAGE) + 1 :]
        return sdist_path, _checked(path, data, to_sdist_text, to_git_text)
