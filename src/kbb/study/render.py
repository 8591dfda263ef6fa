"""The page (markdown) and the plot (PNG) from the recorded results.

Every number on the page is read or computed from the results file here;
sentences that depend on the data are chosen by the data.
"""

import os
import string
from pathlib import Path

from kbb import markdown
from kbb.files import write_text
from kbb.results import stamp_of
from kbb.study import stats
from kbb.study.config import BUILDS

OLD, NEW = BUILDS
RESULTS = "study/results/impact.json"
# The page's prose, filled in by `page_text` (string.Template, as kbb.report).
TEMPLATE = Path(__file__).parents[1] / "templates" / "impact.md"


def _pp(value):
    return f"{100 * value:+.1f}"


def _num(value):
    return f"{value:+.3f}"


def _iv(iv, fmt):
    """An interval as 'mean [low, high]' (the mean alone with one pair).

    >>> _iv({"mean": 0.5, "low": 0.25, "high": 0.75}, _num)
    '+0.500 [+0.250, +0.750]'
    """
    if iv["low"] is None:
        return fmt(iv["mean"])
    return f"{fmt(iv['mean'])} [{fmt(iv['low'])}, {fmt(iv['high'])}]"


NAMES = {  # metric: (label, lower is better, format)
    "accuracy": ("accuracy (pp)", False, _pp),
    "nll": ("NLL (nats)", True, _num),
    "ece": ("ECE (pp)", True, _pp),
}


def _layers(values):
    return " / ".join(f"{v:.2f}" for v in values)


def _percents(by_build):
    return f"{100 * by_build[OLD]:.1f} / {100 * by_build[NEW]:.1f}"


def _both(by_build):
    """Each build's per-layer values, pristine's first."""
    return f"{_layers(by_build[OLD])}; {_layers(by_build[NEW])}"


def _table(header, rows, name=None):
    return "\n".join(markdown.table(header, rows, name)).rstrip("\n")


def score_table(rows, keys=("model", "batch_size"), name=None):
    """Inference-mode scores and paired differences (fix - pristine), one
    row per group of `keys`."""
    header = [k.replace("batch_size", "batch") for k in keys]
    header += f"n per BN layer | pairs | accuracy % ({OLD} / {NEW})".split(" | ")
    header += ["Δ accuracy, pp", "Δ NLL, nats", "Δ ECE, pp"]
    body = []
    for r in rows:
        n = " / ".join(map(str, r["n"]))
        d = [_iv(r["d_" + m], fmt) for m, (_, _, fmt) in NAMES.items()]
        body.append(
            [*(r[k] for k in keys), n, r["pairs"], _percents(r["accuracy"]), *d]
        )
    return _table(header, body, name)


def mechanism_table(rows):
    """What the rule changes inside the network, per model and batch size:
    layers first / second; inference and training mode on the same
    training samples."""
    header = (
        "model | batch | moving variance ratio fix / pristine (n/(n-1)) | "
        f"E[z²] inference ({OLD}; {NEW}) | E[z²] training mode | "
        f"E[abs z] inference ({OLD}; {NEW}) | E[abs z] training mode | "
        f"agreement % ({OLD} / {NEW})"
    )
    body = []
    for r in rows:
        ratio = zip(r["variance_ratio"], r["bessel"], strict=True)
        m2, m1 = r["moment_inference_train"], r["abs_inference_train"]
        body.append(
            [r["model"], r["batch_size"]]
            + [" / ".join(f"{m:.3f} ({b:.3f})" for m, b in ratio)]
            + [_both(m2), _layers(r["moment_training"][NEW])]
            + [_both(m1), _layers(r["abs_training"][NEW])]
            + [_percents(r["agreement"])]
        )
    return _table(header, body)


def pairing_table(results):
    header = (
        "backend | pairs (model, batch, seed) | bit-identical trainable weights | "
        "largest absolute difference | "
        "same training-mode accuracy and E[z²], E[abs z]"
    )
    body = []
    for backend, s in stats.pairing_summary(results).items():
        diff = "0" if s["max_abs_diff"] == 0 else f"{s['max_abs_diff']:.2e}"
        body.append([backend, s["pairs"], s["identical"], diff, s["same_training"]])
    return _table(header, body)


def settings_table(results):
    s = results["settings"]
    m = s["momentum"]
    steps = min(x["epochs_at_2"] * x["train_size"] // 2 for x in s["models"])
    builds = results["builds"].items()
    rows = {
        "builds": ", ".join(
            f"{k}: keras {b['keras']} (`--ref {b['ref']}`)" for k, b in builds
        ),
        "backends": ", ".join(s["backends"]),
        "models (data set, training split, optimizer steps per run)": ", ".join(
            f"{x['name']} ({x['dataset']}, {x['train_size']} training samples, "
            f"{x['epochs_at_2'] * x['train_size'] // 2} steps)"
            for x in s["models"]
        ),
        "batch sizes; seeds": f"{s['batch_sizes']}; {s['seeds']}",
        "epochs": "epochs at batch size 2 times batch / 2: the same number "
        "of optimizer steps at every batch size",
        "optimizer": f"{s['optimizer']}, learning rate {s['learning_rate']}",
        "BatchNormalization": f"momentum {m} (the default; no other momentum was "
        f"run), epsilon {s['epsilon']}; initial statistics left after the fewest "
        f"steps: {m}^{steps} = {m**steps:.2%}",
        "dense model": f"Dense({s['hidden']}, no bias)-BN-ReLU twice, "
        "Dense(classes, softmax)",
        "conv model": f"Conv2D({s['filters'][0]}, 3x3)-BN-ReLU, max-pool 2, "
        f"Conv2D({s['filters'][1]}, 3x3)-BN-ReLU, global average pool, "
        "Dense(10, softmax)",
        "ECE": f"{s['ece_bins']} equal-width bins of the top probability",
        "training-mode probes": f"{s['probe_size']} samples each, in batches of "
        "the run's batch size",
        "intervals": f"{s['interval']:.0%} Student t over the pairs (backend, "
        "seed) of a row: mean ± t·sd/√pairs",
        "versions": ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v),
    }
    return _table(["setting", "value"], rows.items())


