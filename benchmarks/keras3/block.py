"""Conv -> BatchNormalization -> ReLU with the input gradient, at the
shapes of ResNet-50's four stages (the 1x1 convolution that expands a
bottleneck block to 256, 512, 1024 and 2048 channels)."""

import keras
from keras import layers

from .common import GPU
from .common import JIT
from .common import QUICK
from .common import Timed
from .common import cached
from .common import skip_unless_runnable
from .steps import gradient_step

STAGES = ["56x56x256", "28x28x512", "14x14x1024", "7x7x2048"]
if QUICK:
    STAGES = ["14x14x1024"]
# ResNet-50 trains with 32 images per device; on a 2-core CPU a step at
# 32 takes 0.3 to 1 s, so the CPU run takes 4 (the same shapes per image).
BATCH = 32 if GPU else 4


def block(stage):
    """(model, input shape): Conv2D 1x1 from C/4 to C channels, BN, ReLU."""
    height, width, channels = (int(d) for d in stage.split("x"))
    keras.utils.set_random_seed(0)
    shape = (BATCH, height, width, channels // 4)
    conv = layers.Conv2D(channels, 1, use_bias=False)
    stack = [keras.Input(shape[1:]), conv, layers.BatchNormalization(), layers.ReLU()]
    return keras.Sequential(stack), shape


class ConvBlock(Timed):
    """Forward in training mode and the gradients of the input and of every
    weight, for a fixed output gradient (steps.gradient_step)."""

    params = (STAGES, JIT)
    param_names = ["stage", "jit_compile"]

    def setup(self, stage, jit_compile):
        skip_unless_runnable(jit_compile)

        def make():
            model, shape = block(stage)
            out_shape = (*shape[:3], shape[3] * 4)
            return gradient_step(
                model, model.trainable_weights, shape, jit_compile, out_shape=out_shape
            )

        self.run = cached(("block", stage, jit_compile), make)

    def time_forward_backward(self, stage, jit_compile):
        self.run()
