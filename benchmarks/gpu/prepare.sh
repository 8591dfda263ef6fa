#!/usr/bin/env bash
# Assembles what benchmarks/gpu/run.sh needs on a CUDA machine without
# network: the unpacked keras builds (pristine, each patch group, and the
# A/A copy; `kbb bench run --export-builds`) and the py3.12 wheels of
# what keras needs and a GPU image with jax and torch lacks. Run here:
#
#     bash benchmarks/gpu/prepare.sh [DIR]      # default: .asv/gpu/carry
#
# DIR is inside the repository and ignored (.asv/), about 15 MiB. PYVER
# (3.12) is the Python version of the wheels.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=$(realpath -m "${1:-$root/.asv/gpu/carry}")
python=${PYTHON:-python3}
cd "$root"
rm -rf "$carry"
mkdir -p "$carry/wheels"
PYTHONPATH="$root/src" "$python" -m kbb --root "$root" bench run --export-builds "$carry/builds"
"$python" -m pip download -q --no-deps --only-binary=:all: \
    --python-version "${PYVER:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$carry/wheels" \
    optree==0.20.0 namex==0.1.0 2> >(grep -v "^WARNING: Location" >&2)
(cd "$carry" && find . -type f | sort | xargs ls -l | awk '{print $5, $9}') >"$carry/MANIFEST"
du -sh "$carry"
