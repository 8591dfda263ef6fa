"""The train step of a model whose first layer is BatchNormalization."""

import keras
from keras import layers
from keras import ops

from .common import JIT
from .common import QUICK
from .common import Timed
from .common import batch
from .common import cached
from .common import parse_case
from .common import skip_unless_runnable

CASES = ["32x28x28x64"] if QUICK else ["256x64", "32x28x28x64"]


def bn_model(shape, jit_compile=False, momentum=0.99):
    """Input -> BatchNormalization, compiled with SGD and MSE, built."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, layers.BatchNormalization(momentum=momentum)(inputs))
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    return model


def trained_bn_model(shape, jit_compile):
    model = bn_model(shape, jit_compile)
    x = batch(shape)
    y = ops.zeros_like(x)
    model.train_on_batch(x, y)
    return model, x, y


class BatchNormTrainStep(Timed):
    """`train_on_batch` of Input -> BatchNormalization (SGD, MSE): forward,
    backward (no input gradient: the layer comes first), the update and
    the moving statistics; it returns the loss to the host."""

    params = (CASES, JIT)
    param_names = ["case", "jit_compile"]

    def setup(self, case, jit_compile):
        skip_unless_runnable(jit_compile)
        shape, _ = parse_case(case)
        self.model, self.x, self.y = cached(
            ("train", case, jit_compile), lambda: trained_bn_model(shape, jit_compile)
        )

    def time_train_step(self, case, jit_compile):
        self.model.train_on_batch(self.x, self.y)
