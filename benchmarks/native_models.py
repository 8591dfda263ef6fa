r"""Whole training steps of real models (MODELS, eager or jit_compile) on
PyTorch, BatchNormalization's kernel path against its backend-agnostic
path in the native group's build: the table `bench-native-models` of
docs/native-kernels.md. In each worker process, blocks of `--steps` steps
run the arms `kernel`, `composed` and `composed-again` (the A/A control)
in a shuffled order; a process's statistic is the mean of its blocks'
paired log ratios, the interval Student's over the processes, Bonferroni
over the benchmarks. Peak memory: MEMORY.

    python benchmarks/native_models.py --processes 3 \
        --record benchmarks/runs/NNN-DAY-native-models
    python benchmarks/native_models.py --quick          # a smoke run
    python benchmarks/native_models.py --render FOLDER  # the table again

It needs the native group's build importable as `keras`, and kbb.
"""

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kbb import KbbError
from kbb import markdown
from kbb.bench import record
from kbb.bench import workers
from kbb.bench import write_text
from kbb.bench.stats import mean_interval
from kbb.results import stamp_line
from kbb.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("kernel", "composed", "composed-again")
MODELS = {
    "resnet50-64": "ResNet50, 64x64, batch 8",
    "mobilenetv2-96": "MobileNetV2, 96x96, batch 8",
    "conv-bn-relu-32": "Conv-BN-ReLU x3, 32x32x32, batch 8",
}
DEFAULTS = dict(processes=3, blocks=6, steps=3, warmup=3, threads=1, seed=0)
MEMORY = {  # tensors only: not the Python heap, not the allocator's cache
    "cpu": "PyTorch CPU profiler (profile_memory=True): peak live tensor bytes "
    "allocated during one step",
    "cuda": "torch.cuda.max_memory_allocated over one step",
}


def build(name):
    """(model, input shape) of one of MODELS."""
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


def worker(args):
    """One process: every benchmark, blocks of interleaved arms; writes its
    record to the file args.worker."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    rng, results = random.Random(args.seed), []
    jit = args.jit_models or args.models
    for name, mode in [(n, m) for n in args.models for m in args.modes]:
        if mode == "jit" and name not in jit:
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
    Path(args.worker).write_text(json.dumps({"results": results}))


def meta(args):
    import keras
    import torch

    shown = ("device", "threads", "processes", "blocks", "steps", "warmup")
    return {
        **record.machine(),
        **{k: getattr(args, k) for k in shown},
        "keras": keras.version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "jit_models": list(args.jit_models or args.models),
        "clock": "wall (time.perf_counter)",
        "memory": MEMORY[args.device],
    }


def mean_log_ratio(times, arm):
    """The mean over a process's blocks of log(arm / composed)."""
    pairs = zip(times[arm], times["composed"], strict=True)
    return statistics.fmean(math.log(a / b) for a, b in pairs)


def analyse(processes, alpha=0.05):
    """Per benchmark: the kernel / composed and A/A ratios with simultaneous
    intervals, and the peak memory of each path (medians over processes)."""
    keys = [(r["model"], r["mode"]) for r in processes[0]]
    rows = []
    for i, (model, mode) in enumerate(keys):
        row = {"model": model, "mode": mode}
        mine = [p[i] for p in processes]
        for label, arm in (("ratio", "kernel"), ("aa", "composed-again")):
            logs = [mean_log_ratio(p["times"], arm) for p in mine]
            row[label] = list(mean_interval(logs, len(keys), alpha))
        for arm in ARMS[:2]:
            times = [statistics.median_high(p["times"][arm]) for p in mine]
            row[f"ms_{arm}"] = 1e3 * statistics.median_high(times)
            row[f"mem_{arm}"] = statistics.median_high(p["memory"][arm] for p in mine)
        warmup = [p["warmup_seconds"] for p in mine]
        row["warmup_seconds"] = {a: max(w[a] for w in warmup) for a in ARMS[:2]}
        rows.append(row)
    return rows


