"""The commands that are not per target: `kbb bench run|power|models|
aggregate|asv`, `counters`, `decisions`, `study`, `mutants` and `status`.
Each job's module adds its own options (`arguments(parser)`) and runs
from the parsed arguments (`main(ws, args)`, which returns the exit
status); the heavy imports (numpy, the frameworks) wait until a job runs."""

from kbb import lock
from kbb import mutants
from kbb import status
from kbb.bench import aggregate
from kbb.bench import counters
from kbb.bench import decisions
from kbb.bench import models
from kbb.bench import power
from kbb.bench import run as bench_run
from kbb.study import run as study_run

# name: (module, help, examples)
BENCH = {
    "run": (
        bench_run,
        "time pristine keras against each patch group, with an A/A control",
        [
            "kbb bench run --quick",
            "kbb bench run --backends torch --builds pristine,group/bessel",
            "kbb bench run --export-builds /tmp/builds",
        ],
    ),
    "power": (
        power,
        "can the timing method see a known regression? (benchmark mutants)",
        ["kbb bench power", "kbb bench power --rounds 3 --no-record"],
    ),
    "models": (
        models,
        "whole training steps on the native group's kernel and composite paths",
        [
            "kbb bench models --record benchmarks/runs/NNN-DAY-native-models",
            "kbb bench models --quick",
            "kbb bench models --render benchmarks/runs/NNN-DAY-native-models",
        ],
    ),
    "aggregate": (
        aggregate,
        "rewrite docs/benchmarks.md and the runs' index from the records",
        ["kbb bench aggregate"],
    ),
    "asv": (
        bench_run.Asv,
        "asv with the workspace's configuration (ARGS go to asv)",
        [
            "kbb bench asv continuous pristine group/bessel",
            "kbb bench asv --tf-keras run",
        ],
    ),
}
JOBS = {
    "counters": (
        counters,
        "exact cost counters of each build, gated against expected.json",
        ["kbb counters", "kbb counters --backends jax --update"],
    ),
    "decisions": (
        decisions,
        "the native group's two speed rules, kernel against composite ops",
        ["kbb decisions --processes 6", "kbb decisions --samples out/d.json --record"],
    ),
    "study": (
        study_run,
        "what the fix changes for models retrained with it (docs/impact.md)",
        ["kbb study --jobs 2", "kbb study --quick", "kbb study --render-only"],
    ),
    "mutants": (
        mutants,
        "the tests must catch every plausible wrong fix (tests/mutants/)",
        ["kbb mutants --target keras", "kbb mutants --mutant 05 --every-backend"],
    ),
    "status": (
        status,
        "the checkouts, unexported commits, stale results and documents, PRs",
        ["kbb status", "kbb status --json"],
    ),
}
# Jobs that read or write what other kbb commands change hold the lock.
LOCKED = {"counters", "mutants", "decisions", "study"}


def _job(module, name):
    def run(ws, args, argv):
        if name in LOCKED or (name == "bench" and args.job != "aggregate"):
            with lock.locked(ws, " ".join(["kbb", *argv])):
                return module.main(ws, args)
        return module.main(ws, args)

    return run


def register(command):
    """Adds the jobs to the `kbb` parser."""
    sub = command("bench", "benchmarks: timings, their power, models, aggregate, asv")
    bench = sub.add_subparsers(dest="job", required=True, metavar="JOB")
    for name, (module, help, examples) in {**BENCH, **JOBS}.items():
        under = {"under": bench} if name in BENCH else {}
        job = command(name, help, examples, module.__doc__, **under)
        module.arguments(job)
        job.set_defaults(run=_job(module, "bench" if under else name))
