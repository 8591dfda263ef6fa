"""tf-keras' two layouts: its git repository's and its PyPI sdist's.

tf-keras' `pip_build.py` makes the sdist from the repository: it copies
`tf_keras/X` to `tf_keras/src/X` (leaving out tests and the `tools` and
`integration_test` folders), rewrites the package's imports in every `.py`
file (`convert_keras_imports`: `from tf_keras.a` becomes
`from tf_keras.src.a`, and so on; protobuf imports and lines that start or
end a docstring are left as they are), writes each file back as
`"\\n".join(lines) + "\\n"`, so with one more newline at its end, and
generates the public API files (`tf_keras/__init__.py`, `tf_keras/api/`,
...), the compiled protobuf modules and `setup.py`.

`SdistToGit` undoes the copy and the rewrite exactly, so that the series can
be kept in the git layout, with the repository's blob ids. Both directions
check that the other one gives the file back, so a file that the rewrite
cannot reproduce fails loudly rather than producing a wrong patch.
"""

from kbb import KbbError

_PACKAGE = "tf_keras"
_SRC = f"{_PACKAGE}/src/"
# (repository, sdist) spellings, in the order pip_build.py rewrites them.
_REWRITES = (
    ("import tf_keras.", "import tf_keras.src."),
    ("from tf_keras.", "from tf_keras.src."),
    ("from tf_keras import", "from tf_keras.src import"),
    ("import tf_keras as ", "import tf_keras.src as "),
    ('globals(), "tf_keras.', 'globals(), "tf_keras.src.'),
)
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


def to_sdist_line(line):
    """A line of the repository as pip_build.py rewrites it for the sdist.

    >>> to_sdist_line("from tf_keras.layers import Dense")
    'from tf_keras.src.layers import Dense'
    >>> to_git_line("import tf_keras.src as tf_keras")
    'import tf_keras'
    """
    if _kept(line):
        return line
    if line.strip() == _BARE[0]:
        return line.replace(*_BARE)
    for repository, sdist in _REWRITES:
        line = line.replace(repository, sdist)
    return line


def to_git_line(line):
    """The repository's line that pip_build.py made `line` from."""
    if _kept(line):
        return line
    if line.strip() == _BARE[1]:
        return line.replace(_BARE[1], _BARE[0])
    for repository, sdist in reversed(_REWRITES):
        line = line.replace(sdist, repository)
    return line


def to_sdist_text(text):
    """What pip_build.py makes of a repository file."""
    return "\n".join(map(to_sdist_line, text.split("\n"))) + "\n"


def to_git_text(text):
    """The repository file that pip_build.py made `text` from."""
    if not text.endswith("\n"):
        raise ValueError("no final newline")
    return "\n".join(map(to_git_line, text[:-1].split("\n")))


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
