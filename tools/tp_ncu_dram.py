"""DRAM bytes of one GEMM call, ours vs cuBLAS (TP backend, world 1): on a power-capped H100 the
GEMM's time follows its energy, and HBM traffic beyond the compulsory bytes is energy cuBLAS may
not spend. Run under Nsight Compute (only the kernels between profiler start and stop count):

  ncu --profile-from-start off --clock-control none --csv --page raw \
      --metrics dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,gpu__time_duration.sum \
      python3 tools/tp_ncu_dram.py

Profiled in order, one call each after a warm-up (ncu flushes the caches before each kernel):
cuBLAS, then ours with the runtime's choice, then ours in row-major tile order (no L2 grouping),
then (TP_NCU_GROUPS="16,8sx8,8sx8d,...", runtime.grouping_variant: a trailing d = dynamic) ours with other L2 groupings, and with
TP_NCU_DYNAMIC=1 the same with the dynamic tile schedule.
TP_NCU_SHAPE=MxNxK (default 8192x7168x4096). Compulsory: A and B read once, C written once."""
from __future__ import annotations

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/..")


def main() -> None:
    import torch
    import torch.distributed as dist

    from comet_ir.backends.cuda import runtime as rt

    m, n, k = (int(v) for v in os.environ.get("TP_NCU_SHAPE", "8192x7168x4096").split("x"))
    with socket.socket() as so:     # a free port: two such tools on one machine must not collide
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{port}")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(m, k, generator=g, device="cuda").bfloat16()
    wt = torch.randn(k, n, generator=g, device="cuda").bfloat16()
    wnk = wt.t().contiguous().t()
    out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
    def grouping(spec, sched=None):      # ours with another L2 grouping of the tile order
        grp, own = rt.grouping_variant(spec)
        def call():
            with rt.l2_grouping(*grp):
                rt.gemm(x, wnk, out=out, sched=sched or own)
        return call

    calls = [("cublas", lambda: torch.matmul(x, wt)),
             ("ours", lambda: rt.gemm(x, wnk, out=out)),
             ("ours_rowmajor", lambda: rt.gemm(x, wnk, out=out, order="row-major"))]
    # TP_NCU_GROUPS="16,8sx8": more calls of ours with those L2 groupings (runtime.grouping_variant);
    # TP_NCU_DYNAMIC=1: each of them (and the default) again with the dynamic tile schedule
    specs = list(filter(None, os.environ.get("TP_NCU_GROUPS", "").split(",")))
    for spec in specs:
        calls.append((f"ours_g{spec}", grouping(spec)))
    if os.environ.get("TP_NCU_DYNAMIC"):
        calls.append(("ours_dynamic", lambda: rt.gemm(x, wnk, out=out, sched="dynamic")))
        calls += [(f"ours_g{spec}_dynamic", grouping(spec, "dynamic")) for spec in specs]
    for _, fn in calls:       # warm-up: library load, cuBLAS heuristics, kernel preparation
        fn()
    torch.cuda.synchronize()
    print("compulsory_read_bytes", 2 * (m * k + k * n), "write_bytes", 2 * m * n, file=sys.stderr)
    for name, fn in calls:
        print("profiled", name, file=sys.stderr, flush=True)
        torch.cuda.profiler.start()
        fn()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()


if __name__ == "__main__":
    main()
