"""A small convolutional network: the layer measured in context."""

import keras
import numpy as np
from keras import layers

from .common import Timed
from .common import cached


def conv_net():
    """Two blocks of Conv2D, BatchNormalization and ReLU, then a classifier."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for filters in (16, 32):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(10)(x))
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def fitted_conv_net():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 32, 32, 3), dtype="float32")
    y = rng.integers(0, 10, size=(128,))
    model = conv_net()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model, x, y


class ConvNetFit(Timed):
    """`fit` for one epoch of 4 steps of 32 images (32x32x3), with each
    backend's default compilation (jit_compile="auto")."""

    def setup(self):
        self.model, self.x, self.y = cached("conv", fitted_conv_net)

    def time_fit(self):
        self.model.fit(self.x, self.y, batch_size=32, epochs=1, verbose=0)
