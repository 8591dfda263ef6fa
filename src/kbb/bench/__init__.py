"""The benchmarks' harness: `workers` (worker processes, rounds, the load
gate), `run` (the paired timings), `builds`, `stats` (intervals and
verdicts), `report`, `tables`, `record`, `aggregate` (records and
docs/benchmarks.md), `counters` (the exact counters), `power` (benchmark
mutants) and `decisions` (the native group's rules). The suite they run
is benchmarks/."""


def threads_env(threads):
    """The environment that fixes the threads of every framework a worker
    may load to `threads`, and tells the worker (KBB_BENCH_THREADS); every
    worker process of the workspace starts with it.

    >>> threads_env(1)["XLA_FLAGS"]
    '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
    >>> threads_env(4)["OMP_NUM_THREADS"], threads_env(4)["TF_NUM_INTEROP_THREADS"]
    ('4', '1')
    """
    n = str(threads)
    eigen = "true" if threads > 1 else "false"
    return {
        "KBB_BENCH_THREADS": n,
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={eigen} "
        f"intra_op_parallelism_threads={n}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONHASHSEED": "0",
    }
