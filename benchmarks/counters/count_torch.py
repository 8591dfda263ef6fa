"""PyTorch counters: every aten op that reaches the dispatcher while a case
runs, and `bytes`, what the ops write (a view op writes nothing: recorded
with 0 elements and no bytes).
"""

import cases
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class Counter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.records, self.bytes = [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if func.is_view:
            tensors = []
        sizes = [t.numel() for t in tensors]
        self.records.append((str(func.overloadpacket.__name__), max(sizes, default=0)))
        self.bytes += sum(t.numel() * t.element_size() for t in tensors)
        return out


def _run(kind, batch):
    """A callable that runs the case once, and primes it."""
    x, dy = (torch.from_numpy(a) for a in cases.data(batch))
    if kind == "train_step":
        model = cases.model(batch)
        data = (x, torch.zeros_like(x), None)
        return lambda: model.train_step(data)
    layer = cases.layer(batch)
    if kind == "inference":
        return lambda: layer(x, training=False)
    x.requires_grad_()
    weights = [w.value for w in layer.trainable_weights]

    def step():
        for t in (x, *weights):
            t.grad = None
        layer(x, training=True).backward(dy)

    return step


def count(kind, batch, dynamic):
    if dynamic:
        return None
    run = _run(kind, batch)
    run()  # first call: builds, allocates optimizer state
    with Counter() as counter:
        run()
    return {
        "aten": {
            "records": counter.records,
            "ops": len(counter.records),
            "bytes": counter.bytes,
        }
    }
