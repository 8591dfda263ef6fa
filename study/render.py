"""The page (markdown) and the plot (PNG) from the recorded results.

Every number on the page is read or computed from the results file here;
sentences that depend on the data are chosen by the data.
"""

import os

from study import stats
from study.config import BUILDS

OLD, NEW = BUILDS
RESULTS = "study/results/impact.json"
REGENERATE = """\
```sh
tox -e impact                 # trains every run, writes {results},
                              # docs/impact.md and docs/impact.png
tox -e impact -- --render-only   # only rewrites the page and the plot
tox -e impact-quick           # smoke test: a small grid under a temporary folder
```

`tox -e impact` builds the two wheels with `python -m kbb wheel keras
--ref REF` (`study/config.py` names the refs), unpacks each, and runs one
worker process per build, backend and model with the unpacked wheel first on
`PYTHONPATH` (`study/worker.py`). The workers' outputs stay under
`out/impact/runs/` (a run that stops resumes there; `--jobs 2` runs two
workers at a time). `study/results/impact.json` is the only input of this
page and of the plot, and is committed with them."""


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
    from study import plot as plotting

    pooled = stats.summarize(results, ("model", "batch_size"))
    detail = stats.summarize(results, ("model", "backend", "batch_size"))
    plotting.draw(results, pooled, detail, plot)
    page.write_text(page_text(results, os.path.relpath(plot, page.parent)))


READING = """\
How to read it:

- **A factor close to 1 changes nothing.** With n values per channel the
  two builds' inference outputs differ by the factor sqrt(n/(n - 1)) before
  gamma; in the conv net n is the batch size times the pixels of a feature
  map (64 for the first BN layer, 16 for the second, after pooling), so at
  batch size 2 the factor is 1.004 and 1.016, and smaller above.
- **At n = 2 neither rule reproduces what training saw.** In training mode a
  channel of a batch of two values normalizes to -1 and +1 exactly (less
  epsilon's share): the layers after it learn on a two-point code, with
  E[abs z] = E[z²] = 1. At inference z is spread out instead. The fix gives
  the first BN layer the mean square of training (E[z²] near 1), and so a
  smaller mean absolute value (0.80 for a normal z); after the ReLU the
  next layer's inputs are smaller than in training, and so on to the
  logits: predictions become less confident. The old rule halves the
  variance: E[z²] near 2, a mean absolute value near 1 (1.13 for a normal
  z), larger logits, more confident predictions. Which one scores better is
  an empirical matter, not a consequence of the estimate being unbiased; the
  table gives both layers' values, and the NLL and ECE columns show which
  way the confidence moved. The same mechanism acts, weaker, at n = 4 and
  8 (factors 1.15 and 1.07).
- **The comparison isolates the moving-variance rule.** Both builds train
  the same weights (pairing check), so every difference is the
  inference-time effect of the moving variance; training-mode predictions,
  which do not read it, are the same in both builds.
"""

PAGE = """\
# What the fix changes on real data

<!-- Generated by `python -m study` (`tox -e impact`) from {results}:
     do not edit. -->
{quick}
Keras {old} (pristine) against {new} (the fix), trained on scikit-learn's
bundled data sets, on the backends {backends}. Each pair is one backend
and one seed, trained once by each build; the differences are fix minus
pristine, with Student t intervals over the pairs. Scores are of inference
mode (`model.predict`) on the test split.

## Headline

Paired differences fix - pristine with their 95 % intervals; "no
difference shown" means the interval holds 0.

{headline}

## Pairing check

{pairing}

## Scores, per model and batch size (pairs pooled over the {count} backends)

<!-- table: impact -->
{scores}

![paired differences and second moments]({plot})

## What the rule changes inside the network

z is a BN layer's normalized value `(x - mean) / sqrt(var + epsilon)`,
before gamma and beta; E[z²] and E[abs z] are its mean square and mean
absolute value over all values and channels (layers listed first / second),
on the same training samples in inference mode (the moving statistics) and
in training mode (each batch's own statistics, batches of the run's size).
In training mode E[z²] is 1 by construction, a little less where a
channel's batch variance is not large against epsilon. At inference, the
biased rule's moving variance is about (n - 1)/n of the data's, so its
normalized values are about sqrt(n/(n - 1)) times the fix's: 1.41 at n = 2,
1.016 at n = 32. The agreement
column compares the class predicted in training mode (a subset of the test
split, in batches of the run's size) with inference mode's.

{reading}

{mechanism}

## Per backend

{detail}

## Settings

{settings}

## Regenerate

{regenerate}

The recorded run's workers took {worker_minutes} minutes of wall clock
together ({jobs} at a time, on 2 CPU cores shared with other work).
{stamp}"""
