"""The native group's equivalence table: for each input, call and
transform, whether BatchNormalization's training step ran PyTorch's kernel
(`torch.nn.functional.batch_norm`, through `ops.nn._batch_normalization_training`)
or the backend declined it, and whether the kernel path and the
backend-agnostic path (keras' switch `config._set_use_backend_agnostic_ops`)
give the same outputs, moving statistics and gradients.

As a test (`tox -e native-torch`), each case asserts both paths equal and the
path it is expected to take. As a script, it records the cases:

    KERAS_BACKEND=torch python tests/keras/test_native_equivalence.py \
        --record benchmarks/runs/NNN-DAY-native-equivalence

writes `equivalence.json` there and the table `native-equivalence` of
docs/native-kernels.md from it.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import sys
from pathlib import Path

import numpy as np
import pytest

if __name__ != "__main__" and os.environ.get("KBB_NATIVE") != "1":
    pytest.skip("the native group's build only (KBB_NATIVE=1)", allow_module_level=True)

import keras  # noqa: E402
from keras import layers  # noqa: E402
from keras.src.backend import config  # noqa: E402

if keras.backend.backend() != "torch":
    if __name__ == "__main__":
        sys.exit("run with KERAS_BACKEND=torch")
    pytest.skip("only the PyTorch backend has the kernel", allow_module_level=True)

import torch  # noqa: E402
import torch.nn.functional as tnn  # noqa: E402

TOLERANCE = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 2e-2}
MARK = "<!-- table: native-equivalence -->"


class Kernel:
    """Counts the calls of `torch.nn.functional.batch_norm` in training
    mode, the kernel that the torch backend calls (a wrapper, so that
    `torch.compile` traces it as the function it wraps)."""

    calls = 0
    original = tnn.batch_norm

    @classmethod
    @contextlib.contextmanager
    def counted(cls):
        cls.calls = 0

        def batch_norm(*args, **kwargs):
            if kwargs.get("training"):
                cls.calls += 1
            return cls.original(*args, **kwargs)

        tnn.batch_norm = batch_norm
        try:
            yield cls
        finally:
            tnn.batch_norm = cls.original


@contextlib.contextmanager
def composed(value):
    previous = config._use_backend_agnostic_ops()
    config._set_use_backend_agnostic_ops(value)
    try:
        yield
    finally:
        config._set_use_backend_agnostic_ops(previous)


def rng(seed=1337):
    return np.random.default_rng(seed)


def make_layer(shape, axis=-1, dtype="float32", cls=layers.BatchNormalization, **kw):
    layer = cls(
        axis=axis,
        momentum=0.5,
        dtype=dtype,
        gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5, seed=1),
        beta_initializer=keras.initializers.RandomNormal(seed=2),
        moving_mean_initializer=keras.initializers.RandomNormal(seed=3),
        moving_variance_initializer=keras.initializers.RandomUniform(0.5, 1.5, seed=4),
        **kw,
    )
    layer.build(shape)
    return layer


def tensor(array, dtype="float32", grad=False):
    t = torch.tensor(np.asarray(array), dtype=getattr(torch, dtype))
    return t.requires_grad_() if grad else t


def data(shape, seed=1337):
    return rng(seed).normal(2.0, 3.0, shape).astype("float32")


def out(value):
    return value.detach().float().numpy().astype(np.float64)


def error_line(e):
    """The first line of an error's message, without keras' call context
    and terminal colours."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()
    return lines[2 if "Exception encountered" in lines[0] else 0][:100]


def grads(y, inputs, dy, retain=False):
    """The gradients of `sum(y * dy)` with respect to `inputs` (zeros for an
    input that `y` does not depend on)."""
    got = torch.autograd.grad(
        y, inputs, grad_outputs=dy, allow_unused=True, retain_graph=retain
    )
    return [
        torch.zeros_like(i) if g is None else g
        for g, i in zip(got, inputs, strict=True)
    ]


# Each case: a function of no argument that runs one path and returns
# {name: array}; the table's row; and the path the kernel side takes.


