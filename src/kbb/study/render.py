"""The page (markdown) and the plot (PNG) from the recorded results.

Every number on the page is read or computed from the results file here;
sentences that depend on the data are chosen by the data.
"""

import os

from kbb.study import stats
from kbb.study.config import BUILDS
from kbb.study.texts import PAGE
from kbb.study.texts import READING
from kbb.study.texts import REGENERATE

OLD, NEW = BUILDS
RESULTS = "study/results/impact.json"


def _pp(value):
    return f"{100 * value:+.1f}"


def _num(value):
    return f"{value:+.3f}"


def _iv(iv, fmt):
    if iv["low"] is None:
        return fmt(iv["mean"])
    return f"{fmt(iv['mean'])} [{fmt(iv['low'])}, {fmt(iv['high'])}]"


def _layers(values, digits=2):
    return " / ".join(f"{v:.{digits}f}" for v in values)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def score_table(rows, with_backend=False):
    """Inference-mode scores and paired differences (fix - pristine)."""
    header = (
        ["model"]
        + ["backend"] * with_backend
        + [
            "batch",
            "n per BN layer",
            "pairs",
            f"accuracy % ({OLD} / {NEW})",
            "Δ accuracy, pp",
            "Δ NLL, nats",
            "Δ ECE, pp",
        ]
    )
    body = []
    for r in rows:
        acc = r["accuracy"]
        body.append(
            [r["model"]]
            + ([r["backend"]] if with_backend else [])
            + [
                r["batch_size"],
                " / ".join(str(n) for n in r["n"]),
                r["pairs"],
                f"{100 * acc[OLD]:.1f} / {100 * acc[NEW]:.1f}",
                _iv(r["d_accuracy"], _pp),
                _iv(r["d_nll"], _num),
                _iv(r["d_ece"], _pp),
            ]
        )
    return table(header, body)


def mechanism_table(rows):
    """What the rule changes inside the network, per model and batch size:
    layers first / second; inference and training mode on the same
    training samples."""
    header = [
        "model",
        "batch",
        "moving variance ratio fix / pristine (n/(n-1))",
        f"E[z²] inference ({OLD}; {NEW})",
        "E[z²] training mode",
        f"E[abs z] inference ({OLD}; {NEW})",
        "E[abs z] training mode",
        f"agreement % ({OLD} / {NEW})",
    ]
    body = []
    for r in rows:
        ratio = " / ".join(
            f"{m:.3f} ({b:.3f})"
            for m, b in zip(r["variance_ratio"], r["bessel"], strict=True)
        )
        m2 = r["moment_inference_train"]
        m1 = r["abs_inference_train"]
        agree = r["agreement"]
        body.append(
            [
                r["model"],
                r["batch_size"],
                ratio,
                f"{_layers(m2[OLD])}; {_layers(m2[NEW])}",
                _layers(r["moment_training"][NEW]),
                f"{_layers(m1[OLD])}; {_layers(m1[NEW])}",
                _layers(r["abs_training"][NEW]),
                f"{100 * agree[OLD]:.1f} / {100 * agree[NEW]:.1f}",
            ]
        )
    return table(header, body)


def pairing_table(results):
    body = [
        [
            backend,
            s["pairs"],
            s["identical"],
            "0" if s["max_abs_diff"] == 0 else f"{s['max_abs_diff']:.2e}",
            s["same_training"],
        ]
        for backend, s in stats.pairing_summary(results).items()
    ]
    header = [
        "backend",
        "pairs (model, batch, seed)",
        "bit-identical trainable weights",
        "largest absolute difference",
        "same training-mode accuracy and E[z²], E[abs z]",
    ]
    return table(header, body)


