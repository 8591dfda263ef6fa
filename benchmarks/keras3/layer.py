"""The layer alone: BatchNormalization forward and backward, as after a
convolution (its input gradient needed), and in inference."""

from .common import JIT
from .common import QUICK
from .common import Timed
from .common import cached
from .common import elements
from .common import parse_case
from .common import skip_unless_runnable
from .steps import bn_layer
from .steps import gradient_step
from .steps import inference

# 64x64, 256x64 and 511x64 have fewer than 32768 values: below PyTorch's
# grain size for parallel loops, where its batch_norm kernel still runs in
# parallel and the elementwise ops do not (docs/native-kernels.md).
CASES = "64x64 256x64 511x64 4096x1024 32x28x28x64 8x112x112x64".split()
CASES += ["32x64x28x28:channels_first", "32x28x28x64:mixed_bfloat16"]
if QUICK:
    CASES = ["32x28x28x64"]

# Bytes a kernel must move at the least, in passes over the input: the
# forward pass reads x for the moments, then reads x and writes y (3); the
# backward pass reads dy and x for its two sums, then reads them again and
# writes dx (5). The per-channel vectors are negligible.
TRAIN_PASSES = 8
INFERENCE_PASSES = 2


class BatchNormLayer(Timed):
    """Forward in training mode, the gradients of the input, gamma and
    beta for a fixed output gradient, and the moving statistics, compiled
    as a train step (tf.function, with XLA for jit_compile; jax.jit;
    PyTorch eagerly); every output is waited for."""

    params = (CASES, JIT)
    param_names = ["case", "jit_compile"]

    def setup(self, case, jit_compile):
        skip_unless_runnable(jit_compile)
        self.run = cached(
            ("layer", case, jit_compile), lambda: _layer(case, jit_compile)
        )

    def time_forward_backward(self, case, jit_compile):
        self.run()

    def model_bytes(self, case, jit_compile):
        shape, option = parse_case(case)
        itemsize = 2 if option == "mixed_bfloat16" else 4
        return TRAIN_PASSES * elements(shape) * itemsize


def _layer(case, jit_compile):
    shape, option = parse_case(case)
    layer = bn_layer(shape, option)
    dtype = "bfloat16" if option == "mixed_bfloat16" else "float32"
    return gradient_step(layer, layer.trainable_weights, shape, jit_compile, dtype)


class BatchNormInference(Timed):
    """The layer with training=False at batch sizes 1, 8 and 64 of 14x14x256
    feature maps (a ResNet-50 stage), compiled as predict compiles it."""

    params = ([1, 8, 64] if not QUICK else [8], JIT)
    param_names = ["batch", "jit_compile"]

    def setup(self, batch, jit_compile):
        skip_unless_runnable(jit_compile)
        shape = (batch, 14, 14, 256)
        self.run = cached(
            ("inference", batch, jit_compile),
            lambda: inference(bn_layer(shape), shape, jit_compile),
        )

    def time_inference(self, batch, jit_compile):
        self.run()

    def model_bytes(self, batch, jit_compile):
        return INFERENCE_PASSES * elements((batch, 14, 14, 256)) * 4
