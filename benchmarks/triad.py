"""A STREAM-like triad: the memory bandwidth the benchmarks can reach.

    python benchmarks/triad.py [--threads T] [--mib M]

a = b + s * c over float64 arrays of M MiB each, split between T threads
(numpy releases the GIL) in blocks of BLOCK elements, so that the
multiply's result stays in the cache for the add; 24 bytes per element,
as STREAM counts them. The best of REPEATS passes, in GB/s.
"""

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK = 1 << 16
REPEATS = 5


def _part(a, b, c, scalar, start, stop):
    for i in range(start, stop, BLOCK):
        j = min(i + BLOCK, stop)
        np.multiply(c[i:j], scalar, out=a[i:j])
        np.add(a[i:j], b[i:j], out=a[i:j])


def triad(threads, mib=256, repeats=REPEATS):
    """Best bandwidth of `repeats` triad passes with `threads` threads, GB/s."""
    n = mib * (1 << 20) // 8
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    bounds = [n * k // threads for k in range(threads + 1)]
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats + 1):  # the first pass touches the pages
            start = time.perf_counter()
            parts = [
                pool.submit(_part, a, b, c, 3.0, lo, hi)
                for lo, hi in zip(bounds, bounds[1:], strict=False)
            ]
            for part in parts:
                part.result()
            best = min(best, time.perf_counter() - start)
    if not np.all(a == 7.0):
        raise RuntimeError("triad: wrong result")
    return 24 * n / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    for threads in sorted({1, args.threads}):
        print(f"{threads} thread(s): {triad(threads, args.mib):.1f} GB/s")


if __name__ == "__main__":
    main()