def settings_table(results):
    s = results["settings"]
    m = s["momentum"]
    models = ", ".join(
        f"{x['name']} ({x['dataset']}, {x['train_size']} training samples, "
        f"{x['epochs_at_2'] * x['train_size'] // 2} steps)"
        for x in s["models"]
    )
    steps = min(x["epochs_at_2"] * x["train_size"] // 2 for x in s["models"])
    rows = [
        [
            "builds",
            ", ".join(
                f"{k}: keras {b['keras']} (`--ref {b['ref']}`)"
                for k, b in results["builds"].items()
            ),
        ],
        ["backends", ", ".join(s["backends"])],
        ["models (data set, training split, optimizer steps per run)", models],
        ["batch sizes; seeds", f"{s['batch_sizes']}; {s['seeds']}"],
        [
            "epochs",
            "epochs at batch size 2 times batch / 2: the same number "
            "of optimizer steps at every batch size",
        ],
        ["optimizer", f"{s['optimizer']}, learning rate {s['learning_rate']}"],
        [
            "BatchNormalization",
            f"momentum {m} (the default; no other momentum was run), epsilon "
            f"{s['epsilon']}; initial statistics left after the fewest steps: "
            f"{m}^{steps} = {m**steps:.2%}",
        ],
        [
            "dense model",
            f"Dense({s['hidden']}, no bias)-BN-ReLU twice, Dense(classes, softmax)",
        ],
        [
            "conv model",
            f"Conv2D({s['filters'][0]}, 3x3)-BN-ReLU, max-pool 2, "
            f"Conv2D({s['filters'][1]}, 3x3)-BN-ReLU, global average pool, "
            "Dense(10, softmax)",
        ],
        ["ECE", f"{s['ece_bins']} equal-width bins of the top probability"],
        [
            "training-mode probes",
            f"{s['probe_size']} samples each, in batches of the run's batch size",
        ],
        [
            "intervals",
            f"{s['interval']:.0%} Student t over the pairs "
            "(backend, seed) of a row: mean ± t·sd/√pairs",
        ],
        [
            "versions",
            ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v),
        ],
    ]
    return table(["setting", "value"], rows)


NAMES = {  # metric: (label, lower is better, format)
    "accuracy": ("accuracy (pp)", False, _pp),
    "nll": ("NLL (nats)", True, _num),
    "ece": ("ECE (pp)", True, _pp),
}


def _split(rows, metric):
    """Rows where the fix is better, pristine is better, neither shown."""
    lower = NAMES[metric][1]
    better, worse, none = [], [], []
    for r in rows:
        side = stats.sign(r["d_" + metric])
        if side == ("below 0" if lower else "above 0"):
            better.append(r)
        elif side == ("above 0" if lower else "below 0"):
            worse.append(r)
        else:
            none.append(r)
    return better, worse, none


def _where(rows, metric):
    """One phrase: which batch sizes show which build better."""
    fmt = NAMES[metric][2]
    better, worse, none = _split(rows, metric)

    def cells(group):
        return ", ".join(
            f"{r['batch_size']} ({_iv(r['d_' + metric], fmt)})" for r in group
        )

    parts = []
    if better:
        parts.append("the fix better at batch " + cells(better))
    if worse:
        parts.append("pristine better at batch " + cells(worse))
    if none:
        sizes = ", ".join(str(r["batch_size"]) for r in none)
        parts.append("no difference shown at batch " + sizes)
    return "; ".join(parts)


def _pairing_line(results):
    pairing = stats.pairing_summary(results)
    pairs = sum(s["pairs"] for s in pairing.values())
    same = sum(s["identical"] for s in pairing.values())
    if same == pairs:
        return (
            f"- **Same training, different statistic.** In all {pairs} pairs "
            "(model, backend, batch size, seed) both builds end with "
            "bit-identical trainable weights: training never reads the moving "
            "statistics, so each difference below comes from the moving "
            "variance alone."
        )
    worst = max(s["max_abs_diff"] for s in pairing.values())
    return (
        f"- **Pairing.** {same} of {pairs} pairs end with bit-identical "
        f"trainable weights; the largest difference is {worst:.2e} "
        "(see the pairing check)."
    )


