"""TensorFlow counters: `graph`, the traced tf.function as Grappler
optimizes it, imported into a graph for the shapes (an output's elements
None where a dimension is unknown); `xla`, its optimized HLO with
jit_compile=True (hlo.count).
"""

import cases
import hlo
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.grappler import tf_optimizer


def _functions(kind, batch):
    """(python function, number of inputs) of a case."""
    if kind == "train_step":
        model = cases.model(batch)
        return (lambda x, y: model.train_step((x, y))), 2
    layer = cases.layer(batch)
    if kind == "inference":
        return (lambda x: layer(x, training=False)), 1

    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        grads = tape.gradient(y, [x, *layer.trainable_weights], dy)
        return [y, *grads]

    return step, 2


def _largest(op):
    sizes = [
        cases.elements(t.shape.as_list()) if t.shape.rank is not None else None
        for t in op.outputs
    ]
    if not sizes:
        return 0
    return None if None in sizes else max(sizes)


def grappler_ops(function, specs):
    concrete = tf.function(function).get_concrete_function(*specs)
    graph = concrete.graph
    meta = tf.compat.v1.train.export_meta_graph(
        graph_def=graph.as_graph_def(), graph=graph
    )
    fetches = meta.collection_def["train_op"].node_list.value
    fetches.extend(t.op.name for t in concrete.outputs)
    config = config_pb2.ConfigProto()
    optimized = tf_optimizer.OptimizeGraph(config, meta)
    imported = tf.Graph()
    with imported.as_default():
        tf.graph_util.import_graph_def(optimized, name="")
    library = sum(len(f.node_def) for f in optimized.library.function)
    records = [(op.type, _largest(op)) for op in imported.get_operations()]
    return records, library


def count(kind, batch, dynamic):
    function, inputs = _functions(kind, batch)
    dims = list(cases.shape(batch))
    if dynamic:
        dims[0] = None
    specs = [tf.TensorSpec(dims, tf.float32)] * inputs
    records, library = grappler_ops(function, specs)
    result = {
        "graph": {"records": records, "ops": len(records), "library_ops": library}
    }
    if not dynamic:
        x, dy = cases.data(batch)
        args = [tf.constant(x), tf.constant(dy)][:inputs]
        jitted = tf.function(function, jit_compile=True)
        text = jitted.experimental_get_compiler_ir(*args)(stage="optimized_hlo")
        result["xla"] = hlo.count(text)
    return result
