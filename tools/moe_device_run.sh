#!/bin/bash
# One device call for the MoE work: install the carried pure-Python wheels (.whl: xdsl and its
# two deps; torch/NVSHMEM are the device's own), then the tasks in MOE_TASKS (default "tests bench"):
#   tests    tests/gpu/test_moe_gpu.py          l1tests  tests/gpu/test_moe_layer1_gpu.py
#   bench    benchmarks/moe_bench.py            l1bench  benchmarks/moe_layer1_bench.py
#   tune     MOE_BENCH_MODE=tune of moe_bench.py (the grouped-GEMM variants; energy per call too)
#   diag     MOE_BENCH_MODE=diag of moe_bench.py (GEMM1/GEMM2 vs aligned offsets / shared weights /
#            dense cuBLAS, time and energy per call)
#   ncu      tools/moe_ncu_dram.py under Nsight Compute: DRAM bytes per GEMM call ($OUT/ncu.csv)
#   ncufull  the same calls under Nsight Compute's full metric set, compared kernel by kernel
#            (tools/ncu_compare.py): $OUT/ncu_compare.txt
# Carry .cache/moe (the libraries built here for sm_90a, each in its source-hash folder, found by
# the default lookup: a stale build is never picked) and .whl.
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/moe_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $(ls .whl/*.whl 2>/dev/null) 2>&1 | grep -v "^WARNING: Target"
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu,memory.used --format=csv | tee "$OUT/gpu.txt"
T0=$(date +%s)
# SM clock, power and temperature every 200 ms while the tasks run (is the GPU power-capped during
# the GEMMs?): $OUT/smi.csv
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,power.limit,temperature.gpu,clocks_throttle_reasons.active \
  --format=csv,noheader -lms 200 > "$OUT/smi.csv" 2>/dev/null &
SMI_PID=$!
pytest_task() {  # log, test file
  timeout ${MOE_TEST_TIMEOUT:-300} python3 -m pytest -q -rf -p no:cacheprovider --timeout 120 "$2" \
    ${MOE_TEST_K:+-k "$MOE_TEST_K"} > "$OUT/$1" 2>&1
  grep -E "passed|failed|error" "$OUT/$1" | tail -3; grep -E "^FAILED|^ERROR" "$OUT/$1" | head -30
}
bench_task() {   # log, script, extra env
  env $3 timeout ${MOE_BENCH_TIMEOUT:-330} python3 "$2" > "$OUT/$1" 2>&1
  sed -n '/== summary/,$p' "$OUT/$1"; tail -5 "$OUT/$1" | grep -i -E "error|Traceback"
}
for t in ${MOE_TASKS:-tests bench}; do
  case $t in
    tests)   pytest_task pytest.log tests/gpu/test_moe_gpu.py ;;
    l1tests) pytest_task pytest_l1.log tests/gpu/test_moe_layer1_gpu.py ;;
    bench)   bench_task bench.log benchmarks/moe_bench.py ;;
    l1bench) bench_task bench_l1.log benchmarks/moe_layer1_bench.py ;;
    tune)    bench_task tune.log benchmarks/moe_bench.py "MOE_BENCH_MODE=tune MOE_ROUNDS=${MOE_ROUNDS:-5}" ;;
    diag)    bench_task diag.log benchmarks/moe_bench.py "MOE_BENCH_MODE=diag MOE_ROUNDS=${MOE_ROUNDS:-5}" ;;
    ncu)     timeout ${MOE_NCU_TIMEOUT:-150} ncu --profile-from-start off --clock-control none --csv --page raw \
               --metrics $(python3 tools/ncu_summary.py --keys) \
               python3 tools/moe_ncu_dram.py > "$OUT/ncu.csv" 2> "$OUT/ncu.err"
             python3 tools/ncu_summary.py "$OUT/ncu.csv" "$OUT/ncu.err"
             tail -3 "$OUT/ncu.err" ;;
    ncufull) timeout ${MOE_NCU_TIMEOUT:-240} ncu --profile-from-start off --clock-control none --csv --page raw --set full \
               python3 tools/moe_ncu_dram.py > "$OUT/ncufull.csv" 2> "$OUT/ncufull.err"
             python3 tools/ncu_compare.py "$OUT/ncufull.csv" --top 120 > "$OUT/ncu_compare.txt"; head -130 "$OUT/ncu_compare.txt"
             tail -3 "$OUT/ncufull.err" ;;
  esac
  echo "== $t done at $(( $(date +%s) - T0 )) s"
done
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader | tee -a "$OUT/gpu.txt"
kill $SMI_PID 2>/dev/null
python3 - "$OUT/smi.csv" <<'PY'
import csv, statistics as st, sys
from collections import Counter
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) >= 6]
busy = [(float(r[1].split()[0]), float(r[2].split()[0]), r[5].strip()) for r in rows if float(r[2].split()[0]) > 600]
if busy:
    print(f"smi: {len(rows)} samples, {len(busy)} above 600 W (limit {rows[0][3].strip()}): SM clock quartiles "
          f"{st.quantiles([b[0] for b in busy], n=4)} MHz, power median {st.median([b[1] for b in busy])} W, "
          f"throttle reasons {Counter(b[2] for b in busy).most_common(3)}")
PY
