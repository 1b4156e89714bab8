#!/bin/bash
# One device call does everything for the MoE work: install the carried pure-Python wheels
# (xdsl and its two deps; torch is the device's own), GPU tests, then the benchmarks.
# Carry: .cache/moe (libcomet_moe.so built here with nvcc for sm_90a, and the wheels).
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/moe_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .cache/moe/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
export COMET_MOE_LIB=$PWD/.cache/moe/libcomet_moe.so
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.used,memory.total --format=csv | tee "$OUT/gpu.txt"
T0=$(date +%s)
timeout ${MOE_TEST_TIMEOUT:-240} python3 -m pytest -q -rf -p no:cacheprovider --timeout 150 tests/gpu/test_moe_gpu.py 2>&1 | tee "$OUT/pytest.log" | tail -40
echo "tests took $(( $(date +%s) - T0 )) s"
timeout ${MOE_BENCH_TIMEOUT:-280} python3 benchmarks/moe_bench.py 2>&1 | tee "$OUT/bench.log" | grep -v "^ " | tail -60
echo "total $(( $(date +%s) - T0 )) s"
