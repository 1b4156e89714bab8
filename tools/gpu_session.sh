#!/bin/bash
# One device call for the CUDA tensor-parallel backend: install the carried pure-Python wheels
# (xdsl + deps; torch/NVSHMEM are the device's own), GPU tests (world 1/2/4 on one GPU, CUDA
# graphs, timeout), then benchmarks. Carry: .cache/cuda (libcomet_tp.so built here for sm_90a)
# and .cache/moe/whl (wheels). Logs and JSON land in $OUT.
#   TASKS="tests bench sweep" (default all)
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/comet_gpu_out}; mkdir -p "$OUT/logs"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .cache/moe/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
export COMET_GPU_LOGS=$OUT/logs
TASKS=${TASKS:-"tests bench sweep"}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.used,memory.total --format=csv | tee "$OUT/gpu.txt"
T0=$(date +%s)
for t in $TASKS; do
  case $t in
    tests) timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -x -rf -p no:cacheprovider tests/gpu/test_tp_gpu.py 2>&1 | tee "$OUT/pytest.log" | tail -30 ;;
    bench) timeout 200 python3 tests/gpu/tp_launch.py 1 bench 180 $OUT/logs > "$OUT/bench_w1.json"; tail -c 3000 "$OUT/bench_w1.json"
           timeout 200 python3 tests/gpu/tp_launch.py 2 bench 180 $OUT/logs > "$OUT/bench_w2.json"; tail -c 3000 "$OUT/bench_w2.json" ;;
    bench1) timeout 200 python3 tests/gpu/tp_launch.py 1 bench 180 $OUT/logs > "$OUT/bench_w1.json"; tail -c 3000 "$OUT/bench_w1.json" ;;
    sweep) timeout 300 python3 tests/gpu/tp_launch.py 2 sweep 280 $OUT/logs > "$OUT/sweep_w2.json"; tail -c 2000 "$OUT/sweep_w2.json" ;;
    *) timeout 200 python3 tests/gpu/tp_launch.py ${t#*:} ${t%%:*} 180 $OUT/logs ;;
  esac
  echo "== $t done at $(( $(date +%s) - T0 )) s"
done
python3 tools/gpu_summary.py $OUT/logs > $OUT/summary.txt 2>&1; cat $OUT/summary.txt
tar czf $OUT/logs.tgz -C $OUT logs && rm -rf $OUT/logs
