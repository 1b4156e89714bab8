"""DRAM bytes of one call of each expert GEMM (Mixtral 8x7B shapes, T tokens, uniform routing):
are the weights read from HBM once per call (GEMM1 1.88 GB, GEMM2 0.94 GB at any T) or more?

Run under Nsight Compute, which profiles only the kernels between profiler start and stop:
  ncu --profile-from-start off --clock-control none --csv --page raw \
      --metrics dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,gpu__time_duration.sum \
      python3 tools/moe_ncu_dram.py
Profiled, in this order (one call each, after a warm-up call): GEMM1 + SwiGLU (default variant),
GEMM2 (default, split-K) + fold, GEMM1 with every expert on the same weights (b_group_stride 8),
GEMM1 with offsets padded to whole row tiles. Each grouped GEMM is two kernels (the group-args
kernel, then the GEMM); ncu's default cache control flushes the caches before each kernel.
MOE_NCU_SET="g2:coop_128x256_c21_sk2 g1:swiglu_pair_c22 g2:coop_128x256_c12:aligned ..." profiles
those instead, in that order (GEMM, variant, optional ":aligned"; a split-K GEMM2 is followed by its fold).
"""
from __future__ import annotations

import os
import sys

import torch

_ROOT = os.path.dirname(os.path.abspath(__file__)) + "/.."
sys.path[:0] = [_ROOT, _ROOT + "/benchmarks"]
from comet_ir.backends.cuda.moe.module import CometMoE, permutation, route  # noqa: E402
from moe_bench import E, FF, H, K, grouped_setup, mixtral_weights  # noqa: E402  (the benchmark's set-up)


def main():
    T = int(os.environ.get("MOE_NCU_T", "2048"))
    dev = torch.device("cuda")
    w1, w3, w2, wr = mixtral_weights(dev)
    x = torch.randn(T, H, device=dev).bfloat16()
    idx, _ = route((x @ wr).float(), K)
    perm, _, counts, offsets = permutation(idx, E)
    print("counts", counts.tolist(), file=sys.stderr, flush=True)
    m, w13t, w2t, xs, rows, aligned = grouped_setup(x, perm, offsets, w1, w3, w2, dev)
    offs = offsets.contiguous()
    v1, _ = m._variants()
    g1h = m._gemm_v(v1, 2 * FF, H, dev)
    h = torch.empty(rows, FF, dtype=xs.dtype, device=dev)
    s = torch.cuda.current_stream(dev).cuda_stream

    def g1(o, bs=0):
        g1h.run(o.data_ptr(), xs.data_ptr(), w13t.data_ptr(), h.data_ptr(), s, bs)

    spec = os.environ.get("MOE_NCU_SET", "").split()
    if not spec:
        calls = [lambda: g1(offs), lambda: m._gemm2_cutlass(h, offsets, rows), lambda: g1(offs, 8), lambda: g1(aligned)]
    else:
        mods, calls = {}, []
        for item in spec:
            which, v, *opt = item.split(":")
            o = aligned if "aligned" in opt else offsets
            mm = CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0,
                          gemm_variant=(v, "coop_128x256") if which == "g1" else ("swiglu_pair_c12", v))
            mm.w1, mm.w3, mm.w2 = m.w1, m.w3, m.w2
            if which == "g1":
                mm._packed = m._packed if v.startswith("swiglu_pair") else None
                calls.append(lambda mm=mm, o=o: mm._gemm1_cutlass(xs, o, rows, h))
            else:
                mm._packed = m._packed
                calls.append(lambda mm=mm, o=o: mm._gemm2_cutlass(h, o, rows))
            mods[item] = mm
        print("profiled:", spec, file=sys.stderr, flush=True)
    for c in calls:
        c()
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    for c in calls:
        c()
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()
    print("done", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
