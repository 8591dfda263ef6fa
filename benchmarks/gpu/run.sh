#!/usr/bin/env bash
# benchmarks/keras3 on a CUDA machine without network: JAX and PyTorch
# backends (no TensorFlow there), pristine against patched keras.
#
# Here first:  bash benchmarks/gpu/prepare.sh         (makes .asv/gpu/carry)
# There, from the repository root, with .asv/gpu/carry carried along:
#
#     bash benchmarks/gpu/run.sh [CARRY]       (5 to 7 min on an H100, estimated)
#
# Needs python3 (3.12; PYTHON overrides) with jax and torch, and git. asv
# cannot build environments offline, so it runs in the running Python
# (`asv run --python=same`), once per commit with that commit's keras wheel
# first on ASV_PYTHONPATH, and records it under the commit's hash
# (`--set-commit-hash`). Order: upstream, patched, then the time_
# benchmarks again as patched, upstream (`--append-samples`), so that warm-up
# and clock drift do not favour one side; that second pass is skipped if it
# would end the script past BUDGET seconds (420). Writes to $OUT (default
# .asv/gpu/out): log.txt, compare.txt (asv compare --split), benchmarks-gpu.md
# (kbb.benchsummary, gated with FACTOR), machine.json, results.tar.gz and
# html.tar.gz (asv publish). Exit status: 1 on a regression, 2 on an error.
# For a trial run: BENCH (asv -b regex of the first pass, default all but
# peakmem_) and BENCH2 (of the second pass, default the time_ benchmarks).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=$(cd "${1:-$root/.asv/gpu/carry}" && pwd)
out=${OUT:-$root/.asv/gpu/out}
python=${PYTHON:-python3}
factor=${FACTOR:-1.5}
work=$(mktemp -d "${TMPDIR:-/tmp}/kbb-gpu.XXXXXX")
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
step() { echo "== [$(date +%T), ${SECONDS}s] $*"; }
fail() { echo "run.sh: $*"; exit 2; }
command -v git >/dev/null || fail "git is required (asv reads the commits)"

