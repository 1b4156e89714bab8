#!/bin/bash
# One device call for the CUDA tensor-parallel backend: install the carried pure-Python wheels
# (xdsl + deps; torch/NVSHMEM are the device's own), then the tasks in $TASKS:
#   tests            pytest tests/gpu/test_tp_gpu.py (world 1/2/4 on one GPU, CUDA graphs, timeout)
#   bench1 / bench   GEMM vs cuBLAS (world 1) / AG+GEMM and GEMM+RS with 2 ranks on the GPU
#   bench1m          bench1 at 8192x7168x4096 only (e.g. g8-bench1m: another L2 grouping;
#                    bench1m#2: a repeat in its own log folder)
#   bench1p / bench1v  ours vs cuBLAS only (no other variants heating the GPU in between): 21
#                    rounds at 8192x7168x4096 / six shapes the GPU model was not fitted on
#   bench1t          per tile kernel vs cuBLAS, interleaved: 8192x7168x4096 (21 rounds), 8192^3 and
#                    4096^3 (15); BENCH_SHAPES / BENCH_VARIANTS (names as in tp_worker) override
#   benchref         ours vs CUTLASS's own GemmUniversal (same collectives, its scheduler; raster /
#                    swizzle variants) vs cuBLAS (NN and TN), interleaved; BENCH_SHAPES / BENCH_VARIANTS
#   benchpair        ours vs CUTLASS's kernel vs cuBLAS only, 31 rounds at 8192x7168x4096
#   benchsched       round robin (the default, "comet") vs the dynamic tile schedule vs cuBLAS,
#                    interleaved: 8192x7168x4096 (21 rounds) and four more shapes (11); BENCH_SHAPES
#   benchgroup       the default L2 grouping (8 cluster rows, snake) vs other groupings vs cuBLAS,
#                    interleaved, 31 rounds: BENCH_GROUPS=16,8sx8,8sx8d (runtime.grouping_spec; variants
#                    g16, g8sx8, g8sx8d; a trailing d = the dynamic schedule; default 16: the old order)
#   benchsk          stream-K over the partial round plus 0 / 1 / 2 whole rounds vs the planned split
#                    vs cuBLAS (8192x7168x4096, 8192^3; BENCH_SHAPES overrides)
#   sweep            shape sweep, 2 ranks: overlap vs sequential vs the cost model's choice
#   ncu              DRAM bytes of one GEMM call, cuBLAS vs ours (tools/tp_ncu_dram.py under Nsight
#                    Compute; TP_NCU_SHAPE=MxNxK, default 8192x7168x4096): logs/ncu/ncu.csv
#   ncufull          every metric of Nsight Compute's full set for the same three calls, compared
#                    kernel by kernel (tools/ncu_compare.py): logs/ncufull/compare.txt
#   TASK:W           tp_worker task TASK with W ranks (correct, graph, timeout, bench, sweep;
#                    rsbench:1 = GEMM+RS's reduction alone, exact check + GB/s, COMET_RS_SHAPES)
#   nvlink:W         one rank per GPU (multi-GPU kinds): ours vs NCCL all-gather + cuBLAS /
#                    cuBLAS + reduce-scatter, timed alike (COMET_NVLINK_SHAPE=MxKxN, default 8192x4096x7168)
#   vNAME-X          X with the variant library .cache/cuda/variants/NAME/libcomet_tp.so (COMET_TP_LIB)
#   c2-X / g8-X      X with the cluster-2x1 library (COMET_TP_CLUSTER=2) / L2 group of 8 row blocks
# Carry: .cache/cuda (libraries built here for sm_90a) and .cache/moe/whl (wheels).
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/comet_gpu_out}; rm -rf "$OUT/logs"; mkdir -p "$OUT/logs"   # a killed earlier run may have left its logs
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $(ls .whl/*.whl .cache/moe/whl/*.whl 2>/dev/null) 2>&1 | grep -v "^WARNING: Target"
export PYTHONPATH=/tmp/site:$PWD
TASKS=${TASKS:-"tests bench1 bench sweep"}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.used,memory.total --format=csv | tee "$OUT/gpu.txt"
T0=$(date +%s)
for t in $TASKS; do
  tag=$t; base=${t%%#*}      # TASK#2: a repeat of TASK with its own log folder
  unset COMET_TP_CLUSTER COMET_GROUP_M COMET_TP_LIB
  # vNAME-X: X with a variant library built here into .cache/cuda/variants/NAME/libcomet_tp.so
  case $base in v*-*) export COMET_TP_LIB=.cache/cuda/variants/${base%%-*}; COMET_TP_LIB=${COMET_TP_LIB/variants\/v/variants\/}/libcomet_tp.so; base=${base#*-};; esac
  case $base in c2-*) export COMET_TP_CLUSTER=2; base=${base#c2-};; c1-*) export COMET_TP_CLUSTER=1; base=${base#c1-};; esac
  case $base in g*-*) export COMET_GROUP_M=${base%%-*}; COMET_GROUP_M=${COMET_GROUP_M#g}; base=${base#*-};; esac
  L=$OUT/logs/${tag//[:#]/_}; mkdir -p $L; export COMET_GPU_LOGS=$L
  case $base in
    tests) timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -x -rf -p no:cacheprovider tests/gpu/test_tp_gpu.py > $L/pytest.log 2>&1; tail -5 $L/pytest.log ;;
    bench1) timeout 200 python3 tests/gpu/tp_launch.py 1 bench 180 $L > /dev/null ;;
    bench1m) COMET_BENCH_SHAPES=8192x7168x4096 timeout 100 python3 tests/gpu/tp_launch.py 1 bench 90 $L > /dev/null ;;
    bench1p) COMET_BENCH_SHAPES=8192x7168x4096 COMET_BENCH_VARIANTS=comet,torch COMET_BENCH_ROUNDS=21 \
               timeout 100 python3 tests/gpu/tp_launch.py 1 bench 90 $L > /dev/null ;;
    bench1t) COMET_BENCH_SHAPES=${BENCH_SHAPES:-8192x7168x4096,8192x8192x8192,4096x4096x4096} \
               COMET_BENCH_VARIANTS=${BENCH_VARIANTS:-comet,t256x128,torch} COMET_BENCH_ROUNDS=21 \
               COMET_BENCH_ROUNDS_OTHER=15 timeout 120 python3 tests/gpu/tp_launch.py 1 bench 110 $L > /dev/null ;;
    benchref) COMET_BENCH_SHAPES=${BENCH_SHAPES:-8192x7168x4096} COMET_BENCH_REF=1 COMET_BENCH_ROUNDS=${BENCH_ROUNDS:-21} \
               COMET_BENCH_VARIANTS=${BENCH_VARIANTS:-comet,rowmajor,cutlass,cutlass_m,cutlass_s2,cutlass_s8,torch,torch_tn} \
               timeout 150 python3 tests/gpu/tp_launch.py 1 bench 140 $L > /dev/null ;;
    benchpair) COMET_BENCH_SHAPES=8192x7168x4096 COMET_BENCH_REF=1 COMET_BENCH_ROUNDS=31 \
               COMET_BENCH_VARIANTS=comet,cutlass,torch timeout 100 python3 tests/gpu/tp_launch.py 1 bench 90 $L > /dev/null ;;
    benchsk) COMET_BENCH_SHAPES=${BENCH_SHAPES:-8192x7168x4096,8192x8192x8192} COMET_BENCH_ROUNDS=21 COMET_BENCH_ROUNDS_OTHER=11 \
               COMET_BENCH_VARIANTS=comet,sk0w,sk1w,sk2w,torch timeout 120 python3 tests/gpu/tp_launch.py 1 bench 110 $L > /dev/null ;;
    benchsched) COMET_BENCH_SHAPES=${BENCH_SHAPES:-8192x7168x4096,8192x8192x8192,16384x7168x4096,4096x4096x4096,2048x4096x4096} \
               COMET_BENCH_VARIANTS=comet,dynamic,torch COMET_BENCH_ROUNDS=21 COMET_BENCH_ROUNDS_OTHER=11 \
               timeout 170 python3 tests/gpu/tp_launch.py 1 bench 160 $L > /dev/null ;;
    benchgroup) groups=${BENCH_GROUPS:-16}    # variant names: g + spec (tp_worker)
               COMET_BENCH_SHAPES=${BENCH_SHAPES:-8192x7168x4096} COMET_BENCH_GROUPS=$groups \
               COMET_BENCH_VARIANTS=comet,g${groups//,/,g},torch COMET_BENCH_ROUNDS=${BENCH_ROUNDS:-31} \
               timeout 150 python3 tests/gpu/tp_launch.py 1 bench 140 $L > /dev/null ;;
    bench1v) COMET_BENCH_SHAPES=3072x5120x8192,6144x14336x4096,1536x7168x2048,384x6144x4096,192x4096x8192,96x14336x4096 \
               COMET_BENCH_VARIANTS=comet,torch timeout 100 python3 tests/gpu/tp_launch.py 1 bench 90 $L > /dev/null ;;
    ncu) timeout 150 ncu --profile-from-start off --clock-control none --csv --page raw \
           --metrics $(python3 tools/ncu_summary.py --keys) \
           python3 tools/tp_ncu_dram.py > $L/ncu.csv 2> $L/ncu.err
         grep -E "compulsory|profiled|Error|error" $L/ncu.err | tail -8; python3 tools/ncu_summary.py $L/ncu.csv $L/ncu.err ;;
    ncufull) timeout 240 ncu --profile-from-start off --clock-control none --csv --page raw --set full \
           python3 tools/tp_ncu_dram.py > $L/ncu.csv 2> $L/ncu.err
         grep -E "compulsory|profiled|Error|error" $L/ncu.err | tail -8; python3 tools/ncu_compare.py $L/ncu.csv --top 120 > $L/compare.txt; head -130 $L/compare.txt ;;
    bench) timeout 200 python3 tests/gpu/tp_launch.py 2 bench 180 $L > /dev/null ;;
    sweep) timeout 300 python3 tests/gpu/tp_launch.py 2 sweep 280 $L > /dev/null ;;
    *:*) timeout 200 python3 tests/gpu/tp_launch.py ${base#*:} ${base%%:*} 180 $L > /dev/null ;;
  esac
  echo "== $tag done at $(( $(date +%s) - T0 )) s"
done
python3 tools/gpu_summary.py $OUT/logs > $OUT/summary.txt 2>&1; cat $OUT/summary.txt
tar czf $OUT/logs.tgz -C $OUT logs && rm -rf $OUT/logs
