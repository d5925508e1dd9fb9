#!/usr/bin/env bash
# The GPU check of #27, on a machine with a CUDA GPU (the device tool's H200), from the repo
# root: the tests on torch and CuPy on CUDA, then benchmarks/gpu.py's table (about 8 minutes).
#
# That machine's python3 has torch, CuPy, numba, scikit-learn, pytest; what it lacks travels
# as wheels: run `benchmarks/gpu_wheels.sh` here first (it fills .whl/), then call the device
# with carry [".whl"] and the command `bash benchmarks/gpu_check.sh`.
set -euo pipefail
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
out="${OUT:-/tmp}"
nvidia-smi -L || true
python3 -m pytest -q -p no:cacheprovider tests/test_backends.py tests/test_spec_step.py \
    -k cuda 2>&1 | tee "$out/gpu_tests.log"
python3 benchmarks/gpu.py "$@" 2>&1 | tee "$out/gpu_table.md"