def eager_training(shape, axis=-1, dtype="float32", **call):
    def run():
        layer = make_layer(shape, axis, dtype)
        x = tensor(data(shape), layer.compute_dtype, grad=True)
        y = layer(x, training=True, **call)
        dy = tensor(data(shape, 7), str(y.dtype).split(".")[1])
        weights = [w.value for w in layer.trainable_weights]
        gx, *gw = grads(y, [x, *weights], dy)
        return {
            "outputs": out(y),
            "grad inputs": out(gx),
            **{
                f"grad {w.name}": out(g)
                for w, g in zip(layer.trainable_weights, gw, strict=True)
            },
            "moving_mean": out(layer.moving_mean.value),
            "moving_variance": out(layer.moving_variance.value),
        }

    return run


def inference(trainable=True, training=True):
    """Inference: a call with `training=False`, or a frozen layer's."""

    def run():
        layer = make_layer((6, 4))
        layer.trainable = trainable
        x = tensor(data((6, 4)), grad=True)
        y = layer(x, training=training)
        dy = tensor(data((6, 4), 7))
        weights = [w for w in layer.weights if w.value.requires_grad]
        gx, *gw = grads(y, [x, *[w.value for w in weights]], dy)
        return {"outputs": out(y), "grad inputs": out(gx)} | {
            f"grad {w.name}": out(g) for w, g in zip(weights, gw, strict=True)
        }

    return run


def stateless(training, no_grad=False):
    """`stateless_call` with non-trainable values that require grad: the
    gradients of the outputs and of the new non-trainable values with
    respect to the inputs and to all the values given."""

    def run():
        layer = make_layer((6, 4))
        x = tensor(data((6, 4)), grad=not no_grad)
        trainable, frozen = (
            [tensor(out(v.value), grad=not no_grad) for v in variables]
            for variables in (layer.trainable_variables, layer.non_trainable_variables)
        )
        context = torch.no_grad() if no_grad else contextlib.nullcontext()
        with context:
            y, new = layer.stateless_call(trainable, frozen, x, training=training)
        result = {"outputs": out(y)} | {f"new {i}": out(v) for i, v in enumerate(new)}
        if no_grad:
            return result
        inputs = [x, *trainable, *frozen]
        dy = tensor(data((6, 4), 7))
        names = ["x", "gamma", "beta", "mm", "mv"]
        for name, g in zip(names, grads(y, inputs, dy, retain=True), strict=True):
            result[f"grad outputs/{name}"] = out(g)
        if training:
            total = sum((v * (i + 1)).sum() for i, v in enumerate(new))
            for name, g in zip(names, grads(total, inputs, None), strict=True):
                result[f"grad new stats/{name}"] = out(g)
        return result

    return run


def subclass(kind):
    class Shifted(layers.BatchNormalization):
        def _moments(self, inputs, mask):
            mean, variance = super()._moments(inputs, mask)
            return mean + 1.0, variance

    class Counted(layers.BatchNormalization):
        def _moments_count(self, inputs, mask):
            return 2 * super()._moments_count(inputs, mask)

    cls = {"moments": Shifted, "count": Counted}[kind]

    def run():
        layer = make_layer((6, 4), cls=cls)
        x = tensor(data((6, 4)), grad=True)
        y = layer(x, training=True)
        return {
            "outputs": out(y),
            "grad inputs": out(grads(y, [x], tensor(data((6, 4), 7)))[0]),
            "moving_variance": out(layer.moving_variance.value),
        }

    return run


