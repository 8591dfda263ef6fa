"""The compiled programs the benchmarks time, one per backend: each a
callable that runs the program once and waits for all of its outputs,
every output returned, so that nothing can be pruned under jit.
"""

import keras
from keras import layers

from .common import BACKEND
from .common import batch
from .common import sync


def bn_layer(shape, option=""):
    """A built BatchNormalization for `shape`: channels last, or first
    (option "channels_first"), with option "mixed_bfloat16" its policy."""
    keras.utils.set_random_seed(0)
    axis = 1 if option == "channels_first" else -1
    dtype = "mixed_bfloat16" if option == "mixed_bfloat16" else None
    layer = layers.BatchNormalization(axis=axis, momentum=0.99, dtype=dtype)
    layer.build(shape)
    return layer


def gradient_step(model, weights, shape, jit_compile, dtype="float32", out_shape=None):
    """model(x) in training mode, its gradients of x and of `weights` for a
    fixed output gradient (of `out_shape`, default `shape`); returns every
    output and gradient."""
    x = batch(shape, dtype=dtype)
    dy = batch(out_shape or shape, seed=1, dtype=dtype)
    if BACKEND == "tensorflow":
        return _tf_step(model, weights, x, dy, jit_compile)
    if BACKEND == "jax":
        return _jax_step(model, x, dy)
    return _torch_step(model, weights, x, dy)


def _tf_step(model, weights, x, dy, jit_compile):
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=True)
        return [y, *tape.gradient(y, [x, *weights], dy)]

    def run():
        return sync(step(x, dy))

    run()
    return run


def _jax_step(model, x, dy):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    state = [[v.value for v in model.non_trainable_variables]]

    @jax.jit
    def step(trainable, frozen, x, dy):
        def forward(trainable, x):
            return model.stateless_call(trainable, frozen, x, training=True)

        y, vjp, frozen = jax.vjp(forward, trainable, x, has_aux=True)
        grads, dx = vjp(dy)
        return (y, dx, grads), frozen

    def run():
        outputs, state[0] = step(trainable, state[0], x, dy)
        return sync(outputs)

    run()
    # The compiled program, for benchmarks/gpu/kernels.py.
    run.lower = lambda: step.lower(trainable, state[0], x, dy)
    return run


def _torch_step(model, weights, x, dy):
    x.requires_grad_()
    weights = [w.value for w in weights]

    def run():
        for t in (x, *weights):
            t.grad = None
        y = model(x, training=True)
        y.backward(dy)
        return sync([y, x.grad, *(w.grad for w in weights)])

    run()
    return run


def inference(model, shape, jit_compile):
    """model(x, training=False), compiled as the backend compiles predict."""
    x = batch(shape)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        call = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)
    elif BACKEND == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def call(x):
            return model.stateless_call(trainable, frozen, x, training=False)[0]
    else:
        import torch

        def call(x):
            with torch.no_grad():
                return model(x, training=False)

    def run():
        return sync(call(x))

    run()
    return run
