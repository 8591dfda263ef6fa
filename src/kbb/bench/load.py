"""The load gate: is the machine still quiet during a round?

Around each round the Meter notes the load average and the triad
bandwidth (benchmarks/triad.py, TRIAD_MIB per array, the run's threads),
and over it the CPU time that other processes took: the machine's busy
time (/proc/stat) less ours (os.times), in cores. The load average lags
and counts our own worker: recorded, not gated. `dropped` drops a round
where others took more than MAX_LOAD cores, or whose triad bandwidth fell
below TRIAD_MIN of the run's median (another process held the memory bus).
"""

import importlib.util
import os
import statistics
import time
from pathlib import Path

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
    return sum(int(fields[i]) for i in BUSY if i < len(fields)) / os.sysconf(
        "SC_CLK_TCK"
    )


def own_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def triad(root, threads):
    """The triad bandwidth in GB/s (benchmarks/triad.py), or None."""
    spec = importlib.util.spec_from_file_location(
        "triad", Path(root) / "benchmarks" / "triad.py"
    )
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
