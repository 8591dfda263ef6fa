"""Device kernels of one layer step on a GPU, for the build on PYTHONPATH.

    python benchmarks/gpu/kernels.py BACKEND OUTPUT.json

BatchNormLayer's forward + backward at each of its cases, once after a
warm-up: on PyTorch the CUDA kernels that torch.profiler records (and
their names); on JAX the fusions and instructions of the compiled
program's optimized HLO.
"""

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "counters")]


def torch_kernels(run):
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    if not torch.cuda.is_available():
        return None  # no device kernels to count
    run()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
    names = Counter(e.name for e in prof.events() if e.device_type.name == "CUDA")
    return {"kernels": sum(names.values()), "names": dict(names)}


def jax_kernels(case):
    import hlo
    import jax
    from keras3 import layer

    text = layer._layer(case, True).lower().compile().as_text()
    counted = hlo.count(text)
    return {
        "fusions": counted["fusions"],
        "instructions": counted["instructions"],
        "device": str(jax.devices()[0]),
    }


def main(backend, output):
    import keras
    from keras3 import layer

    result = {"keras": keras.version(), "backend": backend, "cases": {}}
    for case in layer.CASES:
        if backend == "torch":
            result["cases"][case] = torch_kernels(layer._layer(case, False))
        else:
            result["cases"][case] = jax_kernels(case)
    Path(output).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
