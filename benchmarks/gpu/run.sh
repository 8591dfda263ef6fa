#!/usr/bin/env bash
# tox -e bench's method on a CUDA machine without network: JAX and PyTorch
# (TensorFlow's GPU wheel is too large to carry), pristine keras against
# each patch group with the A/A control, a shuffled order, fixed threads,
# the wall clock with a device synchronization, intervals and verdicts
# (`kbb bench run`, benchmarks/README.md), the device's peak memory, and
# the device kernels of the layer step per build (benchmarks/gpu/kernels.py).
#
# Here first:  bash benchmarks/gpu/prepare.sh     (makes .asv/gpu/carry)
# There, from the repository root, with .asv/gpu/carry carried along:
#
#     bash benchmarks/gpu/run.sh [CARRY]
#
# Needs python3 with jax and torch (CUDA). ROUNDS (3) processes per build
# and backend; BACKENDS (jax,torch). Writes to $OUT (default .asv/gpu/out):
# run/ (record.md, summary.json, raw.json.gz), kernels-BUILD-BACKEND.json,
# log.txt. Exit status: `kbb bench run`'s (0 no regression, 1 regression,
# 3 inconclusive, 2 error).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=$(cd "${1:-$root/.asv/gpu/carry}" && pwd)
out=${OUT:-$root/.asv/gpu/out}
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/kbb-gpu.XXXXXX")
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
step() { echo "== [$(date +%T), ${SECONDS}s] $*"; }

step "install the carried wheels (no network)"
"$python" -m pip install -q --no-index --no-deps --target "$work/site" \
    "$carry"/wheels/*.whl 2>/dev/null || "$python" -c 'import sys, zipfile
for w in sys.argv[2:]: zipfile.ZipFile(w).extractall(sys.argv[1])' "$work/site" "$carry"/wheels/*.whl
export PYTHONPATH="$root/src:$work/site" PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

step "kernels of the layer step, per build"
for build in pristine bessel native; do
    for backend in $(echo "${BACKENDS:-jax,torch}" | tr , ' '); do
        PYTHONPATH="$carry/builds/$build:$PYTHONPATH" KERAS_BACKEND=$backend \
            KBB_BENCH_GPU=1 "$python" "$root/benchmarks/gpu/kernels.py" "$backend" \
            "$out/kernels-$build-$backend.json" || echo "kernels: $build $backend failed"
    done
done

step "timings: kbb bench run"
"$python" -m kbb --root "$root" bench run --builds-from "$carry/builds" \
    --backends "${BACKENDS:-jax,torch}" --rounds "${ROUNDS:-3}" --output "$out/run"
status=$?

step "whole training steps, kernel against composed path: kbb bench models"
PYTHONPATH="$carry/builds/native:$PYTHONPATH" "$python" -m kbb --root "$root" bench models \
    --device cuda --processes "${ROUNDS:-3}" --record "$out/native-models" \
    || echo "kbb bench models: failed"
step "done: $out (status $status)"
exit $status
