"""One BatchNormalization train step, in the model's compiled train function."""

from .common import SHAPES
from .common import TimedShapes
from .common import cached
from .common import dims
from .common import layer_step
from .common import skip_unless_runnable
from .common import trained_bn_model


class BatchNormTrainStep(TimedShapes):
    """`train_on_batch` of Input -> BatchNormalization (forward, backward,
    SGD update and the moving statistics), which returns the loss to the
    host, so every sample waits for the device."""

    def setup(self, shape, jit_compile):
        skip_unless_runnable(jit_compile)
        self.model, self.x, self.y = cached(
            ("bn", shape, jit_compile),
            lambda: trained_bn_model(dims(shape), jit_compile),
        )

    def time_train_step(self, shape, jit_compile):
        self.model.train_on_batch(self.x, self.y)


class BatchNormForwardBackward(TimedShapes):
    """The layer alone: forward in training mode, the gradients of its
    inputs, gamma and beta for a fixed output gradient, and the moving
    statistics, compiled as a train step (common.layer_step). What the
    native kernels compute, and the quantity issue 7's targets were set on.
    In BatchNormTrainStep's model the layer comes first, so no gradient of
    its inputs is needed there; after a convolution or a Dense layer, it is.
    """

    def setup(self, shape, jit_compile):
        skip_unless_runnable(jit_compile)
        self.step = cached(
            ("layer", shape, jit_compile),
            lambda: layer_step(dims(shape), jit_compile),
        )

    def time_forward_backward(self, shape, jit_compile):
        self.step()


class BatchNormPeakMemory:
    """Peak resident memory of a process that compiles and runs the train
    step above, with the backend's default compilation (jit_compile="auto":
    XLA off for TensorFlow on CPU, jit for JAX, eager for PyTorch)."""

    params = SHAPES
    param_names = ["shape"]

    def setup(self, shape):
        self.model, self.x, self.y = trained_bn_model(dims(shape), "auto")

    def peakmem_train_step(self, shape):
        self.model.train_on_batch(self.x, self.y)
