"""The benchmarks' harness: `run` (the paired timings), `builds` (the
builds side by side), `load` (the load gate), `stats` (intervals and
verdicts), `report`, `tables`, `record`, `index`, `aggregate` (records
and docs/benchmarks.md), `counters` and `checks` (the exact counters),
`power` (benchmark mutants) and `decisions` (the native group's rules).
The suite they run is benchmarks/ at the workspace's root."""


def threads_env(threads):
    """The environment that fixes the threads of every framework a worker
    may load (OpenMP, MKL, OpenBLAS, TensorFlow, XLA) to `threads`; the one
    definition every worker process of the workspace starts with.

    >>> threads_env(1)["XLA_FLAGS"]
    '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
    """
    n = str(threads)
    eigen = "true" if threads > 1 else "false"
    return {
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
