r"""Whole training steps of real models on the PyTorch backend, with
BatchNormalization's kernel path against its backend-agnostic path, in
one build (the native group's), switched with keras'
`config._set_use_backend_agnostic_ops`.

Design (docs/benchmarks.md, table `bench-native-models`):

- Each benchmark is a model and a mode: eager, or `jit_compile=True`
  (`torch.compile`). The models: `keras.applications` ResNet50 and
  MobileNetV2 (weights=None, small inputs) and a Conv-BN-ReLU stage.
- In each worker process (1 thread), after warming up every arm, blocks
  of `--steps` training steps (`model.train_on_batch`) run the three arms
  in a shuffled order: `kernel` (the switch off), `composed` (on) and
  `composed-again` (on: the A/A control). A block's ratios are paired:
  kernel / composed and composed-again / composed.
- The statistic of a process is the mean over its blocks of the log
  ratio; the processes are the independent units: the interval is the
  mean over processes plus or minus Student's t (P - 1 degrees of
  freedom, Bonferroni over the benchmarks: simultaneous 95 %).
- Peak memory: PyTorch's CPU profiler (`profile_memory=True`), the peak of
  the bytes allocated and not yet freed during one training step, over
  what was allocated before it (tensors only; not the Python heap, not
  the allocator's cache). With `--device cuda`:
  `torch.cuda.max_memory_allocated` over one step instead.

    python benchmarks/native_models.py --processes 3 \
        --record benchmarks/runs/NNN-DAY-native-models
    python benchmarks/native_models.py --quick          # a smoke run

It needs the native group's build importable as `keras`
(`kbb install keras --ref group/native`, or PYTHONPATH on a source tree).
"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("kernel", "composed", "composed-again")
# name: (builder, batch size)
MODELS = ("resnet50-64", "mobilenetv2-96", "conv-bn-relu-32")
MODES = ("eager", "jit")


def build(name):
    import keras

    keras.utils.set_random_seed(1)
    if name == "resnet50-64":
        model = keras.applications.ResNet50(
            weights=None, input_shape=(64, 64, 3), classes=10
        )
        return model, (8, 64, 64, 3)
    if name == "mobilenetv2-96":
        model = keras.applications.MobileNetV2(
            weights=None, input_shape=(96, 96, 3), classes=10
        )
        return model, (8, 96, 96, 3)
    layers = keras.layers
    stage = [keras.Input((32, 32, 32))]
    for _ in range(3):
        stage += [
            layers.Conv2D(32, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
        ]
    stage += [layers.GlobalAveragePooling2D(), layers.Dense(10, "softmax")]
    return keras.Sequential(stage), (8, 32, 32, 32)


def switch(arm):
    from keras.src.backend import config

    config._set_use_backend_agnostic_ops(arm != "kernel")


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
    events = [
        e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    ]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def worker(args):
    """One process: every benchmark, blocks of interleaved arms; prints one
    JSON object."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "cuda" else "cpu"
    rng = random.Random(args.seed)
    results = []
    for name in args.models:
        for mode in args.modes:
            if mode == "jit" and args.jit_models and name not in args.jit_models:
                continue
            model, shape = build(name)
            model.compile(
                "sgd", "sparse_categorical_crossentropy", jit_compile=mode == "jit"
            )
            data = np.random.default_rng(0)
            x = data.normal(size=shape).astype("float32")
            y = data.integers(0, 10, size=(shape[0],))

            def step(x=x, y=y, model=model):
                model.train_on_batch(x, y)
                if device == "cuda":
                    torch.cuda.synchronize()

            compile_seconds = {}
            for arm in ARMS[:2]:
                switch(arm)
                start = time.perf_counter()
                for _ in range(args.warmup):
                    step()
                compile_seconds[arm] = time.perf_counter() - start
            times = {arm: [] for arm in ARMS}
            for _ in range(args.blocks):
                order = list(ARMS)
                rng.shuffle(order)
                for arm in order:
                    switch(arm)
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        step()
                    times[arm].append((time.perf_counter() - start) / args.steps)
            memory = {}
            for arm in ARMS[:2]:
                switch(arm)
                memory[arm] = peak_memory(step, device)
            switch("composed")
            results.append(
                {
                    "model": name,
                    "mode": mode,
                    "times": times,
                    "memory": memory,
                    "warmup_seconds": compile_seconds,
                }
            )
            del model
            torch._dynamo.reset()
    print(json.dumps(results))


