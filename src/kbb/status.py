"""Where the workspace stands, per target of pins.toml: its checkout
(.upstream/TARGET), the commits that patches/ does not hold, the recorded
results (out/results/) and generated documents (docs/) that are stale and
why, and each patch group's pull request (out/pr/); with the state kbb
keeps in each checkout, its git config `kbb.*` and refs `refs/kbb/*`
(docs/workflow.md). It reads only: it takes no lock and writes nothing."""

import json
import re
from collections import Counter

from kbb import KbbError
from kbb import results
from kbb.git import config
from kbb.git import config_keys
from kbb.git import git
from kbb.git import in_progress
from kbb.git import rev
from kbb.pr import prepare
from kbb.upstream import keep
from kbb.upstream.apply import applied
from kbb.upstream.checkout import made_from
from kbb.upstream.checkout import source_of
from kbb.upstream.checkout import verify


def short(value):
    """A digest (40 or 64 hex digits) to its first 12; anything else whole.

    >>> short("8bbecfd3d424" + "0" * 52), short("keras-nightly")
    ('8bbecfd3d424', 'keras-nightly')
    """
    return value[:12] if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", value) else value


def arguments(parser):
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def main(ws, args):
    found = collect(ws)
    print(json.dumps(found, indent=1) if args.json else "\n".join(lines(found)))
    return 0


def collect(ws):
    """{"root", "targets": {target: its state}, "other": [stale results and
    documents of no pinned target]}."""
    pins = ws.pins()
    stale = {
        env: results.stale_builds(ws, found)
        for env, found in results.load_all(ws.results).items()
    }
    docs = {p: results.stamped(p.read_text()) for p in sorted(ws.docs.glob("*.md"))}
    other = [
        reason
        for builds in stale.values()
        for target, reason in builds.items()
        if target not in pins and reason
    ] + [
        f"{ws.shown(path)} was generated for {target}, which pins.toml does not pin"
        for path, targets in docs.items()
        for target in targets
        if target not in pins
    ]
    return {
        "root": str(ws.root),
        "targets": {t: _target(ws, pin, stale, docs) for t, pin in pins.items()},
        "other": other,
    }


def _target(ws, pin, stale, docs):
    try:
        groups, problem = ws.series(pin).groups, None
    except KbbError as e:
        groups, problem = [], str(e)
    return {
        "pin": pin.spec,
        "series": f"patches/{pin.series}/",
        "groups": groups,
        "series_problem": problem,
        "checkout": _checkout(ws, pin),
        "results": {
            env: builds[pin.target]
            for env, builds in stale.items()
            if pin.target in builds
        },
        "documents": {
            ws.shown(path): results.doc_staleness(ws, path, pin)
            for path, targets in docs.items()
            if pin.target in targets
        },
        "pr": prepare.summary(ws, pin),
    }


def _checkout(ws, pin):
    """The checkout's state, or None when there is none."""
    path = ws.checkout(pin.target)
    if not (path / ".git").is_dir():
        return None
    head = git("symbolic-ref", "-q", "--short", "HEAD", cwd=path, check=False)
    changed = git("--no-optional-locks", "status", "--porcelain", cwd=path)
    refs = git("for-each-ref", "--format=%(refname)", "refs/kbb/", cwd=path)
    kinds = Counter(ref.split("/")[2] for ref in refs.split())
    try:
        verify(path, pin)
        upto = applied(ws, pin)
        said = f"applied up to group {upto} only" if upto else "the series applied"
        if upto is None:
            said = f"not patches/{pin.series}/ as it is now (`kbb apply {pin.target}`)"
    except KbbError as e:
        said = str(e)
    source = source_of(path)
    return {
        "path": ws.shown(path),
        "source": source,
        "made_from": config(path, "kbb.pin"),
        "pinned": config(path, "kbb.pin") == made_from(pin, source),
        "head": head.stdout.strip() or f"detached at {(rev(path, 'HEAD') or '')[:12]}",
        "applied": said,
        "in_progress": in_progress(path),
        "uncommitted": len(changed.splitlines()),
        "unexported": keep.unexported(path),
        "config": config_keys(path),
        "refs": dict(kinds),
    }


def lines(found):
    """The plain text of `collect`'s state."""
    out = [f"workspace {found['root']}"]
    for target, state in found["targets"].items():
        groups = ", ".join(state["groups"]) or "none"
        out.append(f"{target}: {state['pin']}, {state['series']} (groups: {groups})")
        out += [f"  {label:<12} {text}" for label, text in _target_lines(state)]
    return out + [f"other: {line}" for line in found["other"]]


def _target_lines(state):
    """(label, text) of a target's state."""
    out = [("series", state["series_problem"])] if state["series_problem"] else []
    checkout = state["checkout"]
    out += _checkout_lines(checkout) if checkout else [("checkout", "none")]
    for label, key in (("result", "results"), ("document", "documents")):
        out += [(label, f"{k}: {why or 'current'}") for k, why in state[key].items()]
    for group, pr in state["pr"].items():
        said = "; ".join(pr.get("problems", []) + pr["stale"]) or "no problem found"
        branch = f"pr/{group} on {pr['based_on']}" if "based_on" in pr else "no branch"
        out.append(("pr", f"{group}: {branch}; {said}"))
    return out


def _checkout_lines(checkout):
    pin = "the pin" if checkout["pinned"] else "another pin than pins.toml's"
    out = [
        ("checkout", f"{checkout['path']}, {checkout['source']} of {pin}"),
        ("head", f"{checkout['head']}; {checkout['applied']}"),
        ("uncommitted", f"{checkout['uncommitted']} file(s)"),
    ]
    if checkout["in_progress"]:
        out.append(("in progress", checkout["in_progress"]))
    unexported = checkout["unexported"]
    out.append(("unexported", f"{len(unexported)} commit(s)"))
    out += [("", f"{line} (on {', '.join(on)})") for line, on in unexported.items()]
    config = " ".join(f"{k}={short(v)}" for k, v in checkout["config"].items())
    refs = ", ".join(f"{kind} {n}" for kind, n in checkout["refs"].items())
    return out + [("git config", config), ("refs/kbb/", refs or "none")]