def verdict(row):
    (_, lo, hi), (_, aa_lo, aa_hi) = row["ratio"], row["aa"]
    aa = "" if aa_lo <= 1 <= aa_hi else " (A/A interval excludes 1: inconclusive)"
    return ("faster" if hi < 1 else "slower" if lo > 1 else "no difference shown") + aa


def table(run):
    """The table bench-native-models of a run's rows (kbb.markdown)."""
    interval = "{:.3f} [{:.3f}, {:.3f}]".format
    rows = []
    for r in run["rows"]:
        mode = "jit_compile=True" if r["mode"] == "jit" else "eager"
        row = [MODELS.get(r["model"], r["model"]), mode]
        row += [f"{r['ms_composed']:.1f}", f"{r['ms_kernel']:.1f}"]
        row += [interval(*r["ratio"]), interval(*r["aa"])]
        row += [f"{r['mem_composed'] / 2**20:.1f}", f"{r['mem_kernel'] / 2**20:.1f}"]
        rows.append([*row, verdict(r)])
    header = (
        "train step | mode | composed ms | kernel ms | kernel / composed [95 %] "
        "| A/A [95 %] | composed peak MiB | kernel peak MiB | verdict"
    )
    return markdown.table(header, rows, name="bench-native-models")


def render(folder):
    """Writes the table from FOLDER/models.json into docs/native-kernels.md
    (which pr/keras/pr.toml quotes), then its stamp."""
    run = json.loads((Path(folder) / "models.json").read_text())
    doc = ROOT / "docs/native-kernels.md"
    text = doc.read_text()
    start = text.index("<!-- table: bench-native-models -->")
    end = text.index("\n\n", start) + 2
    write_text(doc, text[:start] + "\n".join(table(run)) + "\n" + text[end:])
    stamp_native_doc()


def stamp_native_doc():
    """Writes the stamp line of docs/native-kernels.md: its generated tables
    are of the series up to the native group and of the pins now."""
    ws = Workspace.find(ROOT)
    doc = ROOT / "docs/native-kernels.md"
    text = doc.read_text().rstrip("\n").split("\n")
    lines = [line for line in text if not line.startswith("<!-- kbb-stamp:")]
    stamp = stamp_line(ws, ws.pin("keras"), "native")
    write_text(doc, "\n".join(lines).rstrip("\n") + "\n\n" + stamp + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    for option, default in DEFAULTS.items():
        add(f"--{option}", type=int, default=default)
    add("--device", choices=("cpu", "cuda"), default="cpu")
    add("--models", nargs="+", default=list(MODELS))
    add("--modes", nargs="+", default=["eager", "jit"])
    jit = "the models measured with jit_compile=True (default: all)"
    add("--jit-models", nargs="+", help=jit)
    add("--record", help="a run folder, benchmarks/runs/NNN-DAY-native-models")
    add("--render", help="only write the table from a run folder")
    add("--quick", action="store_true", help="a smoke run")
    add("--worker", help=argparse.SUPPRESS)  # one process, its record's file
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "torch"
    if args.render:
        return render(args.render)
    if args.quick:
        args.processes, args.blocks, args.steps, args.warmup = 2, 2, 1, 1
        args.models = ["conv-bn-relu-32"]
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:

        def start(slot, _build, _backend):
            out = Path(tmp) / f"{slot}.json"
            command = [__file__, *sys.argv[1:], "--worker", out]
            command += ["--seed", args.seed + slot]
            env = workers.env("torch", args.threads)
            return workers.launch(command, env, out, f"process {slot + 1}")

        order = workers.plan(["native"], ["torch"], args.processes, args.seed)
        meter = workers.Meter(ROOT, args.threads)
        found, rounds = workers.run_plan(order, start, meter)
    processes = [p["results"] for p in found]
    run = {"meta": meta(args), "rounds": rounds, "processes": processes}
    run["rows"] = analyse(processes)
    print("\n".join(table(run)))
    if args.record:
        folder = Path(args.record)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "models.json", json.dumps(run, indent=1) + "\n")
        render(folder)


if __name__ == "__main__":
    try:
        main()
    except KbbError as e:
        sys.exit(f"kbb: error: {e}")