def _count_line(pooled):
    parts = []
    for metric, (label, _, _) in NAMES.items():
        better, worse, none = _split(pooled, metric)
        parts.append(
            f"{label.split(' (')[0]}: the fix better in {len(better)}, "
            f"pristine better in {len(worse)}, no difference shown in "
            f"{len(none)}"
        )
    return (
        f"- **Over all {len(pooled)} (model, batch size) rows**: "
        + "; ".join(parts)
        + "."
    )


def _inside_line(pooled):
    """The first rows' (smallest batch size) normalized values, per model."""
    parts = []
    for model in dict.fromkeys(r["model"] for r in pooled):
        r = next(x for x in pooled if x["model"] == model)
        m2, m1 = r["moment_inference_train"], r["abs_inference_train"]
        parts.append(
            f"{model} at batch {r['batch_size']}: E[z²] {_layers(m2[OLD])} "
            f"({OLD}), {_layers(m2[NEW])} ({NEW}), "
            f"{_layers(r['moment_training'][NEW])} (training mode); "
            f"E[abs z] {_layers(m1[OLD])}, {_layers(m1[NEW])}, "
            f"{_layers(r['abs_training'][NEW])}"
        )
    return (
        "- **Inside the network** (layers first / second, inference mode "
        "against training mode on the same training samples): " + ". ".join(parts) + "."
    )


def headline(results, pooled):
    """Bullets chosen by the data: the pairing, the counts, each model's
    intervals, and the normalized values at the smallest batch size."""
    lines = [_pairing_line(results), _count_line(pooled)]
    for model in dict.fromkeys(r["model"] for r in pooled):
        rows = [r for r in pooled if r["model"] == model]
        parts = [
            f"{label}: {_where(rows, metric)}"
            for metric, (label, _, _) in NAMES.items()
        ]
        lines.append(f"- **{model}**: " + ". ".join(parts) + ".")
    lines.append(_inside_line(pooled))
    return "\n".join(lines)


def page_text(results, plot_name):
    """The page's markdown; `plot_name`: the plot's path from the page."""
    pooled = stats.summarize(results, ("model", "batch_size"))
    detail = stats.summarize(results, ("model", "backend", "batch_size"))
    quick = (
        "\n**Smoke run (`--quick`): too few steps to mean anything.**\n"
        if results["quick"]
        else ""
    )
    backends = results["settings"]["backends"]
    return PAGE.format(
        quick=quick,
        backends=", ".join(backends),
        old=results["builds"][OLD]["keras"],
        new=results["builds"][NEW]["keras"],
        count=len(backends),
        results=RESULTS,
        headline=headline(results, pooled),
        pairing=pairing_table(results),
        scores=score_table(pooled),
        mechanism=mechanism_table(pooled),
        reading=READING,
        detail=score_table(detail, with_backend=True),
        settings=settings_table(results),
        plot=plot_name,
        regenerate=REGENERATE.format(results=RESULTS),
        worker_minutes=f"{results['worker_minutes']:.0f}",
        jobs=results["jobs"],
        stamp=stamp(results["builds"][NEW]),
    )


def stamp(build):
    """The kbb stamp of the fix's build that the study measured (none for a
    record that lacks its digests): `kbb pr` quotes the page's tables only
    while the series and the pin are still those."""
    if not build.get("series"):
        return ""
    from kbb.results import stamp_of

    return (
        "\n" + stamp_of("keras", build["group"], build["series"], build["pin"]) + "\n"
    )


def write(results, page, plot):
    """Writes the plot (matplotlib, imported here only) and the page."""
    from kbb.study import plot as plotting

    pooled = stats.summarize(results, ("model", "batch_size"))
    detail = stats.summarize(results, ("model", "backend", "batch_size"))
    plotting.draw(results, pooled, detail, plot)
    page.write_text(page_text(results, os.path.relpath(plot, page.parent)))
