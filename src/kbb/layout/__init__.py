"""How a target lays out its files, and the translation between layouts.

A pin names three layouts: the sdist's, the git repository's and the stored
series'. When the checkout's layout differs from the series', `kbb apply` and
`kbb export` go through a mirror of the checkout in the series' layout (see
`kbb.upstream.mirror`), translating whole files with a `Translator`:

- `to_series(path, data)` maps a checkout file to the series layout,
- `to_checkout(path, data)` maps it back,

each returning `(path, data)`, or None for a file that has no counterpart in
the other layout (it is left out of the mirror, and a patch touching it fails
with a clear error).
"""

from kbb import KbbError
from kbb.layout import keras
from kbb.layout import tf_keras

# (checkout layout, series layout) -> translator class.
TRANSLATORS = {
    ("keras-flat", "keras-ops"): keras.FlatToOps,
    ("tf-keras-sdist", "tf-keras-git"): tf_keras.SdistToGit,
}
# Layouts generated from upstream's repository (tf-keras' sdist rewrites its
# imports): its own linters are not run on them, but on the series' layout.
GENERATED = {"tf-keras-sdist"}
# Layouts whose checkout `pip wheel` cannot build, and why.
NO_WHEEL = {
    "tf-keras-git": (
        "tf-keras' repository has no setup.py: its wheel is made by Bazel and "
        "pip_build.py, which generate the API files that the sdist ships"
    ),
}


def translator(checkout_layout, series_layout):
    """Returns a translator, or None when the layouts are the same."""
    if checkout_layout == series_layout:
        return None
    try:
        return TRANSLATORS[checkout_layout, series_layout]()
    except KeyError:
        raise KbbError(
            f"no translation from the {checkout_layout!r} layout to the "
            f"{series_layout!r} layout"
        ) from None