def meta(args):
    import keras
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = None
    if args.device == "cuda":
        gpu = torch.cuda.get_device_name(0)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "keras": keras.version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "gpu": gpu,
        "device": args.device,
        "threads": args.threads,
        "processes": args.processes,
        "blocks": args.blocks,
        "steps": args.steps,
        "warmup": args.warmup,
        "jit_models": args.jit_models or list(args.models),
        "load": list(os.getloadavg()),
        "clock": "wall (time.perf_counter)",
        "memory": (
            "torch.cuda.max_memory_allocated over one step"
            if args.device == "cuda"
            else "PyTorch CPU profiler (profile_memory=True): peak live tensor "
            "bytes allocated during one step"
        ),
    }


def analyse(processes, alpha=0.05):
    """Per benchmark: the kernel / composed and A/A ratios with simultaneous
    intervals, and the peak memory of each path (median over processes)."""
    sys.path.insert(0, str(ROOT / "src"))
    from kbb.bench.stats import critical

    keys = [(r["model"], r["mode"]) for r in processes[0]]
    m = len(keys)
    rows = []
    for i, (model, mode) in enumerate(keys):
        row = {"model": model, "mode": mode}
        for label, (a, b) in (
            ("ratio", ("kernel", "composed")),
            ("aa", ("composed-again", "composed")),
        ):
            means = []
            for process in processes:
                t = process[i]["times"]
                logs = [math.log(x / y) for x, y in zip(t[a], t[b], strict=True)]
                means.append(sum(logs) / len(logs))
            p = len(means)
            mean = sum(means) / p
            if p > 1:
                sd = math.sqrt(sum((v - mean) ** 2 for v in means) / (p - 1))
                half = critical(m, p - 1, alpha) * sd / math.sqrt(p)
            else:
                half = float("nan")
            row[label] = [math.exp(mean), math.exp(mean - half), math.exp(mean + half)]
        for arm in ("kernel", "composed"):
            ms = sorted(1e3 * statistics_median(p[i]["times"][arm]) for p in processes)
            row[f"ms_{arm}"] = ms[len(ms) // 2]
            mem = sorted(p[i]["memory"][arm] for p in processes)
            row[f"mem_{arm}"] = mem[len(mem) // 2]
        row["warmup_seconds"] = {
            arm: max(p[i]["warmup_seconds"][arm] for p in processes)
            for arm in ("kernel", "composed")
        }
        rows.append(row)
    return rows


def statistics_median(values):
    values = sorted(values)
    return values[len(values) // 2]


def verdict(row):
    _, lo, hi = row["ratio"]
    _, aa_lo, aa_hi = row["aa"]
    aa = "" if aa_lo <= 1 <= aa_hi else " (A/A interval excludes 1: inconclusive)"
    if hi < 1:
        return "faster" + aa
    if lo > 1:
        return "slower" + aa
    return "no difference shown" + aa


LABELS = {
    "resnet50-64": "ResNet50, 64x64, batch 8",
    "mobilenetv2-96": "MobileNetV2, 96x96, batch 8",
    "conv-bn-relu-32": "Conv-BN-ReLU x3, 32x32x32, batch 8",
}


def table(record):
    sys.path.insert(0, str(ROOT / "src"))
    from kbb import markdown

    def interval(v):
        return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"

    rows = []
    for r in record["rows"]:
        rows.append(
            [
                LABELS.get(r["model"], r["model"]),
                "jit_compile=True" if r["mode"] == "jit" else "eager",
                f"{r['ms_composed']:.1f}",
                f"{r['ms_kernel']:.1f}",
                interval(r["ratio"]),
                interval(r["aa"]),
                f"{r['mem_composed'] / 2**20:.1f}",
                f"{r['mem_kernel'] / 2**20:.1f}",
                verdict(r),
            ]
        )
    return markdown.table(
        "train step | mode | composed ms | kernel ms | kernel / composed [95 %] "
        "| A/A [95 %] | composed peak MiB | kernel peak MiB | verdict",
        rows,
        name="bench-native-models",
    )


def render(folder):
    """Writes the table into docs/benchmarks.md (its own section, before the
    stamp line) from FOLDER/models.json."""
    folder = Path(folder).resolve()
    record = json.loads((folder / "models.json").read_text())
    where = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder.name
    meta = record["meta"]
    head = "## The native group: whole training steps (PyTorch)"
    text = [
        head,
        "",
        "Generated by `python benchmarks/native_models.py --render "
        f"{where}` from `{where}/models.json`; do not edit. "
        f"keras {meta['keras']}, torch {meta['torch']}, {meta['device']} "
        f"({meta['cpu']}, {meta['cpus']} cores; GPU: {meta['gpu'] or 'none'}), "
        f"{meta['threads']} thread(s), {meta['processes']} processes x "
        f"{meta['blocks']} blocks x {meta['steps']} steps per arm, paired "
        "interleaved blocks in one process (keras' switch "
        "`config._set_use_backend_agnostic_ops`), simultaneous 95 % "
        "intervals over processes; ms: median step time; memory: "
        f"{meta['memory']}. Load average at the start: "
        f"{'/'.join(f'{v:.1f}' for v in meta['load'])}.",
        "",
        *table(record),
    ]
    doc = ROOT / "docs/benchmarks.md"
    old = doc.read_text()
    if head in old:
        start = old.index(head)
        end = old.index("<!-- table: bench-native-models -->", start)
        end = old.index("\n\n", end) + 2
        old = old[:start] + old[end:]
    stamp = old.rindex("<!-- kbb-stamp:")
    doc.write_text(old[:stamp] + "\n".join(text) + "\n" + old[stamp:])
    # The same table in docs/native-kernels.md, which the pull request's
    # texts quote (pr/keras/pr.toml), under that document's own stamp.
    doc = ROOT / "docs/native-kernels.md"
    old = doc.read_text()
    mark = "<!-- table: bench-native-models -->"
    start = old.index(mark)
    end = old.index("\n\n", start) + 2
    doc.write_text(old[:start] + "\n".join(table(record)) + "\n" + old[end:])
    stamp_native_doc()


def stamp_native_doc():
    """Writes the stamp line of docs/native-kernels.md: its generated tables
    (bench-native-models, native-equivalence) are of the series up to the
    native group and of the pins now."""
    sys.path.insert(0, str(ROOT / "src"))
    from kbb.results import stamp_line
    from kbb.workspace import Workspace

    ws = Workspace.find(ROOT)
    doc = ROOT / "docs/native-kernels.md"
    lines = [
        line
        for line in doc.read_text().rstrip("\n").split("\n")
        if not line.startswith("<!-- kbb-stamp:")
    ]
    stamp = stamp_line(ws, ws.pin("keras"), "native")
    doc.write_text("\n".join(lines).rstrip("\n") + "\n\n" + stamp + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument(
        "--jit-models",
        nargs="+",
        help="the models measured with jit_compile=True (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", help="a run folder, benchmarks/runs/NNN-DAY-KIND")
    parser.add_argument("--render", help="only write the table from a run folder")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "torch"
    if args.render:
        render(args.render)
        return
    if args.quick:
        args.processes, args.blocks, args.steps, args.warmup = 2, 2, 1, 1
        args.models = ["conv-bn-relu-32"]
    if args.worker:
        worker(args)
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), KERAS_BACKEND="torch")
    processes = []
    for p in range(args.processes):
        command = [sys.executable, __file__, "--worker", "--seed", str(args.seed + p)]
        for flag in ("blocks", "steps", "warmup", "threads", "device"):
            command += [f"--{flag}", str(getattr(args, flag))]
        command += ["--models", *args.models, "--modes", *args.modes]
        if args.jit_models:
            command += ["--jit-models", *args.jit_models]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        processes.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"process {p + 1}/{args.processes} done", file=sys.stderr)
    record = {"meta": meta(args), "processes": processes, "rows": analyse(processes)}
    for line in table(record):
        print(line)
    if args.record:
        folder = Path(args.record)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "models.json").write_text(json.dumps(record, indent=1) + "\n")
        render(folder)


if __name__ == "__main__":
    main()
