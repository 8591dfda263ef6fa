"""Float64 NumPy reference of BatchNormalization's moving statistics.

The exact recursion, batch by batch, that the regression and parity tests
compare every framework against:

    moving_mean <- momentum * moving_mean + (1 - momentum) * mean(batch)
    moving_var  <- momentum * moving_var  + (1 - momentum) * var(batch) * c

with `c = 1` for the biased rule (upstream Keras 3, tf-keras' non-fused
path) and `c = n / max(n - 1, 1)` for the unbiased one (the paper's
Algorithm 2, PyTorch, cuDNN, FusedBatchNormV3, patched Keras), where `n` is
the number of values per channel that the batch statistics reduce.
"""

import numpy as np

RULES = ("biased", "unbiased")


def batch_moments(x, axis=-1, mask=None):
    """(mean, biased variance, count) per channel, in float64.

    `mask` has the shape of `x` without its last axis: Keras broadcasts it
    over the last axis, which is the channel axis unless `axis` says
    otherwise; False values are left out. `count` is a float, or an array
    per channel where the channels have different counts (a mask with
    `axis` not last).
    """
    x = np.asarray(x, dtype=np.float64)
    weights = np.ones_like(x)
    if mask is not None:
        weights = weights * np.expand_dims(np.asarray(mask, dtype=bool), -1)
    channels = x.shape[axis]
    x = np.moveaxis(x, axis, -1).reshape(-1, channels)
    weights = np.moveaxis(weights, axis, -1).reshape(-1, channels)
    count = weights.sum(0)
    mean = (weights * x).sum(0) / np.maximum(count, 1.0)
    variance = (weights * (x - mean) ** 2).sum(0) / np.maximum(count, 1.0)
    if np.all(count == count[0]):
        count = float(count[0])
    return mean, variance, count


def correction(count, rule):
    """The factor of the batch variance: 1, or n / (n - 1) (n when n <= 1)."""
    if rule == "biased":
        return 1.0
    if rule == "unbiased":
        return count / np.maximum(count - 1.0, 1.0)
    raise ValueError(f"rule must be one of {RULES}, not {rule!r}")


def moving_statistics(
    batches, rule, momentum=0.99, axis=-1, masks=None, mean=0.0, var=1.0
):
    """The moving mean and variance after training on `batches` in order."""
    masks = masks if masks is not None else [None] * len(batches)
    for x, mask in zip(batches, masks, strict=True):
        batch_mean, batch_var, count = batch_moments(x, axis, mask)
        mean = momentum * mean + (1 - momentum) * batch_mean
        var = momentum * var + (1 - momentum) * batch_var * correction(count, rule)
    return np.asarray(mean), np.asarray(var)


def ema_stationary_sd(momentum, estimate_variance):
    """Standard deviation of an exponential moving average, in its steady
    state, of independent estimates with variance `estimate_variance`:
    sum_k ((1 - m) m^k)^2 v = v (1 - m) / (1 + m)."""
    return np.sqrt(estimate_variance * (1 - momentum) / (1 + momentum))


def sample_variance_variance(n, rule):
    """Variance of the batch variance of n N(0, 1) values: 2 / (n - 1) for
    the unbiased estimate (chi-square with n - 1 degrees of freedom, over
    n - 1), times ((n - 1) / n)^2 for the biased one."""
    unbiased = 2.0 / (n - 1)
    return unbiased if rule == "unbiased" else unbiased * ((n - 1) / n) ** 2


def converged_expectation(n, rule):
    """Steady-state mean of the moving variance for N(0, 1) data: E[c s_b^2]."""
    return 1.0 if rule == "unbiased" else (n - 1) / n


def convergence_tolerance(n, rule, momentum, channels, sigmas=5):
    """`sigmas` standard deviations of the mean over `channels` independent
    channels of the steady-state moving variance (N(0, 1) data, batches of
    n values): ema_stationary_sd / sqrt(channels)."""
    sd = ema_stationary_sd(momentum, sample_variance_variance(n, rule))
    return sigmas * sd / np.sqrt(channels)
