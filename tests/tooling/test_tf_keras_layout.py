"""tf-keras' layout translation (kbb.layout.tf_keras), on synthetic files:
the rewrite of pip_build.py both ways, the paths, and a series kept in the
repository's layout, exported from an sdist checkout and applied to both."""

import pytest

from conftest import FILES
from conftest import PROVENANCE
from conftest import make_git_repo
from conftest import make_sdist
from kbb import KbbError
from kbb.layout.tf_keras import SdistToGit
from kbb.layout.tf_keras import to_git_text
from kbb.layout.tf_keras import to_sdist_text

# Every form that pip_build.py's convert_keras_imports rewrites, and lines
# it leaves alone: protobuf imports, lines that start or end a docstring.
GIT = '''"""A module. Uses from tf_keras.layers import Dense."""
import tf_keras
import tf_keras.layers.core as core
from tf_keras.engine import base_layer
from tf_keras import backend
import tf_keras as keras
from tf_keras.protobuf import saved_metadata_pb2


def f():
    """Example:

    from tf_keras.layers import Dense
    """
    import tf_keras

    m = LazyLoader("m", globals(), "tf_keras.models")
    return tf_keras, m, "tf_keras.layers stays"'''

SDIST = '''"""A module. Uses from tf_keras.layers import Dense."""
import tf_keras.src as tf_keras
import tf_keras.src.layers.core as core
from tf_keras.src.engine import base_layer
from tf_keras.src import backend
import tf_keras.src as keras
from tf_keras.protobuf import saved_metadata_pb2


def f():
    """Example:

    from tf_keras.src.layers import Dense
    """
    import tf_keras.src as tf_keras

    m = LazyLoader("m", globals(), "tf_keras.src.models")
    return tf_keras, m, "tf_keras.layers stays"
'''


def test_rewrite_both_ways():
    assert to_sdist_text(GIT) == SDIST  # one more newline at the end
    assert to_git_text(SDIST) == GIT
    assert to_git_text(to_sdist_text(GIT + "\n")) == GIT + "\n"


@pytest.mark.parametrize(
    "sdist_path,git_path",
    [
        ("tf_keras/src/layers/core.py", "tf_keras/layers/core.py"),
        ("tf_keras/src/__init__.py", "tf_keras/__init__.py"),
        ("tf_keras/__init__.py", None),  # generated API
        ("tf_keras/api/_v2/keras/__init__.py", None),
        ("tf_keras/protobuf/saved_metadata_pb2.py", None),
        ("setup.py", None),
        ("PKG-INFO", None),
        ("tf_keras.egg-info/SOURCES.txt", None),
    ],
)
def test_sdist_paths(sdist_path, git_path):
    mapped = SdistToGit().to_series(sdist_path, SDIST.encode())
    if git_path is None:
        assert mapped is None
    else:
        assert mapped == (git_path, GIT.encode())


@pytest.mark.parametrize(
    "git_path,sdist_path",
    [
        ("tf_keras/layers/core.py", "tf_keras/src/layers/core.py"),
        ("tf_keras/__init__.py", "tf_keras/src/__init__.py"),
        ("tf_keras/layers/core_test.py", None),
        ("tf_keras/layers/BUILD", None),
        ("tf_keras/tools/pip_package/setup.py", None),
        ("tf_keras/integration_test/models/bert.py", None),
        ("tf_keras/protobuf/versions.py", None),
        ("pip_build.py", None),
    ],
)
def test_git_paths(git_path, sdist_path):
    mapped = SdistToGit().to_checkout(git_path, GIT.encode())
    if sdist_path is None:
        assert mapped is None
    else:
        assert mapped == (sdist_path, SDIST.encode())


def test_a_rewrite_that_cannot_be_undone_is_an_error():
    translator = SdistToGit()
    # Both would be `import tf_keras.src as tf_keras` in the sdist.
    with pytest.raises(KbbError, match="cannot be undone exactly"):
        translator.to_checkout("tf_keras/a.py", b"import tf_keras as tf_keras\n")
    # Not in the spelling that pip_build.py writes.
    with pytest.raises(KbbError, match="cannot be undone exactly"):
        translator.to_series("tf_keras/src/a.py", b"from tf_keras.a import b\n\n")
    with pytest.raises(KbbError, match="no final newline"):
        translator.to_series("tf_keras/src/a.py", b"x = 1")
    with pytest.raises(KbbError, match="not a tf-keras source file"):
        translator.to_series("tf_keras/src/a.py", b"\xff\n")


def test_series_in_the_git_layout_from_an_sdist_checkout(toy, tmp_path):
    # A toy tf-keras: the sdist has tf_keras/src/ (rewritten) and generated
    # files, the repository tf_keras/ and a test file; the series is kept in
    # the repository's layout.
    core = "from tf_keras.engine import base\n\nRATE = 1\n"
    git_files = {**FILES, "tf_keras/layers/core.py": core}
    git_files["tf_keras/layers/core_test.py"] = "import tf_keras\n"
    sdist_files = {**FILES, "tf_keras/__init__.py": "generated\n"}
    sdist_files["tf_keras/src/layers/core.py"] = to_sdist_text(core)
    toy.sha256 = make_sdist(toy.index / "toypkg-1.0.tar.gz", sdist_files)
    repo = tmp_path / "tf-keras.git"
    commit = make_git_repo(repo, git_files)
    toy.write_pins(
        commit=commit,
        url=repo.as_uri(),
        extra={
            "sdist_layout": "tf-keras-sdist",
            "git_layout": "tf-keras-git",
            "series_layout": "tf-keras-git",
        },
    )
    toy.kbb("fetch", "toy")
    toy.git("checkout", "-q", "-b", "series", "pristine")
    toy.commit_edit(
        "tf_keras/src/layers/core.py",
        "RATE = 1\n",
        "from tf_keras.src import backend\n\nRATE = 2\n",
        "Change the rate" + PROVENANCE,
    )
    toy.kbb("export", "toy", "--new-group", "fix")
    patch = (toy.patches / "fix" / "0001-Change-the-rate.patch").read_text()
    # In the repository's layout and spelling, with its blob ids.
    assert "diff --git a/tf_keras/layers/core.py b/tf_keras/layers/core.py" in patch
    assert "+from tf_keras import backend\n" in patch
    blob = toy.git("rev-parse", "pristine:tf_keras/src/layers/core.py")
    assert blob not in patch
    before = toy.snapshot()
    toy.kbb("apply", "toy")
    toy.kbb("export", "toy")
    assert toy.snapshot() == before
    # The same series applies to the repository, and exports the same bytes.
    toy.kbb("clean", "toy")
    toy.kbb("fetch", "toy", "--source", "git")
    git_blob = toy.git("rev-parse", "pristine:tf_keras/layers/core.py")
    assert f"index {git_blob}.." in patch
    toy.kbb("apply", "toy")
    edited = (toy.checkout / "tf_keras/layers/core.py").read_text()
    assert edited == "from tf_keras.engine import base\n\n" + (
        "from tf_keras import backend\n\nRATE = 2\n"
    )
    toy.kbb("export", "toy")
    assert toy.snapshot() == before
