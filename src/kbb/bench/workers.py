"""Worker processes, each fresh, threads fixed (kbb.bench.threads_env), a
build first on PYTHONPATH: `plan` orders them in rounds, `run_plan` runs a
plan with the Meter around each round, `launch` runs one worker and reads
its JSON record. The load gate (benchmarks/README.md): the Meter notes the
load average and the triad bandwidth before and after a round, and the
CPU time others took over it (/proc/stat's busy time less ours); `dropped`
drops a round where others took more than MAX_LOAD cores, or whose triad
fell below TRIAD_MIN of the run's median (another process held the
memory bus).
"""

import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kbb import KbbError
from kbb import log
from kbb.bench import builds
from kbb.bench import threads_env


def env(backend, threads, folder=None, **settings):
    """A worker's environment: this one, the threads fixed, KERAS_BACKEND,
    `settings`, and the build in `folder` (if any) first on PYTHONPATH."""
    out = {**os.environ, **threads_env(threads), "KERAS_BACKEND": backend, **settings}
    if folder is not None:
        out["PYTHONPATH"] = builds.pythonpath(folder)
    return out


def plan(names, groups, rounds, seed):
    """[(round, name, group)]: each pair once per round; within a round the
    names of one group (a backend, a configuration) run in adjacent
    processes; groups and names in an order shuffled anew in every round."""
    rng = random.Random(seed)
    order = []
    for r in range(rounds):
        for group in rng.sample(groups, len(groups)):
            order.extend((r, name, group) for name in rng.sample(names, len(names)))
    return order


def launch(command, env, output, what, folder=None):
    """Runs `python COMMAND...`, a worker that writes its JSON record to
    `output`; the record. With `folder`, the worker must have imported
    keras from there."""
    command = [sys.executable, *map(str, command)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise KbbError(
            f"{what}: the worker failed; its error, to mend before a rerun:\n"
            f"{result.stderr[-3000:]}"
        )
    found = json.loads(Path(output).read_text())
    if folder is not None and not found["keras_file"].startswith(str(folder)):
        raise KbbError(
            f"the worker imported {found['keras_file']}, not the build in "
            f"{folder}: take the other keras off PYTHONPATH"
        )
    return found


def run_plan(order, start, meter):
    """([record], {round: what `meter` met}) of the processes of `order`:
    `start(slot, name, group, output)` runs each one, a worker that writes
    its record to `output` (a file in a temporary folder), and returns the
    record, which gets its build, round, slot and seconds."""
    records, met, began = [], {}, time.time()
    rounds = len({r for r, _, _ in order})
    with tempfile.TemporaryDirectory() as tmp:
        for slot, (r, name, group) in enumerate(order):
            if slot == 0 or order[slot - 1][0] != r:
                meter.start()
            log(f"[{slot + 1}/{len(order)}] round {r + 1}: {name} on {group}")
            t0 = time.time()
            found = start(slot, name, group, Path(tmp) / f"{slot}.json")
            found.update(build=name, round=r, slot=slot, seconds=time.time() - t0)
            records.append(found)
            if slot + 1 == len(order) or order[slot + 1][0] != r:
                met[str(r)] = meter.stop()
                if r == order[0][0] and rounds > 1:
                    spent = (time.time() - began) / 60
                    log(f"round 1 took {spent:.1f} min: about {spent * rounds:.0f} min")
    return records, met


MAX_LOAD = 0.3  # cores that other processes may use during a round
# Of the run's median triad bandwidth: a quiet 2-core machine's rounds
# spread by +-15 % (run 016 dropped quiet rounds at 0.83 and 0.84).
TRIAD_MIN = 0.75
TRIAD_MIB = 64
BUSY = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal


def busy_seconds():
    """CPU seconds all processes were busy (/proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    busy = sum(int(fields[i]) for i in BUSY if i < len(fields))
    return busy / os.sysconf("SC_CLK_TCK")


def own_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def triad(root, threads):
    """The triad bandwidth in GB/s (benchmarks/triad.py), or None."""
    path = Path(root) / "benchmarks" / "triad.py"
    spec = importlib.util.spec_from_file_location("triad", path)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.triad(threads, mib=TRIAD_MIB, repeats=3)
    except ImportError:  # no numpy: not a bench environment
        return None


class Meter:
    """What one round met: `start()` before, `stop()` after."""

    def __init__(self, root, threads):
        self.root, self.threads = root, threads

    def start(self):
        self.t0 = time.monotonic()
        self.info = {"load_before": os.getloadavg()[0]}
        self.info["triad_before"] = triad(self.root, self.threads)
        self.busy0, self.own0 = busy_seconds(), own_seconds()

    def stop(self):
        wall = time.monotonic() - self.t0
        busy, own = busy_seconds(), own_seconds()
        if busy is not None and self.busy0 is not None:
            foreign = (busy - self.busy0) - (own - self.own0)
            self.info["foreign_cores"] = max(foreign, 0.0) / max(wall, 1e-9)
        self.info["triad_after"] = triad(self.root, self.threads)
        self.info.update(load_after=os.getloadavg()[0], seconds=wall)
        return self.info


def dropped(rounds, max_load=MAX_LOAD, triad_min=TRIAD_MIN):
    """{round: reason} of the rounds to drop, from their recorded info."""
    triads = [
        v
        for r in rounds.values()
        for k in ("triad_before", "triad_after")
        if (v := r.get(k))
    ]
    median = statistics.median(triads) if triads else None
    out = {}
    for number, info in rounds.items():
        reasons = []
        foreign = info.get("foreign_cores")
        if foreign is not None and foreign > max_load:
            reasons.append(f"others used {foreign:.2f} cores")
        for key in ("triad_before", "triad_after"):
            value = info.get(key)
            if median and value and value < triad_min * median:
                what = key.replace("_", " ")
                reasons.append(f"{what} {value / median:.0%} of median")
        if reasons:
            out[number] = "; ".join(reasons)
    return out