def masked():
    def run():
        layer = make_layer((3, 4, 2))
        mask = [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
        mask = torch.tensor(mask, dtype=torch.bool)
        y = layer(tensor(data((3, 4, 2))), training=True, mask=mask)
        return {"outputs": out(y), "moving_variance": out(layer.moving_variance.value)}

    return run


def synchronized():
    def run():
        try:
            layer = make_layer((6, 4), synchronized=True)
            layer(tensor(data((6, 4))), training=True)
        except (ValueError, NotImplementedError) as e:
            return {"error": str(e)}
        return {"error": "none"}

    return run


def func_transform(kind, functional=True, no_grad=False):
    """A `torch.func` transform of a training call: of `stateless_call`
    (functional), or of the layer's call, which assigns its variables."""

    def run():
        layer = make_layer((5, 3))
        xs = tensor(data((4, 5, 3)))
        dy = tensor(data((5, 3), 7))
        values = [
            [tensor(out(v.value)) for v in variables]
            for variables in (layer.trainable_variables, layer.non_trainable_variables)
        ]

        def f(x):
            if not functional:
                return layer(x, training=True)
            y, new = layer.stateless_call(*values, x, training=True)
            return torch.cat([y.flatten(), *new])

        try:
            if kind == "vmap":
                with torch.no_grad() if no_grad else contextlib.nullcontext():
                    ys = torch.func.vmap(f)(xs)
                return {"outputs and new statistics": out(ys)}
            if kind == "grad":
                g = torch.func.grad(lambda x: (f(x)[: dy.numel()] * dy.flatten()).sum())
                return {"grad inputs": out(g(xs[0]))}
            jacobian = torch.func.jacrev(f)(xs[0])
            return {"jacobian of outputs and new statistics": out(jacobian)}
        except Exception as e:  # both paths are compared, errors too
            return {"error": f"{type(e).__name__}: {error_line(e)}"}

    return run


def compiled(dynamic):
    def run():
        torch._dynamo.reset()
        layer = make_layer((8, 4, 3))
        f = torch.compile(lambda x: layer(x, training=True), dynamic=dynamic)
        result = {}
        for n in (8, 6) if dynamic else (8, 8):
            x = tensor(data((n, 4, 3), n), grad=True)
            y = f(x)
            g = grads(y, [x], tensor(data((n, 4, 3), 7)))[0]
            result |= {f"outputs {n}": out(y), f"grad inputs {n}": out(g)}
        result["moving_variance"] = out(layer.moving_variance.value)
        return result

    return run


class Wrapper(torch.nn.Module):
    def __init__(self, layer, training):
        super().__init__()
        self.layer, self.training_call = layer, training

    def forward(self, x):
        return self.layer(x, training=self.training_call)


def exported(training):
    def run():
        layer = make_layer((6, 4))
        x = tensor(data((6, 4)))
        try:
            program = torch.export.export(Wrapper(layer, training), (x,))
        except Exception as e:
            return {"error": f"{type(e).__name__}: {error_line(e)}"}
        nodes = program.graph.nodes
        targets = [str(n.target) for n in nodes if n.op == "call_function"]
        Kernel.calls = any("batch_norm" in t for t in targets)
        return {"outputs": out(program.module()(x))}

    return run


def onnx_exported(training):
    def run():
        try:
            import onnx  # noqa: F401
        except ImportError:
            return {"error": "onnx is not installed"}
        layer = make_layer((6, 4))
        x = tensor(data((6, 4)))
        try:
            program = torch.onnx.export(Wrapper(layer, training), (x,), dynamo=True)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {error_line(e)}"}
        ops = {node.op_type for node in program.model_proto.graph.node}
        Kernel.calls = "BatchNormalization" in ops
        from onnx.reference import ReferenceEvaluator

        session = ReferenceEvaluator(program.model_proto)
        (y,) = session.run(None, {session.input_names[0]: x.numpy()})
        return {"outputs": y.astype(np.float64)}

    return run


def fit(jit_compile):
    def run():
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input((6, 6, 3)),
                layers.Conv2D(4, 3),
                layers.BatchNormalization(momentum=0.5),
                layers.ReLU(),
                layers.GlobalAveragePooling2D(),
                layers.Dense(2),
            ]
        )
        model.compile("sgd", "mse", jit_compile=jit_compile)
        x, y = data((10, 6, 6, 3)), data((10, 2), 7)
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return {f"{i} {w.name}": out(w.value) for i, w in enumerate(model.weights)}

    return run


