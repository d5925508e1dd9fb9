#!/usr/bin/env bash
# The pure-Python packages binary_nn needs that the device machine's python3 (3.12) lacks, as
# wheels in .whl/ (ignored by git), for benchmarks/gpu_check.sh to install there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp -d .whl array-api-compat array-api-strict pooch platformdirs
ls .whl
