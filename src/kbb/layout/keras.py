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

BACKEND_PACKAGES = ("jax", "numpy", "openvino", "tensorflow", "torch")
MODULES = ("core", "image", "linalg", "math", "nn", "numpy")

_NAME = "|".join(BACKEND_PACKAGES)
_MOD = "|".join(MODULES)
_MODULE_PATH = re.compile(rf"keras/src/backend/({_NAME})/(ops/)?({_MOD})\.py")
_OPS_FOLDER = re.compile(rf"keras/src/backend/({_NAME})/ops/.*")
# (flat spelling, ops spelling) of each reference: a regular expression
# whose groups are the backend (NAME) and the module (MOD), {ops} where the
# ops layout has `ops.` (or `.ops`); a module path ends where no identifier
# character follows.
_SPELLINGS = (
    (
        rf"\bkeras\.src\.backend\.({_NAME})\.{{ops}}({_MOD})(?![\w])",
        "keras.src.backend.{1}.{ops}{2}",
    ),
    (
        rf"\bfrom keras\.src\.backend\.({_NAME}){{dot_ops}} import ({_MOD})\b",
        "from keras.src.backend.{1}{dot_ops} import {2}",
    ),
    # `backend.nn.moments(...)`, and `hasattr(backend.nn, "...")` too.
    (rf"(?<![\w])(?<!src\.)backend\.{{ops}}({_MOD})(?![\w])", "backend.{ops}{1}"),
)


def _rules(ops):
    """[(pattern, replacement)] that rewrite the other layout's spellings
    into the ops layout's (`ops`) or the flat layout's (not `ops`)."""
    rules = []
    for pattern, spelling in _SPELLINGS:
        source = {"ops": "" if ops else "ops\\.", "dot_ops": "" if ops else "\\.ops"}
        target = {"ops": "ops." if ops else "", "dot_ops": ".ops" if ops else ""}
        replacement = spelling.format("", r"\1", r"\2", **target)
        rules.append((re.compile(pattern.format(**source)), replacement))
    return rules


_TO_OPS = _rules(ops=True)
_TO_FLAT = _rules(ops=False)


def _rewrite(text, rules):
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def to_ops_text(text):
    """A flat-layout file as the ops layout spells it.

    >>> to_ops_text("from keras.src.backend.torch import nn; backend.nn.moments")
    'from keras.src.backend.torch.ops import nn; backend.ops.nn.moments'
    """
    return _rewrite(text, _TO_OPS)


def to_flat_text(text):
    """An ops-layout file as the flat layout spells it."""
    return _rewrite(text, _TO_FLAT)


def module_path(path, ops):
    """`path` in the ops layout (`ops`) or in the flat one; None for a file
    of an ops/ folder that has no counterpart (its __init__.py).

    >>> module_path("keras/src/backend/jax/nn.py", ops=True)
    'keras/src/backend/jax/ops/nn.py'
    >>> module_path("keras/src/backend/jax/ops/__init__.py", ops=False) is None
    True
    """
    match = _MODULE_PATH.fullmatch(path)
    if match and bool(match[2]) != ops:
        return f"keras/src/backend/{match[1]}/{'ops/' if ops else ''}{match[3]}.py"
    if _OPS_FOLDER.fullmatch(path):
        return None
    return path


def _translate(path, data, ops):
    """(path, bytes) of a file in the other layout, checking that the way
    back gives the file back; None when it has no counterpart."""
    new = module_path(path, ops)
    if new is None or not path.endswith(".py"):
        return None if new is None else (new, data)
    convert, back = (to_ops_text, to_flat_text) if ops else (to_flat_text, to_ops_text)
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
    return new, result.encode("utf-8")


class FlatToOps:
    """Translator (see kbb.layout) from the flat layout to the ops one."""

    def to_series(self, path, data):
        return _translate(path, data, ops=True)

    def to_checkout(self, path, data):
        return _translate(path, data, ops=False)
