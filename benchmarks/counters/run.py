"""Counts every case (cases.py) on one backend, in this process's keras:

    run.py BACKEND OUTPUT.json

BACKEND: jax, torch, tensorflow, or tensorflow-onednn (TF_ENABLE_ONEDNN_OPTS
set by the caller, `kbb counters`). Writes the versions and, per case,
each counter with its records (op, elements of its largest output).
"""

import importlib
import importlib.metadata
import json
import os
import sys
from itertools import product

import cases

COUNTERS = {"tensorflow": "count_tf", "jax": "count_jax", "torch": "count_torch"}
# The pinned frameworks, whose versions the expected counts hold for.
VERSIONS = ("tensorflow-cpu", "jax", "jaxlib", "torch")


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(backend, output):
    if os.environ.get("KERAS_BACKEND") != backend.split("-")[0]:
        raise SystemExit(f"run.py: KERAS_BACKEND does not match {backend}")
    import keras

    counter = importlib.import_module(COUNTERS[backend.split("-")[0]])
    results = {}
    for kind, dynamic, batch in product(cases.KINDS, (False, True), cases.BATCHES):
        counted = counter.count(kind, batch, dynamic)
        if counted is not None:
            results[f"{kind}/{'dynamic' if dynamic else 'static'}/N{batch}"] = counted
    record = {
        "backend": backend,
        "keras": keras.version(),
        "keras_file": keras.__file__,
        "channels": cases.CHANNELS,
        "versions": {name: _version(name) for name in VERSIONS},
        "cases": results,
    }
    with open(output, "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
