#!/bin/bash
# One device call for the fused-layer1 work (tools/moe_device_run.sh's set-up): carried wheels
# (.whl) and libraries (.cache/moe: libcomet_moe.so, libcomet_moe_shmem.so,
# libcomet_moe_layer1.so built here for sm_90a). L1_TASKS picks "tests ep_tests bench".
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/moe_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $(ls .whl/*.whl 2>/dev/null) 2>&1 | grep -v "^WARNING: Target"
export PYTHONPATH=/tmp/site:$PWD
export COMET_MOE_LIB=$PWD/.cache/moe/libcomet_moe.so COMET_MOE_SHMEM_LIB=$PWD/.cache/moe/libcomet_moe_shmem.so
export COMET_MOE_L1_LIB=$PWD/.cache/moe/libcomet_moe_layer1.so
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu,memory.used --format=csv | tee "$OUT/gpu.txt"
T0=$(date +%s)
for t in ${L1_TASKS:-tests bench}; do
  case $t in
    tests) timeout ${L1_TEST_TIMEOUT:-300} python3 -m pytest -q -rf -p no:cacheprovider --timeout 120 tests/gpu/test_moe_layer1_gpu.py ${L1_TEST_K:+-k "$L1_TEST_K"} > "$OUT/pytest_l1.log" 2>&1
           grep -E "passed|failed|error" "$OUT/pytest_l1.log" | tail -3; grep -E "^FAILED|^ERROR|Error|error:" "$OUT/pytest_l1.log" | head -30 ;;
    ep_tests) timeout ${L1_TEST_TIMEOUT:-300} python3 -m pytest -q -rf -p no:cacheprovider --timeout 120 tests/gpu/test_moe_gpu.py -k "nvshmem or graph or layer0 or ep1" > "$OUT/pytest_moe.log" 2>&1
           grep -E "passed|failed|error" "$OUT/pytest_moe.log" | tail -3; grep -E "^FAILED|^ERROR" "$OUT/pytest_moe.log" | head -30 ;;
    bench) timeout ${L1_BENCH_TIMEOUT:-330} python3 benchmarks/moe_layer1_bench.py > "$OUT/bench_l1.log" 2>&1
           sed -n '/== summary/,$p' "$OUT/bench_l1.log"; tail -5 "$OUT/bench_l1.log" ;;
  esac
  echo "== $t done at $(( $(date +%s) - T0 )) s"
done
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader | tee -a "$OUT/gpu.txt"
