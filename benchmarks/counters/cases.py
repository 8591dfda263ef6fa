"""The cases the cost counters trace, the same on every backend.

A case is one program of a BatchNormalization layer on NHWC float32 input
(N, 8, 8, C), C = 64 channels, at two batch sizes N (8 and 16: 32768 and
65536 values, both at or above the size from which the native group uses
PyTorch's kernel on a CPU):

- `layer`: the layer's train step as it runs after a convolution: forward
  in training mode, the gradients of the input, gamma and beta for a given
  output gradient, and the moving statistics; every output is consumed
  (returned from the traced function).
- `train_step`: the model Input -> BatchNormalization trained with SGD and
  MSE (`model.train_step`): the layer comes first, so its input gradient
  is not needed.
- `inference`: the layer with training=False.

Batch size: `static` (known when tracing) everywhere; `dynamic` (unknown
when tracing, as in `fit` on TensorFlow) where the backend traces without
it: TensorFlow's graph. XLA (JAX, TensorFlow's jit_compile) and eager
PyTorch always see the concrete shape.
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
