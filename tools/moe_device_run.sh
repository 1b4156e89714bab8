#!/bin/bash
# One device call for the MoE work: install the carried pure-Python wheels (.whl: xdsl and its
# two deps; torch/NVSHMEM are the device's own), GPU tests, then the benchmarks.
# Carry: .cache/moe (libcomet_moe.so and libcomet_moe_shmem.so built here with nvcc for sm_90a)
# and .whl. MOE_TASKS picks "tests bench" (default both); "tune" = the grouped-GEMM variants
# (MOE_BENCH_MODE=tune of benchmarks/moe_bench.py).
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/moe_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $(ls .whl/*.whl .cache/moe/whl/*.whl 2>/dev/null) 2>&1 | grep -v "^WARNING: Target"
export PYTHONPATH=/tmp/site:$PWD
export COMET_MOE_LIB=$PWD/.cache/moe/libcomet_moe.so COMET_MOE_SHMEM_LIB=$PWD/.cache/moe/libcomet_moe_shmem.so
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu,memory.used --format=csv | tee "$OUT/gpu.txt"
T0=$(date +%s)
for t in ${MOE_TASKS:-tests bench}; do
  case $t in
    tests) timeout ${MOE_TEST_TIMEOUT:-300} python3 -m pytest -q -rf -p no:cacheprovider --timeout 120 tests/gpu/test_moe_gpu.py ${MOE_TEST_K:+-k "$MOE_TEST_K"} > "$OUT/pytest.log" 2>&1
           grep -E "passed|failed|error" "$OUT/pytest.log" | tail -3; grep -E "^FAILED|^ERROR" "$OUT/pytest.log" | head -30 ;;
    bench) timeout ${MOE_BENCH_TIMEOUT:-330} python3 benchmarks/moe_bench.py > "$OUT/bench.log" 2>&1
           sed -n '/== summary/,$p' "$OUT/bench.log" ;;
    tune)  MOE_BENCH_MODE=tune MOE_ROUNDS=${MOE_ROUNDS:-5} timeout ${MOE_BENCH_TIMEOUT:-330} python3 benchmarks/moe_bench.py > "$OUT/tune.log" 2>&1
           sed -n '/== summary/,$p' "$OUT/tune.log"; tail -5 "$OUT/tune.log" | grep -i -E "error|Traceback" ;;
  esac
  echo "== $t done at $(( $(date +%s) - T0 )) s"
done
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader | tee -a "$OUT/gpu.txt"
