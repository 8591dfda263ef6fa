"""The peer: the backend's own batch normalization kernel on the tensors
of BatchNormLayer, forward in training mode and backward with the input
gradient (benchmarks/README.md, "The suite"). PyTorch's takes NHWC data
as a channels-last NCHW view (no copy); JAX has none (XLA fuses the
composite ops).
"""

from .common import BACKEND
from .common import QUICK
from .common import Timed
from .common import batch
from .common import cached
from .common import elements
from .common import parse_case
from .common import sync
from .layer import TRAIN_PASSES
from .layer import BatchNormLayer

CASES = [c for c in BatchNormLayer.params[0] if ":" not in c]
if QUICK:
    CASES = CASES[:1]


class PeerKernel(Timed):
    """The backend's kernel on BatchNormLayer's cases (see the module)."""

    params = (CASES, [False, True])
    param_names = ["case", "jit_compile"]

    def setup(self, case, jit_compile):
        shape, _ = parse_case(case)
        if BACKEND == "jax":
            raise NotImplementedError("JAX has no kernel of its own")
        if BACKEND == "torch" and jit_compile:
            raise NotImplementedError("PyTorch runs eagerly")
        if BACKEND == "tensorflow" and len(shape) != 4:
            raise NotImplementedError("FusedBatchNormV3 takes 4D inputs")
        make = _torch if BACKEND == "torch" else _tf
        self.run = cached(("peer", case, jit_compile), lambda: make(shape, jit_compile))

    def time_forward_backward(self, case, jit_compile):
        self.run()

    def model_bytes(self, case, jit_compile):
        shape, _ = parse_case(case)
        return TRAIN_PASSES * 4 * elements(shape)


def _torch(shape, jit_compile):
    import torch
    import torch.nn.functional as F

    x, dy = batch(shape), batch(shape, seed=1)
    if x.dim() == 4:
        x, dy = x.permute(0, 3, 1, 2), dy.permute(0, 3, 1, 2)
    channels = x.shape[1]
    x.requires_grad_()
    gamma = torch.ones(channels, device=x.device, requires_grad=True)
    beta = torch.zeros(channels, device=x.device, requires_grad=True)
    mean = torch.zeros(channels, device=x.device)
    var = torch.ones(channels, device=x.device)

    def run():
        for t in (x, gamma, beta):
            t.grad = None
        y = F.batch_norm(x, mean, var, gamma, beta, True, 0.01, 1e-3)
        y.backward(dy)
        return sync([y, x.grad, gamma.grad, beta.grad])

    run()
    return run


def _tf(shape, jit_compile):
    import tensorflow as tf

    x, dy = batch(shape), batch(shape, seed=1)
    channels = shape[-1]
    gamma = tf.Variable(tf.ones([channels]))
    beta = tf.Variable(tf.zeros([channels]))

    @tf.function(jit_compile=jit_compile)
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=1e-3, is_training=True
            )
        return [y, mean, var, *tape.gradient(y, [x, gamma, beta], dy)]

    def run():
        return sync(step(x, dy))

    run()
    return run
