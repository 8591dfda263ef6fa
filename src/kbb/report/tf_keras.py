"""The named tables of docs/tf-keras.md that the tf-keras pull request's
texts show (pr/tf-keras/pr.toml [tables]), from the records of `tox -e
tf-keras-pristine,tf-keras-patched` in out/results/ (`kbb report
--tf-keras`), stamped with the series and pin they were measured on (`kbb
pr` marks a table stale when they change). A missing or stale result is
refused.

The tables name the builds by version and commit: the pinned release (its
git tag's commit, pins.toml) and the same release with this pull request.
"""

from kbb import KbbError
from kbb import markdown
from kbb import results
from kbb.files import write_text

ENVS = ("tf-keras-pristine", "tf-keras-patched")
DOC = "docs/tf-keras.md"
BEGIN = "<!-- begin: tables written by kbb report --tf-keras -->"
END = "<!-- end: tables written by kbb report --tf-keras -->"
LABELS = {"tf-keras-fused": "fused", "tf-keras-nonfused": "non-fused"}


def load(ws, directory, pin):
    """{env: records} of the current results."""
    found = {}
    for env in ENVS:
        state, line = results.status(ws, directory, env, pin)
        if state != "current":
            raise KbbError(f"{state}: {line}")
        found[env] = results.load(directory / f"{env}.json").records
    return found


def reproduction(builds, found, envs):
    figures = ("moving_variance", "biased_reference", "unbiased_reference")
    figures += ("data_variance",)
    rows = [
        [builds[env], *(f"{r[k]:.4f}" for k in figures)]
        for env in envs
        for r in found[env]
        if r.get("scenario") == "issue-8982"
    ]
    head = ["tf-keras", "`moving_variance`", "biased rule", "unbiased rule"]
    return head + ["variance of the data"], rows


def convergence(short, found, envs):
    cell = {
        (env, r["implementation"], r["n"]): r["converged"]
        for env in envs
        for r in found[env]
        if r.get("scenario") == "convergence"
    }
    columns = [(env, i) for env in envs for i in LABELS]
    head = ["n", "(n - 1) / n"]
    head += [f"{LABELS[i]}, {short[env]}" for env, i in columns]
    rows = []
    for n in sorted({k[2] for k in cell}):
        values = [cell.get((env, i, n)) for env, i in columns]
        cells = [f"{v:.4f}" if v is not None else "not measured" for v in values]
        rows.append([str(n), f"{(n - 1) / n:.4f}", *cells])
    return head, rows


def all_reduces(builds, short, found):
    """One row: the all-reduces per training call, without and with a mask."""
    head = ["all-reduces per call, without / with a mask"]
    head += [builds[ENVS[0]], short[ENVS[1]]]
    cells = []
    for env in ENVS:
        counts = []
        for mask in (False, True):
            match = [
                r["all_reduces_per_call"]
                for r in found[env]
                if r.get("scenario") == "synchronized-all-reduces"
                and r.get("mask") == mask
            ]
            counts.append(f"{match[0]:g}" if match else "not measured")
        cells.append(" / ".join(counts))
    return head, [["`synchronized=True`, `MirroredStrategy`, 2 replicas", *cells]]


def render(ws, pin, found):
    commit = (pin.git_commit or "")[:7]
    release = f"{pin.version} (`{commit}`)" if commit else pin.version
    builds = {ENVS[0]: release, ENVS[1]: f"{release} + this PR"}
    short = {ENVS[0]: pin.version, ENVS[1]: f"{pin.version} + this PR"}
    parts = [
        BEGIN,
        "",
        "Written by `tox -e tf-keras-tables` from the results of",
        "`tox -e tf-keras-pristine,tf-keras-patched`: do not edit.",
        "",
    ]
    named = {
        "tf-keras-reproduction-before": reproduction(builds, found, ENVS[:1]),
        "tf-keras-reproduction": reproduction(builds, found, ENVS),
        "tf-keras-convergence-before": convergence(short, found, ENVS[:1]),
        "tf-keras-convergence": convergence(short, found, ENVS),
        "tf-keras-all-reduces": all_reduces(builds, short, found),
    }
    for name, (head, rows) in named.items():
        parts += markdown.table(head, rows, name)
    parts += [results.stamp_line(ws, pin, "bessel"), END]
    return "\n".join(parts)


def write(ws, directory=None):
    """Writes the tables into DOC, between BEGIN and END; returns its path."""
    pin = ws.pin("tf-keras")
    path = ws.root / DOC
    text = path.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise KbbError(f"{DOC} needs one {BEGIN} and one {END}")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    found = load(ws, directory or ws.results, pin)
    return write_text(path, text[:start] + render(ws, pin, found) + text[end:])
