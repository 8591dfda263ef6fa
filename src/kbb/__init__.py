"""keras-bn-bessel workspace tooling: pinned upstreams and their patch series.

- `pins`: the declarative pins (pins.toml).
- `gitops`: every git and patch mechanic (fetch, apply, export).
- `build`: wheels from a branch of an upstream checkout.
- `report`: docs/analysis.md from the tests' recorded figures.
- `cli`: the thin command-line front, `python -m kbb`.
"""


class KbbError(Exception):
    """A failure reported to the user as one line, without a traceback."""
