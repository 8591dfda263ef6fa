"""Runs the whole training steps of `kbb bench models` (src/kbb/bench/
models.py) in this process, on PyTorch, for kbb.bench.workers:

    models.py OUTPUT.json SETTINGS

SETTINGS: the run's options as JSON (models, modes, jit_models, blocks,
steps, warmup, seed, device). Per model and mode: a warm-up on the two
paths, then blocks of `steps` steps on each of ARMS in a shuffled order,
then the peak memory of one step on each path. It needs the native
group's build importable as `keras`.
"""

import json
import os
import random
import sys
import time
from argparse import Namespace
from pathlib import Path

ARMS = ("kernel", "composed", "composed-again")


def build(name):
    """(model, input shape) of one of kbb.bench.models.MODELS."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    if name == "conv-bn-relu-32":
        stage = [keras.Input((32, 32, 32))]
        for _ in range(3):
            conv = layers.Conv2D(32, 3, padding="same", use_bias=False)
            stage += [conv, layers.BatchNormalization(), layers.ReLU()]
        stage += [layers.GlobalAveragePooling2D(), layers.Dense(10, "softmax")]
        return keras.Sequential(stage), (8, 32, 32, 32)
    apps = keras.applications
    app = {"resnet50-64": apps.ResNet50, "mobilenetv2-96": apps.MobileNetV2}[name]
    size = int(name.rsplit("-", 1)[1])
    model = app(weights=None, input_shape=(size, size, 3), classes=10)
    return model, (8, size, size, 3)


def switch(arm):
    from keras.src.backend import config

    config._set_use_backend_agnostic_ops(arm != "kernel")


def timed(step, n, arm):
    """Seconds of n calls of step() on the path of `arm`."""
    switch(arm)
    start = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - start


def peak_memory(step, device, arm):
    """Peak bytes of tensors during one step() on the path of `arm`."""
    import torch

    switch(arm)
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = prof.profiler.kineto_results.events()
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.name() == "[memory]":
            live += event.nbytes()
            peak = max(peak, live)
    return peak


def main(output, settings):
    """Every benchmark, blocks of interleaved arms; writes the record."""
    import keras
    import numpy as np
    import torch

    args = Namespace(**json.loads(settings))
    torch.set_num_threads(int(os.environ["KBB_BENCH_THREADS"]))
    rng, results = random.Random(args.seed), []
    for name, mode in [(n, m) for n in args.models for m in args.modes]:
        if mode == "jit" and name not in args.jit_models:
            continue
        model, shape = build(name)
        loss = "sparse_categorical_crossentropy"
        model.compile("sgd", loss, jit_compile=mode == "jit")
        data = np.random.default_rng(0)
        x = data.normal(size=shape).astype("float32")
        y = data.integers(0, 10, size=(shape[0],))

        def step(x=x, y=y, model=model):
            model.train_on_batch(x, y)
            if args.device == "cuda":
                torch.cuda.synchronize()

        warmup = {arm: timed(step, args.warmup, arm) for arm in ARMS[:2]}
        times = {arm: [] for arm in ARMS}
        for _ in range(args.blocks):
            for arm in rng.sample(ARMS, len(ARMS)):
                times[arm].append(timed(step, args.steps, arm) / args.steps)
        memory = {arm: peak_memory(step, args.device, arm) for arm in ARMS[:2]}
        switch("composed")
        found = {"model": name, "mode": mode, "times": times}
        results.append({**found, "memory": memory, "warmup_seconds": warmup})
        del model
        torch._dynamo.reset()
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    record = {"keras": keras.version(), "torch": torch.__version__, "gpu": gpu}
    Path(output).write_text(json.dumps({**record, "results": results}))


if __name__ == "__main__":
    main(*sys.argv[1:])
