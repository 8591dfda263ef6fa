"""keras' layout translation (kbb.layout.keras), on synthetic files: the
backends' operations in keras/src/backend/NAME/*.py (the 3.15 releases) or
in .../NAME/ops/*.py (the newest upstream), a series kept in the latter,
exported from a release checkout and applied to a pinned nightly that
ships no tests."""

import pytest

from conftest import FILES
from conftest import PROVENANCE
from kbb import KbbError
from kbb.layout.keras import FlatToOps
from kbb.layout.keras import to_flat_text
from kbb.layout.keras import to_ops_text

# Every spelling that the move rewrote, and look-alikes that it left alone.
FLAT = '''"""Uses keras.src.backend.jax.nn and backend.nn.relu."""
from keras.src import backend
from keras.src.backend.jax import core
from keras.src.backend.jax import nn as jax_nn
from keras.src.backend.jax import distribution_lib
from keras.src.backend.jax.core import cast
from keras.src.backend.numpy.numpy import add
from keras.src.backend.numpy import *  # noqa: F403
import keras.src.backend.torch.math


def f(x):
    mock.patch("keras.src.backend.tensorflow.nn.moments")
    y = backend.nn.relu(x) + self.backend.numpy.add(x, x)
    z = backend.config.image_data_format() + tf_backend.nn.relu(x)
    if hasattr(backend.nn, "_private"):
        return backend.nn._private(x)
    return backend.numpy.dot(y, z), keras.src.backend.jax.core_test
'''

OPS = '''"""Uses keras.src.backend.jax.ops.nn and backend.ops.nn.relu."""
from keras.src import backend
from keras.src.backend.jax.ops import core
from keras.src.backend.jax.ops import nn as jax_nn
from keras.src.backend.jax import distribution_lib
from keras.src.backend.jax.ops.core import cast
from keras.src.backend.numpy.ops.numpy import add
from keras.src.backend.numpy import *  # noqa: F403
import keras.src.backend.torch.ops.math


def f(x):
    mock.patch("keras.src.backend.tensorflow.ops.nn.moments")
    y = backend.ops.nn.relu(x) + self.backend.ops.numpy.add(x, x)
    z = backend.config.image_data_format() + tf_backend.nn.relu(x)
    if hasattr(backend.ops.nn, "_private"):
        return backend.ops.nn._private(x)
    return backend.ops.numpy.dot(y, z), keras.src.backend.jax.core_test
'''


def test_rewrite_both_ways():
    assert to_ops_text(FLAT) == OPS
    assert to_flat_text(OPS) == FLAT


@pytest.mark.parametrize(
    "flat,ops",
    [
        ("keras/src/backend/jax/nn.py", "keras/src/backend/jax/ops/nn.py"),
        ("keras/src/backend/torch/core.py", "keras/src/backend/torch/ops/core.py"),
        ("keras/src/backend/numpy/numpy.py", "keras/src/backend/numpy/ops/numpy.py"),
        ("keras/src/backend/jax/core_test.py", "keras/src/backend/jax/core_test.py"),
        ("keras/src/backend/jax/rnn.py", "keras/src/backend/jax/rnn.py"),
        ("keras/src/backend/common/dtypes.py", "keras/src/backend/common/dtypes.py"),
        ("keras/src/ops/nn.py", "keras/src/ops/nn.py"),
        ("keras/__init__.py", "keras/__init__.py"),
    ],
)
def test_paths(flat, ops):
    translator = FlatToOps()
    assert translator.to_series(flat, FLAT.encode()) == (ops, OPS.encode())
    assert translator.to_checkout(ops, OPS.encode()) == (flat, FLAT.encode())


def test_the_ops_init_files_have_no_counterpart():
    init = b"from keras.src.backend.jax.ops import core\n"
    assert (
        FlatToOps().to_checkout("keras/src/backend/jax/ops/__init__.py", init) is None
    )


def test_a_rewrite_that_cannot_be_undone_is_an_error():
    translator = FlatToOps()
    # Already in the ops spelling: the way back would not give it back.
    with pytest.raises(KbbError, match="cannot be undone exactly"):
        translator.to_series("keras/src/a.py", b"backend.ops.nn.relu(x)\n")
    with pytest.raises(KbbError, match="cannot be undone exactly"):
        translator.to_checkout("keras/src/a.py", b"backend.nn.relu(x)\n")
    with pytest.raises(KbbError, match="not a keras source file"):
        translator.to_series("keras/src/a.py", b"\xff\n")
    # Files other than Python's are copied as they are.
    assert translator.to_series("README.md", b"\xff") == ("README.md", b"\xff")


