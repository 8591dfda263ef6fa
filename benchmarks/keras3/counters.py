"""Deterministic cost counters of the train step: immune to timing noise.

They say exactly what the patch adds to the compiled program: one multiply
per channel by a constant when the number of values per channel is known
when tracing, a few scalar ops when it is not; the moments themselves cost
O(batch x channels).
"""

from .common import BACKEND
from .common import SHAPES
from .common import dims
from .common import trained_bn_model


def _train_step_and_data(shape):
    from keras import ops

    model, x, y = trained_bn_model(dims(shape), jit_compile=BACKEND == "jax")
    return model, (x, ops.zeros_like(x), None)


class XlaCost:
    """XLA's cost analysis of the JAX train step (jax.jit of the model's
    `train_step`: forward, backward, SGD and the moving statistics)."""

    params = SHAPES
    param_names = ["shape"]

    def setup(self, shape):
        if BACKEND != "jax":
            raise NotImplementedError("JAX only")
        import jax

        model, data = _train_step_and_data(shape)
        state = model._get_jax_state(
            trainable_variables=True,
            non_trainable_variables=True,
            optimizer_variables=True,
            metrics_variables=True,
            purge_model_variables=False,
        )
        compiled = jax.jit(model.train_step).lower(state, data).compile()
        cost = compiled.cost_analysis()
        self.cost = cost[0] if isinstance(cost, list) else cost

    def track_flops(self, shape):
        return self.cost["flops"]

    track_flops.unit = "flops"

    def track_bytes_accessed(self, shape):
        return self.cost["bytes accessed"]

    # Not "bytes", which asv rounds for display (732k): the exact count.
    track_bytes_accessed.unit = "bytes accessed"


class TfGraphOps:
    """Number of ops of the TensorFlow train step traced by tf.function (the
    model's `train_step`, with the ops of the functions it calls), with the
    batch size known when tracing (static) or not (dynamic, as in `fit`)."""

    params = (SHAPES, ["static", "dynamic"])
    param_names = ["shape", "batch_size"]
    unit = "ops"

    def setup(self, shape, batch_size):
        if BACKEND != "tensorflow":
            raise NotImplementedError("TensorFlow only")

    def track_train_step_ops(self, shape, batch_size):
        import tensorflow as tf

        model, _ = _train_step_and_data(shape)
        spec = dims(shape)
        if batch_size == "dynamic":
            spec = (None, *spec[1:])
        specs = (tf.TensorSpec(spec), tf.TensorSpec(spec))
        graph = tf.function(model.train_step).get_concrete_function(specs).graph
        graph_def = graph.as_graph_def()
        return len(graph_def.node) + sum(
            len(f.node_def) for f in graph_def.library.function
        )
