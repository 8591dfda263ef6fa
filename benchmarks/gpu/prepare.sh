#!/usr/bin/env bash
# Assembles what benchmarks/gpu/run.sh needs on a CUDA machine without
# network: the keras wheels of upstream (pristine), group/bessel (the fix)
# and patched (the fix and the native kernels of group/native), the upstream
# checkout as a git bundle (asv reads the commits from it), and the py3.12
# manylinux wheels
# of asv and of what the GPU image lacks. Run here, from anywhere:
#
#     bash benchmarks/gpu/prepare.sh [DIR]      # default: .asv/gpu/carry
#
# DIR is inside the repository and ignored (.asv/), about 2 MiB. PYVER (3.12)
# is the Python version of the wheels: 3.11 to try run.sh here on CPU.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=$(realpath -m "${1:-$root/.asv/gpu/carry}")
python=${PYTHON:-python3}
cd "$root"

rm -rf "$carry"
mkdir -p "$carry/wheels"
export PYTHONPATH="$root/src"
for name in upstream bessel patched; do  # run.sh's names: bessel = group/bessel
    ref=$name
    [[ $name == bessel ]] && ref=group/bessel
    mkdir -p "$carry/keras-$name"
    "$python" -m kbb wheel keras --ref "$ref" -o "$carry/keras-$name" >/dev/null
done

# The commits asv records: those branches (and aa, the A/A control of
# `python -m kbb.bench`, when it is there).
refs=(upstream group/bessel patched)
git -C .upstream/keras rev-parse -q --verify refs/heads/aa >/dev/null && refs+=(aa)
git -C .upstream/keras bundle create --quiet "$carry/keras.bundle" "${refs[@]}"

# Pure-Python or cp312 manylinux wheels; the image has numpy, ml-dtypes,
# h5py, rich, absl-py, packaging, tabulate and pyyaml already.
"$python" -m pip download -q --no-deps --only-binary=:all: \
    --python-version "${PYVER:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$carry/wheels" \
    asv==0.6.6 asv_runner==0.3.2 json5==0.17.3 importlib-metadata==8.7.0 \
    zipp==4.1.2 optree==0.20.0 namex==0.1.0 2> >(grep -v "^WARNING: Location" >&2)

(cd "$carry" && find . -type f ! -name MANIFEST | sort | xargs ls -l | awk '{print $5, $9}') \
    >"$carry/MANIFEST"
cat "$carry/MANIFEST"
du -sh "$carry"