NN_FLAT = (
    "from keras.src.backend.jax.core import cast\n\n\n"
    "def relu(x):\n    return x\n\n\n"
    + "".join(f"def f{i}(x):\n    return x\n\n\n" for i in range(4))
    + "def gelu(x):\n    return cast(x, 'float32')\n"
)
CALLER_FLAT = (
    "from keras.src import backend\n\n\ndef relu(x):\n    return backend.nn.relu(x)\n"
)
TEST = "def test_relu():\n    pass\n"


def release_files():
    return {
        **FILES,
        "keras/src/backend/jax/nn.py": NN_FLAT,
        "keras/src/ops/nn.py": CALLER_FLAT,
        "keras/src/ops/nn_test.py": TEST,
    }


def nightly_files():
    # Upstream moved the module, and changed a line of it since.
    nn = to_ops_text(NN_FLAT).replace("'float32'", "'float64'")
    return {
        **FILES,
        "keras/src/backend/jax/ops/__init__.py": "",
        "keras/src/backend/jax/ops/nn.py": nn,
        "keras/src/ops/nn.py": to_ops_text(CALLER_FLAT),
    }


def start_series_on_release_and_nightly(toy):
    """A flat release and an ops-layout nightly of the toy, the series kept
    in the ops layout; branch `series` checked out on the release."""
    toy.make_release(release_files())
    layouts = {"sdist_layout": "keras-flat", "series_layout": "keras-ops"}
    ops = {"sdist_layout": "keras-ops", "series_layout": "keras-ops"}
    toy.add_nightly(nightly_files(), toy=layouts, nightly=ops)
    toy.kbb("fetch", "toy")
    toy.git("checkout", "-q", "-b", "series", "pristine")


def test_series_in_the_ops_layout_on_a_release_and_on_the_nightly(toy):
    start_series_on_release_and_nightly(toy)
    toy.commit_edit(
        "keras/src/backend/jax/nn.py",
        "def relu(x):\n",
        "def relu(x, approximate=False):\n",
        "Add approximate" + PROVENANCE,
    )
    toy.commit_edit(
        "keras/src/ops/nn_test.py", "pass\n", "assert True\n", "Test" + PROVENANCE
    )
    toy.kbb("export", "toy", "--new-group", "fix")
    patch = (toy.patches / "fix" / "0001-Add-approximate.patch").read_text()
    # In the ops layout and spelling.
    assert "diff --git a/keras/src/backend/jax/ops/nn.py b/keras" in patch
    assert " from keras.src.backend.jax.ops.core import cast\n" in patch
    before = toy.snapshot()
    toy.kbb("apply", "toy")
    toy.kbb("export", "toy")
    assert toy.snapshot() == before
    # The same series on the nightly, which ships no tests: their diffs are
    # left out, and said; the result cannot be exported.
    _, err = toy.kbb("apply", "toy-nightly")
    assert (
        "left out 1 hunk(s) of upstream test files that toypkg-nightly==1.1.dev1 "
        "does not ship: keras/src/ops/nn_test.py"
    ) in err
    nn = toy.root / ".upstream" / "toy-nightly" / "keras/src/backend/jax/ops/nn.py"
    assert "def relu(x, approximate=False):\n" in nn.read_text()
    assert "return cast(x, 'float64')" in nn.read_text()
    _, err = toy.kbb("export", "toy-nightly", expect=2)
    assert "lacks upstream's tests, so its commits lack 1 hunk(s)" in err
    assert "`kbb export toy`" in err
    assert toy.snapshot() == before


def test_a_patch_only_for_the_release_is_skipped_on_the_nightly(toy):
    # A backport that the nightly already has: `only=toy` in the series.
    start_series_on_release_and_nightly(toy)
    toy.commit_edit(
        "keras/src/backend/jax/nn.py",
        "'float32'",
        "'float64'",
        "Backport float64" + PROVENANCE,
    )
    toy.commit_edit(
        "keras/src/backend/jax/nn.py",
        "def relu(x):\n",
        "def relu(x, approximate=False):\n",
        "Add approximate" + PROVENANCE,
    )
    toy.kbb("export", "toy", "--new-group", "fix")
    series = toy.patches / "series"
    backport = "fix/0001-Backport-float64.patch"
    series.write_text(series.read_text().replace(backport, backport + " only=toy"))
    before = toy.snapshot()
    toy.kbb("apply", "toy")
    toy.kbb("export", "toy")
    assert toy.snapshot() == before
    _, err = toy.kbb("apply", "toy-nightly")
    assert f"skipping {backport} (only=toy; this is toy-nightly" in err
    nn = toy.root / ".upstream" / "toy-nightly" / "keras/src/backend/jax/ops/nn.py"
    assert "def relu(x, approximate=False):\n" in nn.read_text()
