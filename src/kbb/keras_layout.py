"""keras' two layouts of the backends' operations: flat and `ops/`.

Up to the 3.15 releases each backend keeps its operations in modules of its
own folder, `keras/src/backend/NAME/MOD.py` (the "keras-flat" layout); the
newest upstream moved them to `keras/src/backend/NAME/ops/MOD.py` (the
"keras-ops" layout), for MOD in core, image, linalg, math, nn and numpy, and
spelled every reference to them anew:

- `keras.src.backend.NAME.MOD` became `keras.src.backend.NAME.ops.MOD`
  (imports, and module paths in strings such as `mock.patch` targets);
- `from keras.src.backend.NAME import MOD` became
  `from keras.src.backend.NAME.ops import MOD`;
- callers of the dispatched backend, `backend.MOD.X` (also
  `self.backend.MOD.X`), became `backend.ops.MOD.X`.

The tests of those modules (`core_test.py`, ...) stay where they were, and
the new `ops/__init__.py` files have no counterpart in the flat layout.

`FlatToOps` translates whole files between the two, so that the series can
be kept in the newest upstream's layout (its pull requests' layout) and
applied to a release checkout. Both directions check that the other one
gives the file back, so a file that the rewrite cannot reproduce fails
loudly rather than producing a wrong patch. Only the spelling of the move is
translated: whatever else upstream changed since the release stays a
difference between the two upstreams, as with any newer upstream.
"""

import re

from kbb import KbbError

BACKENDS = ("jax", "numpy", "openvino", "tensorflow", "torch")
MODULES = ("core", "image", "linalg", "math", "nn", "numpy")

_NAME = "|".join(BACKENDS)
_MOD = "|".join(MODULES)
_FLAT_PATH = re.compile(rf"keras/src/backend/({_NAME})/({_MOD})\.py")
_OPS_PATH = re.compile(rf"keras/src/backend/({_NAME})/ops/({_MOD})\.py")
# (flat spelling, ops spelling) as pairs of patterns and replacements; a
# module path ends where no identifier character follows.
_TO_OPS = (
    (
        re.compile(rf"\bkeras\.src\.backend\.({_NAME})\.({_MOD})(?![\w])"),
        r"keras.src.backend.\1.ops.\2",
    ),
    (
        re.compile(rf"\bfrom keras\.src\.backend\.({_NAME}) import ({_MOD})\b"),
        r"from keras.src.backend.\1.ops import \2",
    ),
    (re.compile(rf"(?<![\w])(?<!src\.)backend\.({_MOD})\."), r"backend.ops.\1."),
)
_TO_FLAT = (
    (
        re.compile(rf"\bkeras\.src\.backend\.({_NAME})\.ops\.({_MOD})(?![\w])"),
        r"keras.src.backend.\1.\2",
    ),
    (
        re.compile(rf"\bfrom keras\.src\.backend\.({_NAME})\.ops import ({_MOD})\b"),
        r"from keras.src.backend.\1 import \2",
    ),
    (re.compile(rf"(?<![\w])(?<!src\.)backend\.ops\.({_MOD})\."), r"backend.\1."),
)


def to_ops_text(text):
    """A flat-layout file as the ops layout spells it."""
    for pattern, replacement in _TO_OPS:
        text = pattern.sub(replacement, text)
    return text


def to_flat_text(text):
    """An ops-layout file as the flat layout spells it."""
    for pattern, replacement in _TO_FLAT:
        text = pattern.sub(replacement, text)
    return text


def to_ops_path(path):
    match = _FLAT_PATH.fullmatch(path)
    if match:
        return f"keras/src/backend/{match[1]}/ops/{match[2]}.py"
    if re.fullmatch(rf"keras/src/backend/({_NAME})/ops/.*", path):
        return None  # the flat layout has no ops/ folder
    return path


def to_flat_path(path):
    match = _OPS_PATH.fullmatch(path)
    if match:
        return f"keras/src/backend/{match[1]}/{match[2]}.py"
    if re.fullmatch(rf"keras/src/backend/({_NAME})/ops/.*", path):
        return None  # ops/__init__.py: no counterpart
    return path


def _checked(path, data, convert, back):
    """Converts a file's bytes, checking that `back` gives them back."""
    if not path.endswith(".py"):
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KbbError(f"{path}: not a keras source file ({e})") from None
    result = convert(text)
    if back(result) != text:
        raise KbbError(
            f"{path}: the rewrite of the backends' module paths cannot be "
            "undone exactly for this file, so it has no exact counterpart in "
            "the other layout"
        )
    return result.encode("utf-8")


class FlatToOps:
    """Translator (see kbb.layouts) from the flat layout to the ops one."""

    def to_series(self, path, data):
        new = to_ops_path(path)
        if new is None:
            return None
        return new, _checked(path, data, to_ops_text, to_flat_text)

    def to_checkout(self, path, data):
        new = to_flat_path(path)
        if new is None:
            return None
        return new, _checked(path, data, to_flat_text, to_ops_text)
