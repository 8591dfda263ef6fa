"""JAX counters: the jaxpr's equations (nested jaxprs included, one record
per equation), and the jitted case's optimized HLO (hlo.count) with XLA's
`cost_analysis` and `memory_analysis`.
"""

import cases
import hlo
import jax
import jax.extend.core

MEMORY = ("argument", "output", "temp", "alias")


def _function(kind, batch):
    """(function, arguments) of a case, pure: state in, state out."""
    x, dy = (jax.numpy.asarray(a) for a in cases.data(batch))
    if kind == "train_step":
        model = cases.model(batch)
        state = model._get_jax_state(
            trainable_variables=True,
            non_trainable_variables=True,
            optimizer_variables=True,
            metrics_variables=True,
            purge_model_variables=False,
        )
        return model.train_step, (state, (x, jax.numpy.zeros_like(x), None))
    layer = cases.layer(batch)
    trainable = [v.value for v in layer.trainable_variables]
    frozen = [v.value for v in layer.non_trainable_variables]
    if kind == "inference":

        def infer(trainable, frozen, x):
            return layer.stateless_call(trainable, frozen, x, training=False)[0]

        return infer, (trainable, frozen, x)

    def step(trainable, frozen, x, dy):
        def forward(trainable, x):
            return layer.stateless_call(trainable, frozen, x, training=True)

        y, vjp, frozen = jax.vjp(forward, trainable, x, has_aux=True)
        grads, dx = vjp(dy)
        return y, dx, grads, frozen

    return step, (trainable, frozen, x, dy)


def _equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, list | tuple) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if isinstance(inner, jax.extend.core.Jaxpr):
                    yield from _equations(inner)


def _largest(eqn):
    sizes = [cases.elements(getattr(v.aval, "shape", ())) for v in eqn.outvars]
    return max(sizes, default=0)


def count(kind, batch, dynamic):
    if dynamic:
        return None
    function, args = _function(kind, batch)
    jaxpr = jax.make_jaxpr(function)(*args).jaxpr
    records = [(e.primitive.name, _largest(e)) for e in _equations(jaxpr)]
    compiled = jax.jit(function).lower(*args).compile()
    xla = hlo.count(compiled.as_text())
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    xla["flops"] = cost["flops"]
    xla["bytes_accessed"] = cost["bytes accessed"]
    memory = compiled.memory_analysis()
    for name in MEMORY:
        xla[f"{name}_bytes"] = getattr(memory, f"{name}_size_in_bytes")
    return {"jaxpr": {"records": records, "equations": len(records)}, "xla": xla}
