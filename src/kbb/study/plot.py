"""The plot: per model (columns), the paired differences of accuracy and
NLL with their intervals (pooled over backends, and each backend's mean),
and the first BN layer's E[z²] at inference against training mode."""

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402

from kbb.study import stats  # noqa: E402
from kbb.study.config import BUILDS  # noqa: E402

OLD, NEW = BUILDS
MARKERS = {"tensorflow": "s", "jax": "^", "torch": "v"}
DIFFERENCES = {  # metric: (scale, axis label)
    "accuracy": (100, "Δ accuracy (fix − pristine), pp"),
    "nll": (1, "Δ NLL (fix − pristine), nats"),
}


def _differences(ax, pooled, detail, metric):
    scale, axis = DIFFERENCES[metric]
    xs = range(len(pooled))
    ivs = [r["d_" + metric] for r in pooled]
    mean = [scale * iv["mean"] for iv in ivs]
    # Error bars: the distances from the mean to the interval's ends (0: one pair).
    yerr = [
        [0.0 if iv["low"] is None else scale * abs(iv[end] - iv["mean"]) for iv in ivs]
        for end in ("low", "high")
    ]
    ax.axhline(0, color="grey", linewidth=0.8)
    label = "all backends, 95 % interval"
    ax.errorbar(xs, mean, yerr=yerr, fmt="o", color="black", capsize=3, label=label)
    for i, backend in enumerate(MARKERS):
        rows = [r for r in detail if r["backend"] == backend]
        if rows:
            shifted = [x + 0.12 * (i - 1) for x in xs]
            means = [scale * r["d_" + metric]["mean"] for r in rows]
            style = {"markersize": 4, "alpha": 0.6, "label": backend}
            ax.plot(shifted, means, MARKERS[backend], **style)
    ax.set_xticks(list(xs), [str(r["batch_size"]) for r in pooled])
    ax.set_ylabel(axis)


def _moments(ax, pooled):
    xs = range(len(pooled))
    for build, style in ((OLD, "o-"), (NEW, "s-")):
        values = [r["moment_inference_train"][build][0] for r in pooled]
        ax.plot(xs, values, style, label=f"inference, {build}")
    training = [r["moment_training"][NEW][0] for r in pooled]
    ax.plot(xs, training, "k--", label="training mode")
    ax.set_xticks(list(xs), [str(r["batch_size"]) for r in pooled])
    ax.set_ylabel("E[z²], first BN layer")
    ax.set_xlabel("batch size")


def draw(results, path):
    """Writes the plot of `results` to `path` (PNG)."""
    pooled = stats.summarize(results, ("model", "batch_size"))
    detail = stats.summarize(results, ("model", "backend", "batch_size"))
    models = list(dict.fromkeys(r["model"] for r in pooled))
    size = (4.2 * len(models), 9)
    fig, axes = plt.subplots(3, len(models), figsize=size, squeeze=False)
    for col, model in enumerate(models):
        rows = [r for r in pooled if r["model"] == model]
        sub = [r for r in detail if r["model"] == model]
        for row, metric in enumerate(DIFFERENCES):
            _differences(axes[row][col], rows, sub, metric)
        _moments(axes[2][col], rows)
        axes[0][col].set_title(model)
    axes[0][0].legend(fontsize=7)
    axes[2][0].legend(fontsize=7)
    builds = " vs ".join(b["keras"] for b in results["builds"].values())
    fig.suptitle("keras " + builds, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
