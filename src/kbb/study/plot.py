"""The plot: per model (columns), the paired differences of accuracy and
NLL with their intervals (pooled over backends, and each backend's mean),
and the first BN layer's E[z²] at inference against training mode."""

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402

from kbb.study.config import BUILDS  # noqa: E402

OLD, NEW = BUILDS
MARKERS = {"tensorflow": "s", "jax": "^", "torch": "v"}


def _differences(ax, pooled, detail, metric, scale, label):
    sizes = [r["batch_size"] for r in pooled]
    xs = range(len(sizes))
    ivs = [r["d_" + metric] for r in pooled]
    mean = [scale * iv["mean"] for iv in ivs]
    # Error bars: distances to the interval's ends (none with one pair).
    low = [
        scale * (iv["mean"] - (iv["low"] if iv["low"] is not None else iv["mean"]))
        for iv in ivs
    ]
    high = [
        scale * ((iv["high"] if iv["high"] is not None else iv["mean"]) - iv["mean"])
        for iv in ivs
    ]
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.errorbar(
        xs,
        mean,
        yerr=[low, high],
        fmt="o",
        color="black",
        capsize=3,
        label="all backends, 95 % interval",
    )
    for i, backend in enumerate(MARKERS):
        rows = [r for r in detail if r["backend"] == backend]
        if rows:
            ax.plot(
                [x + 0.12 * (i - 1) for x in xs],
                [scale * r["d_" + metric]["mean"] for r in rows],
                MARKERS[backend],
                markersize=4,
                alpha=0.6,
                label=backend,
            )
    ax.set_xticks(list(xs), [str(s) for s in sizes])
    ax.set_ylabel(label)


def _moments(ax, pooled):
    sizes = [r["batch_size"] for r in pooled]
    xs = range(len(sizes))
    for build, style in ((OLD, "o-"), (NEW, "s-")):
        ax.plot(
            xs,
            [r["moment_inference_train"][build][0] for r in pooled],
            style,
            label=f"inference, {build}",
        )
    ax.plot(
        xs, [r["moment_training"][NEW][0] for r in pooled], "k--", label="training mode"
    )
    ax.set_xticks(list(xs), [str(s) for s in sizes])
    ax.set_ylabel("E[z²], first BN layer")
    ax.set_xlabel("batch size")


def draw(results, pooled, detail, path):
    models = list(dict.fromkeys(r["model"] for r in pooled))
    fig, axes = plt.subplots(
        3, len(models), figsize=(4.2 * len(models), 9), squeeze=False
    )
    for col, model in enumerate(models):
        rows = [r for r in pooled if r["model"] == model]
        sub = [r for r in detail if r["model"] == model]
        _differences(
            axes[0][col], rows, sub, "accuracy", 100, "Δ accuracy (fix − pristine), pp"
        )
        _differences(axes[1][col], rows, sub, "nll", 1, "Δ NLL (fix − pristine), nats")
        _moments(axes[2][col], rows)
        axes[0][col].set_title(model)
    axes[0][0].legend(fontsize=7)
    axes[2][0].legend(fontsize=7)
    fig.suptitle(
        "keras " + " vs ".join(b["keras"] for b in results["builds"].values()),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