SHAPES = [
    ("n = 0 (empty batch)", (0, 3), -1, "declined"),
    ("n = 1", (1, 3), -1, "declined"),
    ("rank 2, axis -1", (8, 3), -1, "kernel"),
    ("rank 2, axis 0", (3, 8), 0, "kernel"),
    ("rank 3, axis 1", (4, 5, 3), 1, "kernel"),
    ("rank 3, axis -1", (4, 3, 5), -1, "kernel"),
    ("rank 4, axis 1 (channels first)", (2, 5, 3, 3), 1, "kernel"),
    ("rank 4, axis 2", (2, 3, 5, 3), 2, "kernel"),
    ("rank 4, axis -1 (channels last)", (2, 3, 3, 5), -1, "kernel"),
    ("rank 5, axis 1", (2, 5, 2, 3, 2), 1, "kernel"),
    ("rank 5, axis -1", (2, 2, 3, 2, 5), -1, "kernel"),
]
CASES = [
    *((f"input: {n}", eager_training(s, a), p, "float32") for n, s, a, p in SHAPES),
    *(
        (f"input: rank 4, dtype {d}", eager_training((2, 3, 3, 5), -1, d), "kernel", t)
        for d, t in [
            ("float16", "float16"),
            ("bfloat16", "bfloat16"),
            ("mixed_float16", "float16"),
            ("mixed_bfloat16", "bfloat16"),
        ]
    ),
    ("call: training", eager_training((6, 4)), "kernel", "float32"),
    ("call: inference", inference(True, False), "declined", "float32"),
    (
        "call: frozen (trainable=False), training=True",
        inference(False),
        "declined",
        "float32",
    ),
    (
        "call: stateless_call, inference, values require grad",
        stateless(False),
        "declined",
        "float32",
    ),
    (
        "call: stateless_call, training, values require grad",
        stateless(True),
        "declined",
        "float32",
    ),
    (
        "call: stateless_call, training, torch.no_grad",
        stateless(True, True),
        "kernel",
        "float32",
    ),
    ("call: with a mask", masked(), "declined", "float32"),
    ("call: synchronized=True", synchronized(), "declined", "float32"),
    ("subclass: overrides _moments", subclass("moments"), "declined", "float32"),
    ("subclass: overrides _moments_count", subclass("count"), "declined", "float32"),
    (
        "transform: torch.func.vmap of stateless_call",
        func_transform("vmap"),
        "declined",
        "float32",
    ),
    (
        "transform: torch.func.grad of stateless_call",
        func_transform("grad"),
        "declined",
        "float32",
    ),
    (
        "transform: torch.func.jacrev of stateless_call",
        func_transform("jacrev"),
        "declined",
        "float32",
    ),
    (
        "transform: torch.func.vmap of stateless_call, torch.no_grad",
        func_transform("vmap", no_grad=True),
        "declined",
        "float32",
    ),
    (
        "transform: torch.func.vmap of a layer call",
        func_transform("vmap", False),
        "declined",
        "float32",
    ),
    ("transform: torch.compile, static shapes", compiled(False), "kernel", "float32"),
    ("transform: torch.compile, dynamic shapes", compiled(True), "kernel", "float32"),
    ("transform: torch.export, training", exported(True), "kernel", "float32"),
    ("transform: torch.export, inference", exported(False), "declined", "float32"),
    (
        "transform: ONNX export (dynamo), training",
        onnx_exported(True),
        "kernel",
        "float32",
    ),
    (
        "transform: ONNX export (dynamo), inference",
        onnx_exported(False),
        "declined",
        "float32",
    ),
    ("model: fit, eager", fit(False), "kernel", "float32"),
    ("model: fit, jit_compile=True", fit(True), "kernel", "float32"),
]


def compare(kernel, agnostic, tolerance):
    """(equal, largest difference) of two paths' results."""
    if kernel.keys() != agnostic.keys():
        return False, f"different results: {sorted(kernel)} / {sorted(agnostic)}"
    largest = 0.0
    for name, a in kernel.items():
        b = agnostic[name]
        if isinstance(a, str) or isinstance(b, str):
            if a != b:
                return False, f"{name}: {a!r} / {b!r}"
            continue
        if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
            return False, f"{name}: shapes or NaNs differ"
        if a.size:
            scale = tolerance * (1 + np.abs(b))
            diff = np.nan_to_num(np.abs(a - b) / scale)
            largest = max(largest, float(diff.max()) * tolerance)
            if (diff > 1).any():
                return False, f"{name}: differ by {np.nanmax(np.abs(a - b)):.3g}"
    return True, largest


