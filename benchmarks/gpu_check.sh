#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU, from the repository root, as it is:
#   bash benchmarks/gpu_check.sh            (about 5-7 minutes on one H100/H200-class GPU)
# 1. the tests that use CUDA (tests/test_cuda.py, skipped on CPU-only machines),
# 2. the `paper` preset on the embedded digits data with --device cuda, in fp32 and in bf16,
# 3. a CPU-vs-CUDA comparison of a tiny run's evaluation (same predictions),
# 4. the GPU figures: stage times, evaluation throughput (models/s), peak GPU memory.
# Needs torch with CUDA, numpy, scikit-learn, safetensors, tqdm and pytest; umap-learn and
# mnist1d are optional (UMAP is turned off and the MNIST-1D test skipped without them).
# Output also goes to ${OUT:-/tmp/gpu-check}/ (log and figures.json).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PDIFF_STORE=off
PY=${PYTHON:-python3}
status=0
exec > >(tee "$OUT/gpu_check.log") 2>&1
echo "== environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || status=1
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
echo "== tests that use CUDA"
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_samplers.py tests/test_evaluate.py \
    tests/test_batched_stages.py || status=1
echo "== paper preset on CUDA (fp32, bf16), CPU-vs-CUDA evaluation, figures"
timeout 420 $PY -m benchmarks.gpu_figures --out "$OUT" "$@" || status=1
echo "== gpu_check finished with status $status"
exit "$status"
