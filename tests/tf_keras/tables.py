"""Writes the named tables of docs/tf-keras.md that the tf-keras pull
request's texts show (pr/tf-keras/pr.toml [tables]), from the records of
`tox -e tf-keras-pristine,tf-keras-patched` in out/results/, and stamps the
document with the series and pin they were measured on (`kbb pr` marks a
table stale when they change). It refuses a missing or stale result.

The tables name the builds by version and commit: the pinned release (its
git tag's commit, pins.toml) and the same release with this pull request.

    python tests/tf_keras/tables.py        # tox -e tf-keras-tables
"""

import sys

from kbb import markdown
from kbb import results
from kbb.workspace import Workspace

ENVS = ("tf-keras-pristine", "tf-keras-patched")
DOC = "docs/tf-keras.md"
BEGIN = "<!-- begin: tables written by tests/tf_keras/tables.py -->"
END = "<!-- end: tables written by tests/tf_keras/tables.py -->"
LABELS = {"tf-keras-fused": "fused", "tf-keras-nonfused": "non-fused"}


def load(ws, pin):
    """{env: records} of the current results; exits on a missing or stale one."""
    found = {}
    for env in ENVS:
        state, line = results.status(ws, ws.results, env, pin)
        if state != "current":
            sys.exit(f"tests/tf_keras/tables.py: {state}: {line}")
        found[env] = results.load(ws.results / f"{env}.json").records
    return found


def reproduction(builds, found, env_list):
    rows = []
    for env in env_list:
        for r in found[env]:
            if r.get("scenario") == "issue-8982":
                rows.append(
                    [
                        builds[env],
                        f"{r['moving_variance']:.4f}",
                        f"{r['biased_reference']:.4f}",
                        f"{r['unbiased_reference']:.4f}",
                        f"{r['data_variance']:.4f}",
                    ]
                )
    head = [
        "tf-keras",
        "`moving_variance`",
        "biased rule",
        "unbiased rule",
        "variance of the data",
    ]
    return head, rows


def convergence(short, found, env_list):
    cell = {
        (env, r["implementation"], r["n"]): r["converged"]
        for env in env_list
        for r in found[env]
        if r.get("scenario") == "convergence"
    }
    columns = [(env, i) for env in env_list for i in LABELS]
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


def main():
    ws = Workspace.find()
    pin = ws.pin("tf-keras")
    path = ws.root / DOC
    text = path.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        sys.exit(f"tests/tf_keras/tables.py: {DOC} needs one {BEGIN} and one {END}")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    path.write_text(text[:start] + render(ws, pin, load(ws, pin)) + text[end:])
    print(f"tests/tf_keras/tables.py: wrote the tables of {DOC}")


if __name__ == "__main__":
    main()
