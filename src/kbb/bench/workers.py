"""Worker processes: every timing of the workspace runs in fresh processes
with the threads of every framework fixed (kbb.bench.threads_env) and, for
a build under test, its unpacked wheel first on PYTHONPATH.

`plan` orders the processes in rounds, `run_plan` runs a plan with the
load meter (kbb.bench.load) around each round, `launch` runs one worker
and reads the JSON record it writes. `kbb bench run`, `kbb bench power`,
`kbb decisions` and benchmarks/native_models.py time so; `kbb counters`
launches its workers alone (exact counts: no rounds, no meter).
"""

import json
import os
import random
import subprocess
import sys
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
    """Runs the processes of `order` (plan): `start(slot, name, group)`
    returns each one's record, which gets its build, round, slot and
    seconds; `meter` (a load.Meter) notes what each round met. Logs the
    progress, and the duration after the first round. ([record], {round:
    what it met})."""
    records, met, began = [], {}, time.time()
    rounds = len({r for r, _, _ in order})
    for slot, (r, name, group) in enumerate(order):
        if slot == 0 or order[slot - 1][0] != r:
            meter.start()
        log(f"[{slot + 1}/{len(order)}] round {r + 1}: {name} on {group}")
        t0 = time.time()
        found = start(slot, name, group)
        found.update(build=name, round=r, slot=slot, seconds=time.time() - t0)
        records.append(found)
        if slot + 1 == len(order) or order[slot + 1][0] != r:
            met[str(r)] = meter.stop()
            if r == order[0][0] and rounds > 1:
                spent = (time.time() - began) / 60
                log(f"round 1 took {spent:.1f} min: about {spent * rounds:.0f} min")
    return records, met
