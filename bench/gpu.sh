#!/usr/bin/env bash
# Issue 15's GPU measurements in one run, on a machine with one CUDA GPU (BENCHMARKS.md, "GPU").
#
#   bash bench/gpu.sh DATA OUT      # DATA: a CIFAR-10 source for --data; OUT: a folder for the logs
#
# 1. the GPU; 2. bench/throughput.py --device cuda; 3. bench/memory.py --device cuda (the
# families' GPU peaks, for TrialConfig.gpu_memory_mb); 4. the packing curve, N = 1..16 on the
# GPU; 5. sweeps/slides.py end to end with its wall time; its final stage scores 10,000 samples a
# family (the default N with a GPU), generation included: the tag eval.seconds is that time.
set -euo pipefail
DATA=${1:?usage: bash bench/gpu.sh DATA OUT}
OUT=${2:?usage: bash bench/gpu.sh DATA OUT}
PY=${PY:-python}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv | tee "$OUT/gpu.csv"
$PY bench/throughput.py --data "$DATA" --device cuda --repeats 5 --json "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.log"
$PY bench/memory.py --data "$DATA" --device cuda 2>&1 | tee "$OUT/memory.log"
$PY bench/packing.py --data "$DATA" --n 1 2 4 8 16 2>&1 | tee "$OUT/packing.log"
start=$(date +%s)
$PY run_sweep.py --space sweeps/slides.py --data "$DATA" --tracking-uri "sqlite:///$OUT/mlflow.db" \
    --storage "$OUT/ray_results" --out "$OUT/report" 2>&1 | tee "$OUT/slides.log"
echo "sweeps/slides.py wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/slides.log"
