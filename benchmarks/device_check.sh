#!/usr/bin/env bash
# The GPU checks of the big-tables work in one run on a CUDA machine: the test
# suite with device="auto" resolving to CUDA, then benchmarks/gpu.py (the GPU
# targets: default fit of 1,000,000 x 100, training rate at batch 1,024 with and
# without CUDA graphs against the hand-written loop, transform rows/s).
#
#   bash benchmarks/device_check.sh --download   # here: fill .device_wheels
#   bash benchmarks/device_check.sh              # there: the checks
#
# The GPU machine has torch, scikit-learn, pandas and pytest but no network:
# .device_wheels (git-ignored) carries pure-Python wheels of what it may lack
# (narwhals, which older scikit-learn does not bring; hypothesis for the
# fuzz tests; skops and dask, so that persistence, faults and out-of-core tests
# run on the GPU too). Test modules whose extras are still missing there
# (polars, onnx, distributed, ray) are left out by name, and the log says
# which. Logs go to
# $OUT (or device_output/): suite.log, gpu.md, device.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

if [ "${1:-}" = "--download" ]; then
    exec "$PYTHON" -m pip download --no-deps --only-binary=:all: -d .device_wheels \
        "narwhals>=2.0" "hypothesis>=6.100" sortedcontainers attrs \
        "skops>=0.10" prettytable wcwidth \
        "dask>=2024.8,<2025.3" click cloudpickle fsspec importlib_metadata zipp \
        lazy_importer \
        partd locket pyyaml toolz  # dask: the distributed extra's bounds
fi

OUT=${OUT:-device_output}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
# Install only what is missing: never replace the machine's own torch stack.
: >"$OUT/device.txt"
for wheel in .device_wheels/*.whl; do
    [ -e "$wheel" ] || continue
    dist=$(basename "$wheel" | cut -d- -f1)
    "$PYTHON" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" \
        "$dist" 2>/dev/null ||
        "$PYTHON" -m pip install -q --no-index --no-deps "$wheel" 2>&1 | tee -a "$OUT/device.txt"
done
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    "$PYTHON" -c "import sys, torch, sklearn; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available()); print('scikit-learn', sklearn.__version__)"
} 2>&1 | tee -a "$OUT/device.txt"

ignored=$("$PYTHON" - <<'EOF'
import importlib.util

needs = {
    "tests/test_polars.py": ["polars", "pyarrow"],
    "tests/test_onnx.py": ["onnx", "onnxruntime", "skl2onnx"],
    "tests/test_deploying_docs.py": ["onnx", "onnxruntime", "skops", "dask", "ray"],
    "tests/test_distributed.py": ["dask", "distributed", "dask_ml", "ray"],
    "tests/test_out_of_core.py": ["dask"],
    "tests/test_persistence.py": ["skops"],
    "tests/test_faults.py": ["skops"],
    "tests/test_fuzz.py": ["hypothesis"],
    "tests/test_docstrings.py": ["numpydoc"],
    "tests/test_demo.py": ["matplotlib"],
}
# Single tests of other modules: the benchmarks they run, and doctests.
benchmarks = "tests/test_benchmarks.py::test_"
single = {
    benchmarks + "speed_prints_the_comparison_and_plots_it": ["matplotlib"],
    benchmarks + "scaling_prints_one_row_per_size_and_plots_them": ["matplotlib"],
    benchmarks + "quality_prints_a_row_per_method_and_plots": ["matplotlib"],
    benchmarks + "serving_times_both_engines_on_the_same_rows": ["onnxruntime"],
    benchmarks + "out_of_core_fits_from_npy_blocks_and_in_memory": ["dask"],
    "tests/test_robustness.py::test_partial_fit_on_a_dask_array_ignores_"
    "early_stopping_as_it_always_does": ["dask"],
    "skvae/_estimator.py::skvae._estimator.VAETransformer.to_onnx": ["skl2onnx"],
    "skvae/_skl2onnx.py::skvae._skl2onnx.register_skl2onnx_converter": ["skl2onnx"],
}


def missing(modules):
    return any(importlib.util.find_spec(m) is None for m in modules)


for path, modules in needs.items():
    if missing(modules):
        print(f"--ignore={path}")
for test, modules in single.items():
    if missing(modules):
        print(f"--deselect={test}")
EOF
)
echo "left out for missing extras: ${ignored:-none}" | tee -a "$OUT/device.txt"

# shellcheck disable=SC2086  # one word per --ignore
timeout 330 "$PYTHON" -m pytest -q -p no:cacheprovider --durations=15 $ignored \
    2>&1 | tee "$OUT/suite.log" | tail -40
echo "suite exit: ${PIPESTATUS[0]}" | tee -a "$OUT/suite.log"

timeout 200 "$PYTHON" benchmarks/gpu.py 2>&1 | tee "$OUT/gpu.md"
echo "gpu.py exit: ${PIPESTATUS[0]}" | tee -a "$OUT/gpu.md"
