"""`kbb bench models`: whole training steps of real models (MODELS, eager
or jit_compile) on PyTorch, BatchNormalization's kernel path against its
backend-agnostic path in the native group's build: the table
`bench-native-models` of docs/native-kernels.md. In each worker process
(benchmarks/models.py), blocks of `--steps` steps run the arms `kernel`,
`composed` and `composed-again` (the A/A control) in a shuffled order; a
process's statistic is the mean of its blocks' paired log ratios, the
interval Student's over the processes, Bonferroni over the benchmarks.
Peak memory: MEMORY. The workers need the native group's build
importable as `keras`.
"""

import json
import math
import statistics
from pathlib import Path

from kbb import KbbError
from kbb import markdown
from kbb.bench import record
from kbb.bench import workers
from kbb.bench.stats import mean_interval
from kbb.files import write_text
from kbb.results import restamped
from kbb.results import stamp_line

WORKER = Path("benchmarks") / "models.py"
DOC = Path("docs") / "native-kernels.md"
PATHS = ("kernel", "composed")  # the arms beside the A/A copy, composed-again
MODELS = {
    "resnet50-64": "ResNet50, 64x64, batch 8",
    "mobilenetv2-96": "MobileNetV2, 96x96, batch 8",
    "conv-bn-relu-32": "Conv-BN-ReLU x3, 32x32x32, batch 8",
}
DEFAULTS = dict(processes=3, blocks=6, steps=3, warmup=3, threads=1, seed=0)
# What the worker runs; the threads reach it in its environment.
SETTINGS = ("models", "modes", "jit_models", "blocks", "steps", "warmup", "device")
MEMORY = {  # tensors only: not the Python heap, not the allocator's cache
    "cpu": "PyTorch CPU profiler (profile_memory=True): peak live tensor bytes "
    "allocated during one step",
    "cuda": "torch.cuda.max_memory_allocated over one step",
}


def measure(ws, args):
    """([worker record], {round: what the load meter noted}): one process
    of benchmarks/models.py per round, its seed the run's plus its slot."""
    settings = {k: getattr(args, k) for k in SETTINGS}

    def start(slot, _build, _backend, out):
        given = json.dumps({**settings, "seed": args.seed + slot})
        command = [ws.root / WORKER, out, given]
        env = workers.env("torch", args.threads)
        return workers.launch(command, env, out, f"process {slot + 1}")

    order = workers.plan(["native"], ["torch"], args.processes, args.seed)
    return workers.run_plan(order, start, workers.Meter(ws.root, args.threads))


def meta(args, worker):
    """The run's meta: the machine, the options, what the `worker` ran."""
    shown = ("device", "threads", "processes", "blocks", "steps", "warmup")
    return {
        **record.machine(),
        **{k: getattr(args, k) for k in shown},
        "keras": worker["keras"],
        "torch": worker["torch"],
        "gpu": worker["gpu"],
        "jit_models": list(args.jit_models),
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
        for arm in PATHS:
            times = [statistics.median_high(p["times"][arm]) for p in mine]
            row[f"ms_{arm}"] = 1e3 * statistics.median_high(times)
            row[f"mem_{arm}"] = statistics.median_high(p["memory"][arm] for p in mine)
        warmup = [p["warmup_seconds"] for p in mine]
        row["warmup_seconds"] = {a: max(w[a] for w in warmup) for a in PATHS}
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


def render(ws, folder):
    """Writes the table from FOLDER/models.json into docs/native-kernels.md
    (which pr/keras/pr.toml quotes), then its stamp."""
    run = json.loads((Path(folder) / "models.json").read_text())
    doc = ws.root / DOC
    text = markdown.replace(doc.read_text(), "bench-native-models", table(run))
    if text is None:
        raise KbbError(f"{DOC} has no table bench-native-models to replace")
    write_text(doc, text)
    stamp_native_doc(ws)


def stamp_native_doc(ws):
    """Writes the stamp line of docs/native-kernels.md: its generated tables
    are of the series up to the native group and of the pins now."""
    doc = ws.root / DOC
    stamp = stamp_line(ws, ws.pin("keras"), "native")
    write_text(doc, restamped(doc.read_text(), stamp))


def arguments(parser):
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


def main(ws, args):
    if args.render:
        render(ws, args.render)
        return 0
    if args.quick:
        args.processes, args.blocks, args.steps, args.warmup = 2, 2, 1, 1
        args.models = ["conv-bn-relu-32"]
    args.jit_models = args.jit_models or args.models
    found, rounds = measure(ws, args)
    processes = [p["results"] for p in found]
    run = {"meta": meta(args, found[0]), "rounds": rounds, "processes": processes}
    run["rows"] = analyse(processes)
    print("\n".join(table(run)))
    if args.record:
        folder = Path(args.record)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "models.json", json.dumps(run, indent=1) + "\n")
        render(ws, folder)
    return 0