def run_case(case):
    name, run, expected, dtype = case
    with composed(True), Kernel.counted() as counter:
        agnostic = run()
        agnostic_calls = counter.calls
    with composed(False), Kernel.counted() as counter:
        kernel = run()
        kernel_calls = counter.calls
    equal, detail = compare(kernel, agnostic, TOLERANCE[dtype])
    errors = sorted({v for v in kernel.values() if isinstance(v, str)})
    return {
        "case": name,
        "path": "kernel" if kernel_calls else "declined",
        "expected": expected,
        "equal": equal,
        "largest_difference": detail if not equal else detail,
        "tolerance": TOLERANCE[dtype],
        "compared": sorted(k for k, v in kernel.items() if not isinstance(v, str)),
        "errors": errors,
        "agnostic_used_kernel": bool(agnostic_calls),
    }


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_paths_are_equal(case):
    record = run_case(case)
    if record["errors"] and "not installed" in record["errors"][0]:
        pytest.skip(record["errors"][0])
    assert not record["agnostic_used_kernel"]
    assert record["equal"], record["largest_difference"]
    assert record["path"] == record["expected"]


def compared(names):
    """What a row compared, in words, from the names of its arrays."""
    parts = []
    if any(n.startswith(("outputs", "jacobian")) for n in names):
        parts.append("outputs" + (" (jacobian)" if "jacobian" in str(names) else ""))
    if any(n.startswith("moving_") for n in names):
        parts.append("moving statistics")
    if any(n.startswith("new ") for n in names) or "statistics" in str(names):
        parts.append("new statistics")
    grads = [n for n in names if n.startswith("grad")]
    of = []
    for key, word in (
        ("inputs", "inputs"),
        ("/x", "inputs"),
        ("gamma", "gamma"),
        ("beta", "beta"),
        ("/mm", "non-trainable values"),
    ):
        if any(key in n for n in grads) and word not in of:
            of.append(word)
    if any(n.startswith("grad new stats") for n in grads):
        of.append("of the new statistics")
    if of:
        parts.append("gradients: " + ", ".join(of))
    if not parts and names:
        parts.append(f"all {len(names)} weights after training")
    return "; ".join(parts)


def row(r):
    if r["errors"]:
        what = "both raise: " + "; ".join(e.replace("|", "/") for e in r["errors"])
    else:
        what = compared(r["compared"])
    equal = "yes" if r["equal"] else f"**no** ({r['largest_difference']})"
    return [r["case"], r["path"], equal, what]


def record(folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = [run_case(case) for case in CASES]
    meta = {
        "keras": keras.version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": "cpu",
    }
    (folder / "equivalence.json").write_text(
        json.dumps({"meta": meta, "cases": records}, indent=1) + "\n"
    )
    render(folder)
    return records


def render(folder):
    """Rewrites the table `native-equivalence` of docs/native-kernels.md from
    FOLDER/equivalence.json."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from kbb import markdown

    root = Path(__file__).resolve().parents[2]
    data = json.loads((Path(folder) / "equivalence.json").read_text())
    lines = markdown.table(
        "case | path | both paths equal | compared",
        [row(r) for r in data["cases"]],
        name="native-equivalence",
    )
    doc = root / "docs/native-kernels.md"
    text = doc.read_text()
    start = text.index(MARK)
    end = text.index("\n\n", start) + 2
    where = Path(folder).resolve().relative_to(root)
    source = (
        f"From `{where}/equivalence.json` (keras {data['meta']['keras']}, "
        f"torch {data['meta']['torch']}, CPU).\n\n"
    )
    before = text[:start]
    marker = "<!-- equivalence-source -->\n"
    if marker in before:
        before = before[: before.index(marker)]
    table = "\n".join(lines) + "\n"
    doc.write_text(before + marker + source + table + text[end:])
    from kbb.bench.models import stamp_native_doc
    from kbb.workspace import Workspace

    stamp_native_doc(Workspace.find(root))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", help="a run folder: benchmarks/runs/NNN-DAY-KIND")
    parser.add_argument("--render", help="only rewrite the table from a run folder")
    args = parser.parse_args()
    if args.render:
        render(args.render)
    else:
        for r in record(args.record) if args.record else map(run_case, CASES):
            print(row(r), "" if r["path"] == r["expected"] else "(unexpected path)")
