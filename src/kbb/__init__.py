"""keras-bn-bessel's tooling: pinned upstreams and their patch series.

The pipeline, one module per job (`kbb --help` lists the commands):

- `workspace`: every path of the workspace; `pins`: pins.toml;
- `git`: git without the user's configuration, with a fixed identity;
- `series`: the patch series as text (patches/SERIES/);
- `fetch`: all network and pip code (sdists, clones, the index);
- `checkout`, `am`, `apply`, `export`: the upstream checkout .upstream/TARGET,
  its refs, the one `git am` loop; `layouts`, `mirror` and the translators
  `keras_layout`, `tf_keras_layout`: a series kept in another layout;
- `build`, `wheelfile`: wheels of a branch, and their install;
- `results`: the tests' recorded figures and their staleness;
- `markdown`: tables with names; `report`: docs/analysis.md;
- `pr`: the upstream pull requests (checks, texts, push);
- `bench*`: the benchmarks (`benchbuilds` the builds side by side,
  `benchcount` the exact counters, `bench` the timings, `benchstats`,
  `benchreport`, `benchtables`, `benchrecord`, `benchagg` their statistics,
  records and aggregate); `cli`: the `kbb` command.
"""

import re
import sys


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


def log(message):
    """A progress line on stderr, with credentials redacted."""
    print(f"kbb: {redact(message)}", file=sys.stderr, flush=True)
