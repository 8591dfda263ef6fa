"""The statistic the patch fixes, as a number where lower is better."""

import numpy as np
from keras import ops

from .common import QUICK
from .train_step import bn_model


class MovingVariance:
    """Relative error of `moving_variance` against the variance of the data.

    `fit` on N(0, 1) data (variance 1) with batches of n values per channel
    (8192 channels, 64 steps, momentum 0.9), in the compiled train
    function, then |mean(moving_variance) - 1|. The biased update converges
    to (n - 1) / n, an error of 1 / n; the unbiased one to 1, an error near
    0 (the sampling error of the average over 8192 channels). asv counts a
    lower value as better, so the fix shows as an improvement.
    """

    params = [2] if QUICK else [2, 4, 32]
    param_names = ["n"]
    unit = "relative error"

    def track_moving_variance_error(self, n):
        channels, steps = 8192, 64
        rng = np.random.default_rng(8982)
        x = rng.standard_normal((n * steps, channels), dtype="float32")
        model = bn_model((n, channels), momentum=0.9)
        model.fit(x, x, batch_size=n, epochs=1, shuffle=False, verbose=0)
        moving_variance = ops.convert_to_numpy(model.layers[-1].moving_variance)
        return float(abs(np.mean(moving_variance, dtype="float64") - 1.0))
