r"""Whole training steps of real models on the PyTorch backend, with
BatchNormalization's kernel path against its backend-agnostic path in one
build (the native group's), switched with keras'
`config._set_use_backend_agnostic_ops`: the table `bench-native-models`
of docs/native-kernels.md. A benchmark is a model (`keras.applications`
ResNet50 and MobileNetV2, weights=None, small inputs; a Conv-BN-ReLU
stage) and a mode: eager or `jit_compile=True` (`torch.compile`).

Each worker is a fresh process (kbb.bench.workers: threads fixed, the load
meter around it): after warming up every arm, blocks of `--steps` training
steps (`model.train_on_batch`) run the three arms in a shuffled order:
`kernel` (the switch off), `composed` (on) and `composed-again` (on: the
A/A control). A block's ratios are paired; a process's statistic is the
mean of its blocks' log ratios; the interval is Student's over the
processes, Bonferroni over the benchmarks (stats.mean_interval). Peak
memory (MEMORY): the tensor bytes allocated and not yet freed during one
step (not the Python heap, not the allocator's cache).

    python benchmarks/native_models.py --processes 3 \
        --record benchmarks/runs/NNN-DAY-native-models
    python benchmarks/native_models.py --quick          # a smoke run
    python benchmarks/native_models.py --render FOLDER  # the table again

It needs the native group's build importable as `keras`
(`kbb install keras --ref group/native`, or PYTHONPATH on a source tree).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
ARMS = ("kernel", "composed", "composed-again")
MODELS = {
    "resnet50-64": "ResNet50, 64x64, batch 8",
    "mobilenetv2-96": "MobileNetV2, 96x96, batch 8",
    "conv-bn-relu-32": "Conv-BN-ReLU x3, 32x32x32, batch 8",
}
MODES = ("eager", "jit")
MARK = "<!-- table: bench-native-models -->"
MEMORY = {
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


def timed(step, n):
    """Seconds of n calls of step()."""
    start = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - start


def peak_memory(step, device):
    import torch

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
    for name in args.models:
        for mode in args.modes:
            if mode == "jit" and args.jit_models and name not in args.jit_models:
                continue
            model, shape = build(name)
            jit = mode == "jit"
            model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=jit)
            data = np.random.default_rng(0)
            x = data.normal(size=shape).astype("float32")
            y = data.integers(0, 10, size=(shape[0],))

            def step(x=x, y=y, model=model):
                model.train_on_batch(x, y)
                if args.device == "cuda":
                    torch.cuda.synchronize()

            warmup, times, memory = {}, {arm: [] for arm in ARMS}, {}
            for arm in ARMS[:2]:
                switch(arm)
                warmup[arm] = timed(step, args.warmup)
            for _ in range(args.blocks):
                for arm in rng.sample(ARMS, len(ARMS)):
                    switch(arm)
                    times[arm].append(timed(step, args.steps) / args.steps)
            for arm in ARMS[:2]:
                switch(arm)
                memory[arm] = peak_memory(step, args.device)
            switch("composed")
            found = {"model": name, "mode": mode, "times": times}
            results.append({**found, "memory": memory, "warmup_seconds": warmup})
            del model
            torch._dynamo.reset()
    Path(args.worker).write_text(json.dumps({"results": results}))


def meta(args):
    import keras
    import torch

    from kbb.bench import record

    shown = ("device", "threads", "processes", "blocks", "steps", "warmup")
    return {
        **record.machine(),
        **{k: getattr(args, k) for k in shown},
        "keras": keras.version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "jit_models": args.jit_models or list(args.models),
        "load": list(os.getloadavg()),
        "clock": "wall (time.perf_counter)",
        "memory": MEMORY[args.device],
    }


def analyse(processes, alpha=0.05):
    """Per benchmark: the kernel / composed and A/A ratios with simultaneous
    intervals, and the peak memory of each path (medians over processes)."""
    from kbb.bench.stats import mean_interval

    keys = [(r["model"], r["mode"]) for r in processes[0]]
    rows = []
    for i, (model, mode) in enumerate(keys):
        row = {"model": model, "mode": mode}
        mine = [p[i] for p in processes]
        for label, arm in (("ratio", "kernel"), ("aa", "composed-again")):
            pairs = [
                zip(p["times"][arm], p["times"]["composed"], strict=True) for p in mine
            ]
            logs = [statistics.fmean(math.log(a / b) for a, b in ab) for ab in pairs]
            row[label] = list(mean_interval(logs, len(keys), alpha))
        for arm in ARMS[:2]:
            times = [statistics.median_high(p["times"][arm]) for p in mine]
            row[f"ms_{arm}"] = 1e3 * statistics.median_high(times)
            row[f"mem_{arm}"] = statistics.median_high(p["memory"][arm] for p in mine)
        row["warmup_seconds"] = {
            arm: max(p["warmup_seconds"][arm] for p in mine) for arm in ARMS[:2]
        }
        rows.append(row)
    return rows


def verdict(row):
    _, lo, hi = row["ratio"]
    _, aa_lo, aa_hi = row["aa"]
    aa = "" if aa_lo <= 1 <= aa_hi else " (A/A interval excludes 1: inconclusive)"
    return ("faster" if hi < 1 else "slower" if lo > 1 else "no difference shown") + aa


def table(record):
    from kbb import markdown

    def interval(v):
        return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"

    rows = []
    for r in record["rows"]:
        mode = "jit_compile=True" if r["mode"] == "jit" else "eager"
        row = [MODELS.get(r["model"], r["model"]), mode]
        row += [f"{r['ms_composed']:.1f}", f"{r['ms_kernel']:.1f}"]
        row += [interval(r["ratio"]), interval(r["aa"])]
        row += [f"{r['mem_composed'] / 2**20:.1f}", f"{r['mem_kernel'] / 2**20:.1f}"]
        rows.append([*row, verdict(r)])
    header = (
        "train step | mode | composed ms | kernel ms | kernel / composed [95 %] "
        "| A/A [95 %] | composed peak MiB | kernel peak MiB | verdict"
    )
    return markdown.table(header, rows, name="bench-native-models")


def render(folder):
    """Writes the table from FOLDER/models.json into docs/native-kernels.md
    (whose table the pull request's texts quote: pr/keras/pr.toml), then
    its stamp."""
    from kbb.bench import write_text

    record = json.loads((Path(folder) / "models.json").read_text())
    doc = ROOT / "docs/native-kernels.md"
    text = doc.read_text()
    start = text.index(MARK)
    end = text.index("\n\n", start) + 2
    write_text(doc, text[:start] + "\n".join(table(record)) + "\n" + text[end:])
    stamp_native_doc()


def stamp_native_doc():
    """Writes the stamp line of docs/native-kernels.md: its generated tables
    (bench-native-models, native-equivalence) are of the series up to the
    native group and of the pins now."""
    from kbb.bench import write_text
    from kbb.results import stamp_line
    from kbb.workspace import Workspace

    ws = Workspace.find(ROOT)
    doc = ROOT / "docs/native-kernels.md"
    text = doc.read_text().rstrip("\n").split("\n")
    lines = [line for line in text if not line.startswith("<!-- kbb-stamp:")]
    stamp = stamp_line(ws, ws.pin("keras"), "native")
    write_text(doc, "\n".join(lines).rstrip("\n") + "\n\n" + stamp + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    for option, default in dict(processes=3, blocks=6, steps=3, warmup=3).items():
        add(f"--{option}", type=int, default=default)
    add("--threads", type=int, default=1)
    add("--device", choices=("cpu", "cuda"), default="cpu")
    add("--models", nargs="+", default=list(MODELS))
    add("--modes", nargs="+", default=list(MODES))
    jit = "the models measured with jit_compile=True (default: all)"
    add("--jit-models", nargs="+", help=jit)
    add("--seed", type=int, default=0)
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
    from kbb.bench import load
    from kbb.bench import workers
    from kbb.bench import write_text

    with tempfile.TemporaryDirectory() as tmp:

        def start(slot, _build, _backend):
            out = Path(tmp) / f"{slot}.json"
            command = [__file__, *sys.argv[1:], "--worker", out]
            command += ["--seed", args.seed + slot]
            env = workers.env("torch", args.threads)
            return workers.launch(command, env, out, f"process {slot + 1}")

        order = workers.plan(["native"], ["torch"], args.processes, args.seed)
        found, rounds = workers.run_plan(order, start, load.Meter(ROOT, args.threads))
    processes = [p["results"] for p in found]
    record = {"meta": meta(args), "rounds": rounds, "processes": processes}
    record["rows"] = analyse(processes)
    print("\n".join(table(record)))
    if args.record:
        folder = Path(args.record)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "models.json", json.dumps(record, indent=1) + "\n")
        render(folder)


if __name__ == "__main__":
    from kbb import KbbError

    try:
        main()
    except KbbError as e:
        sys.exit(f"kbb: error: {e}")
