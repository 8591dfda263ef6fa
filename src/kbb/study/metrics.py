"""Scores of one run's test predictions, in plain Python (no numpy), so
that `tox -e tooling` tests them: accuracy, negative log-likelihood,
expected calibration error, agreement of two sets of predictions."""

import math

# Probabilities are clipped at this floor before the log (float32 softmax
# outputs can be exactly 0).
PROB_FLOOR = 1e-7


def argmax(row):
    return max(range(len(row)), key=row.__getitem__)


def accuracy(probs, labels):
    """Fraction of samples whose top class is the label.

    >>> accuracy([[0.9, 0.1], [0.4, 0.6]], [0, 0])
    0.5
    """
    hits = sum(argmax(p) == y for p, y in zip(probs, labels, strict=True))
    return hits / len(labels)


def nll(probs, labels):
    """Mean negative log-probability of the true class (nats).

    >>> round(nll([[0.5, 0.5], [1.0, 0.0]], [1, 0]), 4)  # log(2) / 2
    0.3466
    """
    total = sum(
        -math.log(max(p[y], PROB_FLOOR)) for p, y in zip(probs, labels, strict=True)
    )
    return total / len(labels)


def ece(probs, labels, bins):
    """Expected calibration error: predictions grouped by their confidence
    (the top probability) into `bins` equal-width bins of [0, 1]; the mean
    over predictions of |accuracy - mean confidence| of their bin.

    >>> ece([[0.9, 0.1], [0.2, 0.8]], [0, 0], bins=10)  # (0.1 + 0.8) / 2
    0.45
    """
    groups = [[0, 0.0, 0.0] for _ in range(bins)]  # count, hits, confidence
    for p, y in zip(probs, labels, strict=True):
        top = argmax(p)
        conf = p[top]
        group = groups[min(int(conf * bins), bins - 1)]
        group[0] += 1
        group[1] += top == y
        group[2] += conf
    gaps = sum(abs(hits - conf) for count, hits, conf in groups if count)
    return gaps / len(labels)


def agreement(probs_a, probs_b):
    """Fraction of samples whose predicted class is the same."""
    same = sum(argmax(a) == argmax(b) for a, b in zip(probs_a, probs_b, strict=True))
    return same / len(probs_a)
