#!/usr/bin/env bash
# benchmarks/keras3 on a CUDA machine without network: JAX and PyTorch
# backends (no TensorFlow there), pristine keras against each patch group:
# group/bessel (the fix) and patched (the fix and group/native's kernels).
#
# Here first:  bash benchmarks/gpu/prepare.sh         (makes .asv/gpu/carry)
# There, from the repository root, with .asv/gpu/carry carried along:
#
#     bash benchmarks/gpu/run.sh [CARRY]       (5 to 8 min on an H100, estimated)
#
# Needs python3 (3.12; PYTHON overrides) with jax and torch, and git. asv
# cannot build environments offline, so it runs in the running Python
# (`asv run --python=same`), once per commit with that commit's keras wheel
# first on ASV_PYTHONPATH, and records it under the commit's hash
# (`--set-commit-hash`). Order: upstream, bessel, patched, then the time_
# benchmarks again as patched, bessel, upstream (`--append-samples`), so that
# warm-up and clock drift do not favour one side; that second pass is
# skipped if it would end the script past BUDGET seconds (420). Writes to
# $OUT (default .asv/gpu/out): log.txt, compare-bessel.txt and
# compare-patched.txt (asv compare --split, upstream against each),
# benchmarks-gpu.md (kbb.benchsummary, gated with FACTOR), machine.json,
# results.tar.gz and
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
refs=(upstream bessel patched)  # the wheels' names, and their branches:
declare -A branch=([upstream]=upstream [bessel]=group/bessel [patched]=patched)
for ref in "${refs[@]}"; do
    install "$work/keras-$ref" "$carry/keras-$ref"/*.whl || fail "keras-$ref"
done
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
declare -A commit=()
for ref in "${refs[@]}"; do
    commit[$ref]=$(git -C "$work/keras" rev-parse "${branch[$ref]}")
done

# The configuration of asv.conf.json, for the running Python: no build, the
# backends as env_nobuild (one asv environment, and result file, each). asv
# runs the heads of "branches" in an existing environment, so each run gets
# a configuration with its branch alone; compare and publish see all.
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
config asv "${branch[upstream]}" "${branch[bessel]}" "${branch[patched]}"
for ref in "${refs[@]}"; do
    config "$ref" "${branch[$ref]}"
done

step "machine info: device, driver, CUDA and library versions"
machine=$(
    PYTHONPATH="$work/keras-upstream:$PYTHONPATH" \
        XLA_PYTHON_CLIENT_PREALLOCATE=false "$python" \
        "$root/benchmarks/gpu/machine.py" "$out/machine.json"
) || fail "machine info"
echo "asv machine: $machine"
cat "$out/machine.json" && echo

# On a GPU the steps take milliseconds: 1 s of samples per process is enough.
timing=(-a rounds=1 -a "repeat=(10, 200, 1.0)" -a warmup_time=0.3)
run() {  # run REF [asv run options]: that commit's keras, recorded under REF
    local ref=$1
    shift
    # asv drops PYTHONPATH in the benchmark processes and puts ASV_PYTHONPATH
    # in its place: the commit's keras first, then asv_runner and the rest.
    export ASV_PYTHONPATH="$work/keras-$ref:$work/site"
    step "asv run: $ref (${commit[$ref]:0:12}), keras" \
        "$(PYTHONPATH=$ASV_PYTHONPATH KERAS_BACKEND=jax "$python" -c \
            'import keras; print(keras.version())')"
    asv "$ref" run --python=same --set-commit-hash="${commit[$ref]}" \
        --machine "$machine" \
        --launch-method "${LAUNCH:-forkserver}" --record-samples --show-stderr \
        "${timing[@]}" "$@"
}
# Peak RSS is the host's, which the CPU run measures: left out here.
first=(-b "${BENCH:-^(?!.*peakmem_)}") second=(-b "${BENCH2:-\.time_}")
for ref in "${refs[@]}"; do
    run "$ref" "${first[@]}" || fail "asv run $ref"
done
first_pass=$SECONDS
# The second pass takes about as long as the first minus its start-up: it
# runs only when the whole script still ends within BUDGET seconds (420).
order="upstream, bessel, patched (once: the second pass did not fit in the budget)"
if ((SECONDS * 2 < ${BUDGET:-420})); then
    for ref in patched bessel upstream; do
        run "$ref" --append-samples "${second[@]}" || fail "asv run $ref (2)"
    done
    order="upstream, bessel, patched, then the time_ benchmarks again in reverse"
fi
echo "first pass ${first_pass}s, both ${SECONDS}s"

machine_note=$("$python" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(", ".join(f"{k} {m[k]}" for k in ("gpu", "gpu_memory", "driver", "cuda",
      "cudnn", "jax_devices", "cpu", "num_cpu", "python", "libraries")))' \
    "$out/machine.json")
status=0
notes=(--note "Generated by benchmarks/gpu/run.sh from asv results; do not edit."
    --note "" --note "- Machine: $machine_note."
    --note "- Order: $order; peakmem_ left out (host memory).")
: >"$out/benchmarks-gpu.md"
for ref in bessel patched; do
    head=${branch[$ref]}
    step "asv compare --split --factor $factor upstream $head"
    asv asv compare --split --factor "$factor" --machine "$machine" \
        "${commit[upstream]}" "${commit[$ref]}" >"$out/compare-$ref.txt" ||
        fail "asv compare $ref"
    cat "$out/compare-$ref.txt"
    PYTHONPATH="$root/src" "$python" -m kbb.benchsummary "$out/compare-$ref.txt" \
        --factor "$factor" --title "keras: upstream against $head, $machine" \
        "${notes[@]}" --results "$work/results" --before "${commit[upstream]}" \
        --after "${commit[$ref]}" -o "$work/section-$ref.md" || status=$?
    [[ -s $out/benchmarks-gpu.md ]] && echo >>"$out/benchmarks-gpu.md"
    cat "$work/section-$ref.md" >>"$out/benchmarks-gpu.md"
    notes=()
done

step "asv publish"
asv asv publish >/dev/null && tar -C "$work" -czf "$out/html.tar.gz" html
tar -C "$work" -czf "$out/results.tar.gz" results
step "done: $out (status $status)"
exit $status