step "install the carried wheels (no network)"
install() {  # install DIR WHEEL...: pip --target, or unzip where pip lacks
    local dir=$1
    shift
    "$python" -m pip install -q --no-index --no-deps --no-compile \
        --disable-pip-version-check --target "$dir" "$@" 2>/dev/null && return
    mkdir -p "$dir"
    "$python" -c 'import sys, zipfile
for w in sys.argv[2:]: zipfile.ZipFile(w).extractall(sys.argv[1])' "$dir" "$@"
}
install "$work/site" "$carry"/wheels/*.whl || fail "wheels"
install "$work/keras-upstream" "$carry"/keras-upstream/*.whl || fail "keras"
install "$work/keras-patched" "$carry"/keras-patched/*.whl || fail "keras"
export PYTHONPATH="$work/site" PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
# asv forks each benchmark from a server that imported keras: keras' torch
# backend asks torch.cuda.is_available() at import, which must not
# initialize CUDA before the fork (NVML answers instead). LAUNCH=spawn
# starts a fresh interpreter per benchmark instead, slower.
export PYTORCH_NVML_BASED_CUDA_CHECK=1
# time_ benchmarks take wall time on a GPU (CPU time misses the device's).
export KBB_BENCH_TIMER=wall
asv() {  # asv CONFIG COMMAND...
    local name=$1
    shift
    "$python" -m asv --config "$work/$name.conf.json" "$@"
}

step "the upstream checkout, from the bundle"
git init -q "$work/keras"
git -C "$work/keras" fetch -q "$carry/keras.bundle" 'refs/heads/*:refs/heads/*'
git -C "$work/keras" symbolic-ref HEAD refs/heads/upstream
upstream=$(git -C "$work/keras" rev-parse upstream)
patched=$(git -C "$work/keras" rev-parse patched)

# The configuration of asv.conf.json, for the running Python: no build, the
# backends as env_nobuild (one asv environment, and result file, each). asv
# runs the heads of "branches" in an existing environment, so each run gets
# a configuration with its branch alone; compare and publish see both.
config() {  # config NAME BRANCH...
    local name=$1 branches
    shift
    branches=$(printf '"%s", ' "$@")
    cat >"$work/$name.conf.json" <<EOF
{
    "version": 1,
    "project": "keras",
    "project_url": "https://github.com/keras-team/keras",
    "repo": "$work/keras",
    "dvcs": "git",
    "branches": [${branches%, }],
    "environment_type": "virtualenv",
    "matrix": {"env_nobuild": {"KERAS_BACKEND": ["jax", "torch"]}},
    "launch_method": "forkserver",
    "benchmark_dir": "$root/benchmarks/keras3",
    "results_dir": "$work/results",
    "html_dir": "$work/html",
    "default_benchmark_timeout": 300
}
EOF
}
config asv upstream patched
config upstream upstream
config patched patched

step "machine info: device, driver, CUDA and library versions"
machine=$(
    PYTHONPATH="$work/keras-upstream:$PYTHONPATH" \
        XLA_PYTHON_CLIENT_PREALLOCATE=false "$python" \
        "$root/benchmarks/gpu/machine.py" "$out/machine.json"
) || fail "machine info"
echo "asv machine: $machine"
cat "$out/machine.json"

# On a GPU the steps take milliseconds: 1 s of samples per process is enough.
timing=(-a rounds=1 -a "repeat=(10, 200, 1.0)" -a warmup_time=0.3)
run() {  # run REF [asv run options]: that commit's keras, recorded under REF
    local ref=$1
    shift
    # asv drops PYTHONPATH in the benchmark processes and puts ASV_PYTHONPATH
    # in its place: the commit's keras first, then asv_runner and the rest.
    export ASV_PYTHONPATH="$work/keras-$ref:$work/site"
    step "asv run: $ref ($(git -C "$work/keras" rev-parse --short "$ref")), keras" \
        "$(PYTHONPATH=$ASV_PYTHONPATH "$python" -c 'import keras; print(keras.version())')"
    asv "$ref" run --python=same --set-commit-hash="$ref" --machine "$machine" \
        --launch-method "${LAUNCH:-forkserver}" --record-samples --show-stderr \
        "${timing[@]}" "$@"
}
# Peak RSS is the host's, which the CPU run measures: left out here.
first=(-b "${BENCH:-^(?!.*peakmem_)}") second=(-b "${BENCH2:-\.time_}")
run upstream "${first[@]}" || fail "asv run upstream"
run patched "${first[@]}" || fail "asv run patched"
# The second pass takes about half as long as the first: it runs only when
# the whole script still ends within BUDGET seconds (default 420).
order="upstream, patched (once: the second pass did not fit in the budget)"
if ((SECONDS * 3 / 2 < ${BUDGET:-420})); then
    run patched --append-samples "${second[@]}" || fail "asv run patched (2)"
    run upstream --append-samples "${second[@]}" || fail "asv run upstream (2)"
    order="upstream, patched, patched, upstream (time_ benchmarks twice)"
fi

step "asv compare --split --factor $factor upstream patched"
asv asv compare --split --factor "$factor" --machine "$machine" \
    upstream patched >"$out/compare.txt" || fail "asv compare"
cat "$out/compare.txt"
PYTHONPATH="$root/src" "$python" -m kbb.benchsummary "$out/compare.txt" \
    --factor "$factor" --title "keras: upstream against patched, $machine" \
    --note "Generated by benchmarks/gpu/run.sh from asv results; do not edit." \
    --note "" --note "- Machine: $("$python" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(", ".join(f"{k} {m[k]}" for k in ("gpu", "gpu_memory", "driver", "cuda",
      "cudnn", "jax_devices", "cpu", "num_cpu", "python", "libraries")))' \
        "$out/machine.json")." \
    --note "- Order: $order; peakmem_ left out (host memory)." \
    --results "$work/results" --before "$upstream" --after "$patched" \
    -o "$out/benchmarks-gpu.md"
status=$?

step "asv publish"
asv asv publish >/dev/null && tar -C "$work" -czf "$out/html.tar.gz" html
tar -C "$work" -czf "$out/results.tar.gz" results
step "done: $out (status $status)"
exit $status
