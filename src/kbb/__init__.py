"""keras-bn-bessel's tooling: pinned upstreams and their patch series.

Packages by job, on levels: a module imports only from the levels below
its own (`kbb --help` lists the commands):

9. `kbb.cli`: the one command, every job a subcommand;
8. `kbb.study`: what the fix changes for models retrained with it;
7. `kbb.bench`: timings, exact counters, run records, their aggregate;
   `kbb.mutants`: the tests must catch every plausible wrong fix;
   `kbb.status`: where the workspace stands;
6. `kbb.pr`: the upstream pull requests; `kbb.build`: wheels, installs;
5. `kbb.upstream`: the patch queue on a pinned upstream checkout (fetch,
   checkout, am, apply, export, mirror, keep);
4. `kbb.workspace`: every path; `kbb.report`: docs/analysis.md;
3. `kbb.pins`, `kbb.results`, `kbb.series`, `kbb.layout`: the models
   (pins, recorded figures, the series as text, layout translation);
2. `kbb.git`: git plumbing, without the user's configuration;
1. this module (errors, logging, the backends), `kbb.markdown` (the one
   table writer), `kbb.files`, `kbb.lock`, `kbb.wheelfile`.
"""

import re
import sys

# The Keras backends the workspace builds, tests and measures (keras'
# backend packages are kbb.layout.keras.BACKEND_PACKAGES).
BACKENDS = ("tensorflow", "jax", "torch")


class KbbError(Exception):
    """A failure reported to the user as one line, without a traceback."""


# user:password@, user@ with a token, and token query parameters.
_CREDENTIALS = (
    (re.compile(r"(?<=://)[^/@\s]+@"), "***@"),
    (
        re.compile(r"(?i)([?&](?:access_)?token=|[?&]private_token=)[^&#\s]+"),
        r"\1***",
    ),
)


def redact(text):
    """`text` with the credentials of every URL in it replaced by ***."""
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, str(text))
    return text


_VERBOSITY = [1]


def set_verbosity(level):
    """0: errors only (-q); 1: progress (the default); 2: also details
    such as each git command (-v)."""
    _VERBOSITY[0] = level


def log(message, level=1):
    """A line on stderr with the one prefix `kbb: `, credentials redacted;
    shown when the verbosity is at least `level` (0: always)."""
    if level <= _VERBOSITY[0]:
        print(f"kbb: {redact(message)}", file=sys.stderr, flush=True)
