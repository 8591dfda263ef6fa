"""The cases the cost counters trace, the same on every backend (their
table: benchmarks/README.md, "Exact counters"). N = 8 and 16 give 32768
and 65536 values, at or above the size from which the native group uses
PyTorch's kernel on a CPU.
"""

CHANNELS = 64
BATCHES = (8, 16)
KINDS = ("layer", "train_step", "inference")


def shape(batch):
    return (batch, 8, 8, CHANNELS)


def data(batch):
    """(x, dy): N(0, 1) input and output gradient, numpy float32."""
    import numpy as np

    rng = np.random.default_rng(batch)
    x = rng.standard_normal(shape(batch), dtype="float32")
    return x, rng.standard_normal(shape(batch), dtype="float32")


def layer(batch):
    """A built BatchNormalization layer for `shape(batch)`."""
    import keras

    keras.utils.set_random_seed(0)
    layer = keras.layers.BatchNormalization(momentum=0.99)
    layer.build(shape(batch))
    return layer


def model(batch):
    """Input -> BatchNormalization, compiled with SGD and MSE, built."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape(batch)[1:])
    outputs = keras.layers.BatchNormalization(momentum=0.99)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    model.build(shape(batch))
    model.optimizer.build(model.trainable_variables)
    return model


def elements(dims):
    """The number of elements of a shape; None if a dimension is unknown."""
    count = 1
    for d in dims:
        if d is None or d < 0:
            return None
        count *= d
    return count