def _split(rows, metric):
    """Rows where the fix is better, pristine is better, neither shown."""
    lower = NAMES[metric][1]
    better, worse = ("below 0", "above 0") if lower else ("above 0", "below 0")
    groups = ([], [], [])
    for r in rows:
        side = stats.sign(r["d_" + metric])
        groups[0 if side == better else 1 if side == worse else 2].append(r)
    return groups


def _where(rows, metric):
    """One phrase: which batch sizes show which build better."""
    fmt = NAMES[metric][2]
    better, worse, none = _split(rows, metric)
    parts = []
    for who, group in (("the fix", better), ("pristine", worse)):
        if group:
            cells = [f"{r['batch_size']} ({_iv(r['d_' + metric], fmt)})" for r in group]
            parts.append(f"{who} better at batch " + ", ".join(cells))
    if none:
        sizes = ", ".join(str(r["batch_size"]) for r in none)
        parts.append("no difference shown at batch " + sizes)
    return "; ".join(parts)


def _pairing_line(results):
    pairing = stats.pairing_summary(results).values()
    pairs = sum(s["pairs"] for s in pairing)
    same = sum(s["identical"] for s in pairing)
    if same == pairs:
        return (
            f"- **Same training, different statistic.** In all {pairs} pairs "
            "(model, backend, batch size, seed) both builds end with "
            "bit-identical trainable weights: training never reads the moving "
            "statistics, so each difference below comes from the moving "
            "variance alone."
        )
    worst = max(s["max_abs_diff"] for s in pairing)
    return (
        f"- **Pairing.** {same} of {pairs} pairs end with bit-identical "
        f"trainable weights; the largest difference is {worst:.2e} "
        "(see the pairing check)."
    )


def _count_line(pooled):
    parts = []
    for metric, (label, _, _) in NAMES.items():
        better, worse, none = map(len, _split(pooled, metric))
        parts.append(
            f"{label.split(' (')[0]}: the fix better in {better}, pristine "
            f"better in {worse}, no difference shown in {none}"
        )
    rows = len(pooled)
    return f"- **Over all {rows} (model, batch size) rows**: " + "; ".join(parts) + "."


def _inside(r):
    """A row's normalized values, both builds' and training mode's."""
    m2, m1 = r["moment_inference_train"], r["abs_inference_train"]
    return (
        f"{r['model']} at batch {r['batch_size']}: E[z²] {_layers(m2[OLD])} "
        f"({OLD}), {_layers(m2[NEW])} ({NEW}), "
        f"{_layers(r['moment_training'][NEW])} (training mode); "
        f"E[abs z] {_layers(m1[OLD])}, {_layers(m1[NEW])}, "
        f"{_layers(r['abs_training'][NEW])}"
    )


def headline(results, pooled):
    """Bullets chosen by the data: the pairing, the counts, each model's
    intervals, and the normalized values at the smallest batch size."""
    lines, inside = [_pairing_line(results), _count_line(pooled)], []
    for model in dict.fromkeys(r["model"] for r in pooled):
        rows = [r for r in pooled if r["model"] == model]
        parts = [f"{label}: {_where(rows, m)}" for m, (label, _, _) in NAMES.items()]
        lines.append(f"- **{model}**: " + ". ".join(parts) + ".")
        inside.append(_inside(rows[0]))
    lines.append(
        "- **Inside the network** (layers first / second, inference mode "
        "against training mode on the same training samples): "
        + ". ".join(inside)
        + "."
    )
    return "\n".join(lines)


def page_text(results, plot_name):
    """The page's markdown; `plot_name`: the plot's path from the page."""
    pooled = stats.summarize(results, ("model", "batch_size"))
    detail = stats.summarize(results, ("model", "backend", "batch_size"))
    backends = results["settings"]["backends"]
    # kbb's stamp of the fix's build (none in a record without its digests):
    # `kbb pr` quotes the page's tables only while series and pin are those.
    digests = [results["builds"][NEW].get(k) for k in ("group", "series", "pin")]
    return string.Template(TEMPLATE.read_text()).substitute(
        quick="\n**Smoke run (`--quick`): too few steps to mean anything.**\n"
        if results["quick"]
        else "",
        backends=", ".join(backends),
        old=results["builds"][OLD]["keras"],
        new=results["builds"][NEW]["keras"],
        count=len(backends),
        results=RESULTS,
        headline=headline(results, pooled),
        pairing=pairing_table(results),
        scores=score_table(pooled, name="impact"),
        mechanism=mechanism_table(pooled),
        detail=score_table(detail, ("model", "backend", "batch_size")),
        settings=settings_table(results),
        plot=plot_name,
        worker_minutes=f"{results['worker_minutes']:.0f}",
        jobs=results["jobs"],
        stamp=f"\n\n{stamp_of('keras', *digests)}" if digests[1] else "",
    )


def write(results, page, plot):
    """Writes the plot (matplotlib, imported here only) and the page."""
    from kbb.study import plot as plotting

    plotting.draw(results, plot)
    write_text(page, page_text(results, os.path.relpath(plot, page.parent)))
