"""One rank of the tensor-parallel GPU checks/benchmarks (launched W times by tp_launch.py).

    python tests/gpu/tp_worker.py --rank R --world W --port P --task correct|graph|timeout|bench|sweep --out F.json

Every rank shares GPU `rank % device_count` (several NVSHMEM PEs on one GPU work); the bootstrap
process group is gloo (NCCL refuses two ranks on one GPU). References: torch.matmul on the same
bf16 inputs with fp32 accumulation, compared as max|y - ref| / max|ref| (bf16 tolerance 2e-2:
the output is rounded to bf16 (2^-8 relative) and K-long fp32 sums differ in order).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

TOL = 2e-2


def rel_err(y, ref) -> float:
    y, ref = y.detach(), ref.detach()
    return float((y.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-6))


def gen(torch, shape, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return (torch.randn(*shape, generator=g, device="cuda", dtype=torch.float32) * 0.5).to(torch.bfloat16)


def split_all(ctx, m, n, k, units, tile=None):
    """A stream-K split of every cluster tile of an M x N GEMM over `units` runs (test aid: the
    runtime's plan splits only what it predicts to pay)."""
    from comet_ir.backends.cuda.stream_k import Split

    kern = ctx.kernel(m, n, k, ctx.sms, tile or ctx.kernels[0].name)
    tiles = -(-m // (kern.tile_m * kern.cluster_m)) * -(-n // (kern.tile_n * kern.cluster_n))
    return Split(tiles, min(units, tiles * -(-k // kern.tile_k)))


def cutlass_ref_variants(torch, rt, a, bnk, out, m, n, k, sms):
    """Bench-only variants (env COMET_BENCH_REF=1): CUTLASS's own GemmUniversal kernel
    (templates/cutlass_ref_gemm.cu: same collectives as ours, CUTLASS's persistent scheduler) with
    its raster orders and swizzles. name -> callable, plus the kernel's stage count."""
    import ctypes
    from pathlib import Path

    src = (Path(rt.__file__).parent / "templates" / "cutlass_ref_gemm.cu").read_text()
    lib = ctypes.CDLL(str(rt.build(src, name="libcomet_ref.so")))
    vp, i32 = ctypes.c_void_p, ctypes.c_int
    lib.comet_ref_make.restype = vp
    lib.comet_ref_make.argtypes = [i32, vp, vp, vp, i32, i32, i32, i32, i32, i32, ctypes.POINTER(i32)]
    lib.comet_ref_run.argtypes = [vp, vp]
    lib.comet_ref_stages.argtypes = [i32]
    out_v = {}
    # cfg 0 cooperative 128x256 2x1, 1 ping-pong 128x128 2x1, 2 ping-pong 64x256 2x1; raster 0 =
    # CUTLASS's heuristic (along N here: more row blocks than column blocks), 1 along M
    for name, cfg, raster, swz in (("cutlass", 0, 0, 1), ("cutlass_m", 0, 1, 1), ("cutlass_s2", 0, 0, 2),
                                   ("cutlass_s8", 0, 0, 8), ("cutlass_pp128", 1, 0, 1), ("cutlass_pp64", 2, 0, 1)):
        rc = i32(0)
        h = lib.comet_ref_make(cfg, a.data_ptr(), bnk.data_ptr(), out.data_ptr(), m, n, k, raster, swz, sms,
                               ctypes.byref(rc))
        if not h:
            raise RuntimeError(f"cutlass reference {name}: set-up failed (code {rc.value})")

        def run(h=h):
            e = lib.comet_ref_run(h, torch.cuda.current_stream().cuda_stream)
            if e:
                raise RuntimeError(f"cutlass reference: launch failed (code {e})")
            return out
        out_v[name] = run
    return out_v, [lib.comet_ref_stages(c) for c in range(3)]


def bench(torch, fn, iters=20, warmup=5, barrier=None):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    if barrier:
        barrier()
    ts = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--port", type=int, default=29511)
    ap.add_argument("--task", default="correct")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(args.rank % torch.cuda.device_count())
    dist.init_process_group("gloo", rank=args.rank, world_size=args.world,
                            init_method=f"tcp://127.0.0.1:{args.port}")
    from comet_ir.backends.cuda import runtime as rt
    from comet_ir.errors import CometError

    r, w = args.rank, args.world
    res: dict = {"rank": r, "world": w, "task": args.task, "cases": []}
    t0 = time.time()
    try:
        ctx = rt.context(timeout_s=float(os.environ.get("COMET_TIMEOUT_S", "20")))
        if args.task == "correct":
            sms = torch.cuda.get_device_properties(0).multi_processor_count
            for kern in rt.load().kernels:     # the persistent grid's clamp: clusters that fit at once
                size, rc = kern.cluster_m * kern.cluster_n, kern.resident_clusters()
                res["cases"].append({"op": "resident_clusters", "kernel": kern.name, "cluster": list(kern.cluster),
                                     "clusters": rc, "ok": rc == 0 if size == 1 else 0 < rc * size <= sms})
            # AG+GEMM: (rows per rank, K, N); GEMM+RS: (M total, K per rank, N)
            ag_shapes = [(256, 512, 512), (200, 520, 1000), (1000, 1032, 776), (2048, 4096, 4096)]
            rs_shapes = [(512, 512, 512), (600, 776, 1000), (2000, 1032, 264), (4096, 4096, 4096)]
            for i, (ms, k, n) in enumerate(ag_shapes):
                xfull = gen(torch, (ms * w, k), 100 + i)
                wt = gen(torch, (k, n), 200 + i)
                ref = xfull.float() @ wt.float()
                for strat in ("overlap", "sequential"):
                    if w == 1 and strat == "sequential":
                        continue
                    y = rt.ag_gemm(xfull[r * ms:(r + 1) * ms], wt, strategy=strat)
                    torch.cuda.synchronize()
                    res["cases"].append({"op": "ag_gemm", "shape": [ms, k, n], "strategy": strat,
                                         "err": rel_err(y, ref), "ok": rel_err(y, ref) < TOL})
            for i, (m, k, n) in enumerate(rs_shapes):
                xs = [gen(torch, (m, k), 300 + 10 * i + s) for s in range(w)]
                ws = [gen(torch, (k, n), 400 + 10 * i + s) for s in range(w)]
                ref = sum(x.float() @ y.float() for x, y in zip(xs, ws))[r * (m // w):(r + 1) * (m // w)]
                for strat in ("overlap", "sequential"):
                    if w == 1 and strat == "sequential":
                        continue
                    y = rt.gemm_rs(xs[r], ws[r], strategy=strat)
                    torch.cuda.synchronize()
                    res["cases"].append({"op": "gemm_rs", "shape": [m, k, n], "strategy": strat,
                                         "err": rel_err(y, ref), "ok": rel_err(y, ref) < TOL})
            # the reduce's 2-byte path: an `out` that is not 16-byte aligned (offset by one element)
            m, k, n = rs_shapes[1]
            xs = [gen(torch, (m, k), 310 + s) for s in range(w)]
            ws = [gen(torch, (k, n), 410 + s) for s in range(w)]
            ref = sum(x.float() @ y.float() for x, y in zip(xs, ws))[r * (m // w):(r + 1) * (m // w)]
            for strat in ("overlap", "sequential") if w > 1 else ():
                buf = torch.full(((m // w) * n + 1,), float("nan"), dtype=torch.bfloat16, device="cuda")
                y = rt.gemm_rs(xs[r], ws[r], strategy=strat, out=buf[1:].view(m // w, n))
                torch.cuda.synchronize()
                res["cases"].append({"op": "gemm_rs_unaligned_out", "shape": [m, k, n], "strategy": strat,
                                     "err": rel_err(y, ref), "ok": rel_err(y, ref) < TOL and buf[0].isnan().item()})
            try:                                    # a wrong `out` is refused, not written past
                rt.gemm_rs(xs[r], ws[r], out=torch.empty(m // w + 1, n, dtype=torch.bfloat16, device="cuda"))
                res["cases"].append({"op": "gemm_rs_bad_out", "ok": False, "err": "accepted"})
            except CometError as e:
                res["cases"].append({"op": "gemm_rs_bad_out", "ok": "contiguous bf16 tensor of shape" in str(e)})
            # stream-K (the runtime's plan and forced splits of every tile, incl. residues in M, N
            # and K, runs shorter than a tile, and more runs than tiles)
            from comet_ir.backends.cuda.stream_k import Split
            sk_shapes = [(512, 4096, 4096, "auto"), (1000, 1032, 776, 5), (1000, 1032, 776, 40), (200, 520, 1000, 64),
                         (8192 // w, 4096, 7168 if w == 1 else 2048, "auto"), (3000, 1000, 264, 17)]
            for i, (ms, k, n, units) in enumerate(sk_shapes):
                for tile in [kn.name for kn in ctx.kernels]:     # every tile configuration of the library
                    m = ms * w
                    xfull = gen(torch, (m, k), 700 + i)
                    wt = gen(torch, (k, n), 800 + i)
                    ref = xfull.float() @ wt.float()
                    sp = "auto" if units == "auto" else split_all(ctx, m, n, k, units, tile)
                    blocks = ctx.sms if w == 1 else ctx.sms - 8
                    planned = ctx.split(m, n, k, blocks, sp, ctx.kernel(m, n, k, blocks, tile))
                    if w == 1:
                        y = rt.gemm(xfull, wt, split=sp, tile=tile)
                        op = "gemm stream-K"
                    else:
                        y = rt.ag_gemm(xfull[r * ms:(r + 1) * ms], wt, strategy="overlap", comm_blocks=8, split=sp,
                                       tile=tile)
                        op = "ag_gemm stream-K"
                    torch.cuda.synchronize()
                    ctx.check()
                    e = rel_err(y, ref)
                    res["cases"].append({"op": op, "tile": tile, "shape": [ms, k, n],
                                         "split": [planned.sk_tiles, planned.sk_units],
                                         "err": e, "ok": e < TOL})
                    if w > 1:       # GEMM+RS with the same split of its (M, N) grid
                        xs = [gen(torch, (m, k), 7000 + 10 * i + s_) for s_ in range(w)]
                        ws_ = [gen(torch, (k, n), 8000 + 10 * i + s_) for s_ in range(w)]
                        refz = sum(a.float() @ b.float() for a, b in zip(xs, ws_))[r * ms:(r + 1) * ms]
                        z = rt.gemm_rs(xs[r], ws_[r], strategy="overlap", comm_blocks=8, split=sp, tile=tile)
                        torch.cuda.synchronize()
                        ctx.check()
                        e = rel_err(z, refz)
                        res["cases"].append({"op": "gemm_rs stream-K", "tile": tile, "shape": [m, k, n], "err": e,
                                             "ok": e < TOL})
            # dynamic tile schedule (sched="dynamic"): the same tiles computed the same way as the
            # round robin, so bit-identical; every launch leaves the counter at zero and moves the
            # epoch on by one
            sb = ctx.sched_buf
            for i, (m, k, n, units) in enumerate([(1000, 1032, 776, None), (128, 520, 1000, None),
                                                  (4096, 4096, 4096, None), (8192, 4096, 7168, None),
                                                  (3000, 1000, 264, 17)]):
                xfull, wt = gen(torch, (m, k), 1100 + i), gen(torch, (k, n), 1200 + i)
                for tile in [kn.name for kn in ctx.kernels]:
                    sp = "auto" if units is None else split_all(ctx, m, n, k, units, tile)
                    torch.cuda.synchronize()
                    e0 = int(sb[2])
                    ys = rt.gemm(xfull, wt, tile=tile, split=sp, sched="static")
                    yd = [rt.gemm(xfull, wt, tile=tile, split=sp, sched="dynamic") for _ in range(3)]
                    torch.cuda.synchronize()
                    ctx.check()
                    state = [int(v) for v in sb[:3]]
                    same = all(bool(torch.equal(y_, ys)) for y_ in yd)
                    res["cases"].append({"op": "gemm dynamic schedule", "tile": tile, "shape": [m, k, n],
                                         "split": units, "bit_identical": same, "sched_state": state, "epoch0": e0,
                                         "err": rel_err(yd[-1], xfull.float() @ wt.float()),
                                         "ok": same and state[:2] == [0, 0] and state[2] == e0 + 3
                                         and rel_err(yd[-1], xfull.float() @ wt.float()) < TOL})
            if w > 1:   # the overlap kernels with the dynamic schedule (comm blocks beside it)
                ms, k, n = 1000, 1032, 776
                xfull, wt = gen(torch, (ms * w, k), 1300), gen(torch, (k, n), 1301)
                y = rt.ag_gemm(xfull[r * ms:(r + 1) * ms], wt, strategy="overlap", comm_blocks=8, sched="dynamic")
                xs = [gen(torch, (ms * w, k), 1310 + s_) for s_ in range(w)]
                ws_ = [gen(torch, (k, n), 1320 + s_) for s_ in range(w)]
                z = rt.gemm_rs(xs[r], ws_[r], strategy="overlap", comm_blocks=8, sched="dynamic")
                torch.cuda.synchronize()
                ctx.check()
                e1 = rel_err(y, xfull.float() @ wt.float())
                e2 = rel_err(z, sum(a.float() @ b.float() for a, b in zip(xs, ws_))[r * ms:(r + 1) * ms])
                res["cases"].append({"op": "ag_gemm + gemm_rs dynamic schedule", "shape": [ms, k, n],
                                     "err": [e1, e2], "ok": e1 < TOL and e2 < TOL})
            try:
                rt.gemm(gen(torch, (64, 64), 1), gen(torch, (64, 64), 2), sched="lifo")
                res["cases"].append({"op": "sched='lifo' rejected", "ok": False})
            except CometError as e:
                res["cases"].append({"op": "sched='lifo' rejected", "ok": "sched must be one of" in str(e)})
            if w > 1:
                # strategy="tuned" (the default): the model's shortlist is timed once, the winner is
                # remembered per shape and agreed by all ranks
                xfull = gen(torch, (384 * w, 1024), 900)
                wt = gen(torch, (1024, 2048), 901)
                y = rt.ag_gemm(xfull[r * 384:(r + 1) * 384], wt)
                torch.cuda.synchronize()
                won = ctx._tuned.get(("ag_gemm", 384 * w, 2048, 1024))
                res["cases"].append({"op": "ag_gemm tuned", "shape": [384, 1024, 2048], "choice": list(won or ()),
                                     "err": rel_err(y, xfull.float() @ wt.float()),
                                     "ok": won is not None and rel_err(y, xfull.float() @ wt.float()) < TOL})
                got = [None] * w
                dist.all_gather_object(got, won)
                res["cases"].append({"op": "tuned choice agreed", "choices": [list(g) for g in got],
                                     "ok": all(g == got[0] for g in got)})
            if w == 1:
                # single-PE AG simulation: the GEMM must wait for the rows its comm blocks copy
                for (m, k, n, ws, c) in [(1024, 776, 1032, 2, 4), (1000, 520, 1000, 4, 8), (512, 4096, 4096, 4, 32)]:
                    x = gen(torch, (m // ws, k), 500 + m).repeat(ws, 1)
                    wt = gen(torch, (k, n), 600 + m)
                    ref = x.float() @ wt.float()
                    for seq in (False, True):
                        xt = x.clone()
                        xt[m // ws:] = 0
                        y = ctx.loopback(xt, wt, ws, c, seq, wait=True, order="local-first")
                        ctx.check()
                        res["cases"].append({"op": "loopback-wait", "shape": [m, k, n, ws, c], "sequential": seq,
                                             "err": rel_err(y, ref),
                                             "ok": rel_err(y, ref) < TOL and bool(torch.equal(xt, x))})
            # nn.Module wrapper (column-parallel, weight [out, in] storage)
            lin = rt.CometTPLinear(512, 768, mode="ag")
            x = gen(torch, (128 * w, 512), 7)
            y = lin(x[r * 128:(r + 1) * 128])
            ref = x.float() @ lin.weight.float().t()
            res["cases"].append({"op": "CometTPLinear(ag)", "shape": [128, 512, 768], "strategy": "auto",
                                 "err": rel_err(y, ref), "ok": rel_err(y, ref) < TOL})
            # error paths
            try:
                rt.ag_gemm(gen(torch, (64, 100), 1), gen(torch, (100, 64), 2))
                res["cases"].append({"op": "K=100 rejected", "ok": False})
            except CometError as e:
                res["cases"].append({"op": "K=100 rejected", "ok": True, "msg": str(e)})
        elif args.task == "graph":
            ms, k, n = 512, 1024, 768
            xs = torch.empty(ms, k, dtype=torch.bfloat16, device="cuda")
            wt = gen(torch, (k, n), 5)
            xs.copy_(gen(torch, (ms, k), 10 + r))
            xw = torch.empty(ms * 2, k, dtype=torch.bfloat16, device="cuda")
            wr = gen(torch, (k, n), 6)
            xg = torch.empty(ms, k, dtype=torch.bfloat16, device="cuda")
            xg.copy_(gen(torch, (ms, k), 20 + r))
            tiles = [kn.name for kn in ctx.kernels]
            planned = [split_all(ctx, ms, n, k, 12, t) for t in tiles]     # every tile split over 12 runs
            rt.ag_gemm(xs, wt)        # warm: symmetric buffers and tile orders exist before capture
            rt.gemm_rs(xw, wr)
            for t, sp in zip(tiles, planned):
                rt.gemm(xg, wt, tile=t, split=sp)
            torch.cuda.synchronize()
            dist.barrier()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                y = rt.ag_gemm(xs, wt)
                z = rt.gemm_rs(xw, wr)
                # stream-K on each tile (planned[i].on): its flags must be reset by the kernel
                ygs = [rt.gemm(xg, wt, tile=t, split=sp) for t, sp in zip(tiles, planned)]
            for it in range(3):
                xs.copy_(gen(torch, (ms, k), 1000 * it + r))
                xw.copy_(gen(torch, (ms * 2, k), 2000 * it + r))
                xg.copy_(gen(torch, (ms, k), 3000 * it + r))
                g.replay()
                torch.cuda.synchronize()
                ctx.check()
                full = torch.cat([gen(torch, (ms, k), 1000 * it + s) for s in range(w)])
                e1 = rel_err(y, full.float() @ wt.float())
                refz = sum(gen(torch, (ms * 2, k), 2000 * it + s).float() @ wr.float() for s in range(w))
                rows = ms * 2 // w
                e2 = rel_err(z, refz[r * rows:(r + 1) * rows])
                refg = gen(torch, (ms, k), 3000 * it + r).float() @ wt.float()
                e3 = max(rel_err(yg, refg) for yg in ygs)
                res["cases"].append({"op": "cuda-graph replay", "iter": it, "err_ag": e1, "err_rs": e2,
                                     "err_gemm_stream_k": e3, "split": [[p_.sk_tiles, p_.sk_units] for p_ in planned],
                                     "ok": e1 < TOL and e2 < TOL and e3 < TOL and all(p_.on for p_ in planned)})
        elif args.task == "timeout":
            # rank 1 never calls: rank 0 must get a CometError after the timeout, not hang
            # both ranks make one call first: symmetric buffers are allocated collectively
            xa, wa = gen(torch, (256, 512), 1), gen(torch, (512, 512), 2)
            rt.ag_gemm(xa, wa, strategy="overlap")
            torch.cuda.synchronize()
            dist.barrier()
            ctx.timeout_ns = int(2e9)
            if r == 0:
                # both schedules: with the dynamic one, readers of the tile ring must keep going after
                # another role's timeout (leaving early would strand the producer: a hang)
                for sched in ("static", "dynamic"):
                    t = time.time()
                    try:
                        rt.ag_gemm(xa, wa, strategy="overlap", sched=sched)
                        res["cases"].append({"op": "timeout", "sched": sched, "ok": False, "msg": "no error"})
                    except CometError as e:
                        res["cases"].append({"op": "timeout", "sched": sched, "ok": True, "msg": str(e),
                                             "s": time.time() - t})
        elif args.task == "rsbench":
            # GEMM+RS's reduction alone (one PE, flags pre-set): exact against torch (same fp32
            # order, one rounding), then its time; COMET_RS_SHAPES="m_shard x N x world,..."
            kern = ctx.kernels[0]
            shapes = [tuple(int(v) for v in t.split("x")) for t in
                      os.environ.get("COMET_RS_SHAPES", "4096x7168x2,2048x7168x4,1024x7168x8,1000x1001x2").split(",")]
            flags = torch.zeros(8, dtype=torch.int64, device="cuda")
            epoch = torch.zeros(1, dtype=torch.int64, device="cuda")
            errw = torch.zeros(4, dtype=torch.int32, device="cuda")
            stream = torch.cuda.current_stream().cuda_stream
            for (ms, n, ws) in shapes:
                own, recv = gen(torch, (ws * ms, n), 7), gen(torch, (ws * ms, n), 8)
                y = torch.empty(ms, n, dtype=torch.bfloat16, device="cuda")
                rank = ws - 1
                acc = own[rank * ms:(rank + 1) * ms].float()
                for sp in range(ws):
                    if sp != rank:
                        acc = acc + recv[sp * ms:(sp + 1) * ms].float()
                ref = acc.bfloat16()

                def call():
                    rc = kern.rs_reduce_loopback(y.data_ptr(), own.data_ptr(), recv.data_ptr(), flags.data_ptr(),
                                                 epoch.data_ptr(), errw.data_ptr(), ms, n, ws, rank, ctx.sms, stream)
                    if rc:
                        raise CometError(f"rs_reduce_loopback failed ({rc})")
                call()
                torch.cuda.synchronize()
                t = bench(torch, call, iters=50)
                moved = (ws * ms * n + ms * n) * 2      # own + (ws-1) peers' rows read, y written
                res["cases"].append({"op": "rs_reduce", "m_shard": ms, "n": n, "world": ws, "vec16": kern.rs_vec16(),
                                     "ms": t, "gbps": moved / t / 1e6, "ok": bool(torch.equal(y, ref))})
        elif args.task == "loopback":
            # one PE: the AG+GEMM overlap kernel with its comm blocks copying (world-1) shards
            # through local HBM beside the GEMM; GEMM alone and the sequential fallback beside it
            from comet_ir.backends.cost import gpu_model
            for (m, n, k) in [(8192, 7168, 4096), (4096, 7168, 4096), (16384, 4096, 4096)]:
                x, wt = gen(torch, (m, k), 1), gen(torch, (k, n), 2)
                wnk = wt.t().contiguous().t()
                ref = x.float() @ wt.float()
                out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
                t_gemm = bench(torch, lambda: rt.gemm(x, wnk, out=out), iters=20)
                for world_sim in (2, 4):
                    row = {"op": "loopback_ag_gemm", "mnk": [m, n, k], "world_sim": world_sim, "gemm_alone_ms": t_gemm}
                    y = ctx.loopback(x, wnk, world_sim, 8)
                    torch.cuda.synchronize()
                    row["err"] = rel_err(y, ref)
                    for c in (4, 8, 12, 16, 24, 32):
                        row[f"overlap_c{c}_ms"] = bench(torch, lambda: ctx.loopback(x, wnk, world_sim, c, out=out), iters=20)
                        row[f"pred_c{c}_ms"] = gpu_model.estimate("ag_gemm", m, n, k, world_sim, "h100", comm_blocks=c,
                                                                   same_gpu=True).overlap_us / 1e3
                    for c in (32, 132):
                        row[f"sequential_c{c}_ms"] = bench(torch, lambda: ctx.loopback(x, wnk, world_sim, c, True, out=out), iters=20)
                    e = gpu_model.estimate("ag_gemm", m, n, k, world_sim, "h100", same_gpu=True)
                    row.update(pred_best_comm=e.comm_blocks, pred_choice=e.choice, pred_sequential_ms=e.sequential_us / 1e3)
                    row["ok"] = row["err"] < TOL
                    res["cases"].append(row)
        elif args.task == "lbsweep":
            # one PE simulating rank 0 of `world`: AG+GEMM with its real dependences (tiles wait
            # for the shards the comm blocks copy through HBM), over a shape sweep; overlap at
            # several comm-block counts, the sequential fallback, and the cost model's choice
            from comet_ir.backends.cost import gpu_model
            shapes = [(m, n, k) for m in (128, 512, 2048, 8192, 16384) for n in (4096, 7168) for k in (4096,)]
            if os.environ.get("COMET_LB_SHAPES") == "validate":     # shapes the constants were not fitted on
                shapes = [(m, n, k) for m in (256, 1024, 4096, 12288) for (n, k) in ((5120, 8192), (14336, 4096))]
            elif os.environ.get("COMET_LB_SHAPES"):                  # "MxNxK,..."
                shapes = [tuple(int(v) for v in s_.split("x")) for s_ in os.environ["COMET_LB_SHAPES"].split(",")]

            def gbench(fn):                        # CUDA graph of 10 calls: host overhead out
                fn()
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    for _ in range(10):
                        fn()
                return bench(torch, g.replay, iters=10, warmup=2) / 10

            for (m, n, k) in shapes:
                wt = gen(torch, (k, n), 2)
                wnk = wt.t().contiguous().t()
                out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
                for world_sim in (2, 4):
                    xs = gen(torch, (m // world_sim, k), 1)
                    x = xs.repeat(world_sim, 1)
                    ref = x.float() @ wt.float()
                    e = gpu_model.estimate("ag_gemm", m, n, k, world_sim, "h100", same_gpu=True)
                    row = {"op": "lbwait_ag_gemm", "mnk": [m, n, k], "world_sim": world_sim,
                           "pred_choice": e.choice, "pred_comm": e.comm_blocks,
                           "pred_overlap_ms": e.overlap_us / 1e3, "pred_sequential_ms": e.sequential_us / 1e3,
                           "pred_gemm_ms": gpu_model.estimate("gemm", m, n, k, 1, "h100").latency_us / 1e3}
                    xt = x.clone()
                    xt[m // world_sim:] = 0          # remote rows arrive only through the comm blocks
                    y = ctx.loopback(xt, wnk, world_sim, e.comm_blocks, wait=True, order="local-first")
                    ctx.check()
                    row["err"] = rel_err(y, ref)
                    row["ok"] = row["err"] < TOL and bool(torch.equal(xt, x))
                    row["gemm_alone_ms"] = gbench(lambda: rt.gemm(x, wnk, out=out))
                    # with COMET_LB_SCHED (static vs dynamic schedule) three comm-block counts, to fit the call
                    cands = (4, 8, 16) if os.environ.get("COMET_LB_SCHED") else gpu_model.COMM_CANDIDATES
                    for c in cands:
                        row[f"overlap_c{c}_ms"] = gbench(lambda: ctx.loopback(
                            x, wnk, world_sim, c, out=out, wait=True, order="local-first"))
                        row[f"pred_c{c}_ms"] = gpu_model.estimate("ag_gemm", m, n, k, world_sim, "h100", comm_blocks=c,
                                                                   same_gpu=True).overlap_us / 1e3
                    for c in (32, 132):
                        row[f"sequential_c{c}_ms"] = gbench(lambda: ctx.loopback(
                            x, wnk, world_sim, c, True, out=out, wait=True, order="local-first"))
                    if os.environ.get("COMET_LB_SCHED"):   # the dynamic tile schedule beside the waits
                        xt[m // world_sim:] = 0
                        yd = ctx.loopback(xt, wnk, world_sim, e.comm_blocks, wait=True, order="local-first",
                                          sched="dynamic")
                        ctx.check()
                        row["err_dynamic"] = rel_err(yd, ref)
                        row["ok"] = row["ok"] and row["err_dynamic"] < TOL
                        row["ok"] = row["ok"] and bool(torch.equal(xt, x))
                        for c in cands:
                            row[f"dyn_overlap_c{c}_ms"] = gbench(lambda: ctx.loopback(
                                x, wnk, world_sim, c, out=out, wait=True, order="local-first", sched="dynamic"))
                    ctx.check()
                    res["cases"].append(row)
        elif args.task in ("bench", "sweep"):
            run_bench(args, torch, dist, rt, ctx, res)
        elif args.task == "nvlink":
            run_nvlink(args, torch, dist, rt, ctx, res)
    except Exception as e:  # report, do not hang the others
        import traceback

        res["error"] = f"{type(e).__name__}: {e}"
        res["trace"] = traceback.format_exc()[-3000:]
    res["seconds"] = time.time() - t0
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    try:
        dist.barrier()
    except Exception:
        pass
    os._exit(0)


def run_nvlink(args, torch, dist, rt, ctx, res) -> None:
    """One rank per GPU (real NVLink): ours and the baselines of the multi-GPU issue, timed the
    same way in the same processes -- barrier, then BURST back-to-back calls between two CUDA
    events (launches pipelined, no host sync per call), median of ROUNDS; max over ranks is
    taken by the reader. Baselines on an NCCL group: all-gather + cuBLAS, cuBLAS +
    reduce-scatter, the collectives and the GEMM alone, and torch's symmetric-memory fused ops."""
    import statistics
    from comet_ir.backends.cost import gpu_model
    r, w = args.rank, args.world
    nccl = dist.new_group(backend="nccl")
    burst, rounds = 10, 7

    def timed(fn):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        out = []
        for _ in range(rounds):
            dist.barrier()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(burst):
                fn()
            b.record()
            b.synchronize()
            out.append(a.elapsed_time(b) / burst)
        return statistics.median(out)

    m, k, n = (int(v) for v in os.environ.get("COMET_NVLINK_SHAPE", "8192x4096x7168").split("x"))
    ms = m // w
    row = {"op": "nvlink", "m": m, "k": k, "n": n, "device": torch.cuda.get_device_name()}
    x = gen(torch, (ms, k), 3 + r)
    wt = gen(torch, (k, n), 4)
    wnk = wt.t().contiguous().t()
    xfull = torch.empty(m, k, device="cuda", dtype=torch.bfloat16)
    ref_full = [torch.empty_like(x) for _ in range(w)]
    dist.all_gather(ref_full, x, group=nccl)
    ref = torch.cat(ref_full).float() @ wt.float()
    for s in ("overlap", "sequential", "auto", "tuned"):
        y = rt.ag_gemm(x, wnk, strategy=s)
        row[f"ag_{s}_err"] = rel_err(y, ref)
        row[f"ag_{s}_ms"] = timed(lambda: rt.ag_gemm(x, wnk, strategy=s, check=False))
    row["ag_tuned_choice"] = list(ctx._tuned.get(("ag_gemm", m, n, k), ()))
    row["ag_nccl_allgather_ms"] = timed(lambda: dist.all_gather_into_tensor(xfull, x, group=nccl))
    row["ag_cublas_alone_ms"] = timed(lambda: xfull @ wt)
    row["ag_nccl_sequential_ms"] = timed(lambda: (dist.all_gather_into_tensor(xfull, x, group=nccl), xfull @ wt))
    xr = gen(torch, (m, k), 30 + r)
    wr = gen(torch, (k, n), 40 + r)
    wrnk = wr.t().contiguous().t()
    part = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    yr = torch.empty(ms, n, device="cuda", dtype=torch.bfloat16)
    full = (xr.float() @ wr.float()).bfloat16()
    dist.all_reduce(full, group=nccl)
    for s in ("overlap", "sequential", "auto", "tuned"):
        y = rt.gemm_rs(xr, wrnk, strategy=s)
        row[f"rs_{s}_err"] = rel_err(y, full[r * ms:(r + 1) * ms].float())
        row[f"rs_{s}_ms"] = timed(lambda: rt.gemm_rs(xr, wrnk, strategy=s, check=False))
    row["rs_tuned_choice"] = list(ctx._tuned.get(("gemm_rs", m, n, k), ()))
    row["rs_cublas_alone_ms"] = timed(lambda: torch.matmul(xr, wr, out=part))
    row["rs_nccl_reducescatter_ms"] = timed(lambda: dist.reduce_scatter_tensor(yr, part, group=nccl))
    row["rs_nccl_sequential_ms"] = timed(
        lambda: (torch.matmul(xr, wr, out=part), dist.reduce_scatter_tensor(yr, part, group=nccl)))
    try:  # torch 2.11 keeps the fused ops as torch.ops.symm_mem.* (the Python wrappers are gone)
        gname = nccl.group_name
        row["ag_symm_mem_fused_ms"] = timed(
            lambda: torch.ops.symm_mem.fused_all_gather_matmul(x, [wt], 0, gname))
        row["rs_symm_mem_fused_ms"] = timed(
            lambda: torch.ops.symm_mem.fused_matmul_reduce_scatter(xr, wr, "sum", 0, gname))
    except Exception as e:  # noqa: BLE001 - report, keep the other rows
        row["symm_mem_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    for p in ("ag_gemm", "gemm_rs"):
        e = gpu_model.estimate(p, m, n if p == "ag_gemm" else n, k, w, ctx.arch, same_gpu=ctx.same_gpu)
        row[f"{p[:2]}_pred"] = {"overlap_ms": e.overlap_us / 1e3, "sequential_ms": e.sequential_us / 1e3,
                                "choice": e.choice, "comm_blocks": e.comm_blocks,
                                "arch": str(getattr(ctx.arch, "name", ctx.arch)), "same_gpu": ctx.same_gpu}
    res["cases"].append(row)


def run_bench(args, torch, dist, rt, ctx, res) -> None:
    from comet_ir.backends.cost import gpu_model

    r, w = args.rank, args.world
    barrier = dist.barrier
    if args.task == "bench" and w == 1:
        def graph_of(fn):                    # host overhead out: 10 calls in one graph
            fn()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                for _ in range(10):
                    fn()
            return g

        def cublas_kernels(fn):
            try:
                from torch.profiler import ProfilerActivity, profile
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    fn()
                    torch.cuda.synchronize()
                return sorted({e.key for e in prof.key_averages() if "gemm" in e.key.lower() or "sm90" in e.key})
            except Exception as e:  # noqa: BLE001 - informative only
                return [f"profiler: {e}"]

        shapes = [(8192, 7168, 4096), (8192, 8192, 8192), (16384, 7168, 4096), (4096, 4096, 4096),
                  (2048, 4096, 4096), (1024, 4096, 4096), (512, 4096, 4096), (512, 7168, 4096),
                  (256, 4096, 4096), (128, 4096, 4096), (128, 7168, 4096)]
        if os.environ.get("COMET_BENCH_SHAPES"):
            shapes = [tuple(int(v) for v in s_.split("x")) for s_ in os.environ["COMET_BENCH_SHAPES"].split(",")]
        rounds_main = int(os.environ.get("COMET_BENCH_ROUNDS", "15"))
        trace_shapes = {(8192, 7168, 4096), (512, 4096, 4096), (128, 7168, 4096)}
        slots = ctx.set_trace(None)
        for (m, n, k) in shapes:
            x, wt = gen(torch, (m, k), 1), gen(torch, (k, n), 2)
            wnk = wt.t().contiguous().t()           # [K, N] view of [N, K] storage (zero-copy path)
            ref = x.float() @ wt.float()
            auto = ctx.kernel(m, n, k, ctx.sms)
            out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
            # variants: (tile, split); "comet" = what the runtime picks (model's tile, planned split)
            configs = {"comet": (None, "auto")}
            for kn in ctx.kernels:          # t256 = 128x256, ..., t256x128 = 256x128 (BM != 128)
                tag = f"t{kn.tile_n}" if kn.tile_m == 128 else f"t{kn.tile_m}x{kn.tile_n}"
                configs[tag] = (kn.name, "auto")
                if ctx.split(m, n, k, ctx.sms, "auto", kn).on:
                    configs[f"{tag}_nosplit"] = (kn.name, "off")
            # stream-K over the partial last round plus w whole rounds (w = 0: the partial round
            # only), all clusters: the fix-up is paid once per run either way, so longer runs
            # amortise it (the planner splits only the partial round, and only if >= 2 % faster)
            from comet_ir.backends.cuda.stream_k import Split
            cl = ctx.sms // (auto.cluster_m * auto.cluster_n)
            n_tiles = -(-m // (auto.tile_m * auto.cluster_m)) * -(-n // (auto.tile_n * auto.cluster_n))
            for w_ in (0, 1, 2):
                sk = (n_tiles % cl or cl) + w_ * cl
                if sk <= n_tiles and sk * -(-k // auto.tile_k) > cl:
                    configs[f"sk{w_}w"] = (auto.name, Split(sk, cl))
            sp_auto = ctx.split(m, n, k, ctx.sms, "auto", auto)
            row = {"op": "gemm", "mnk": [m, n, k], "tile": auto.name, "split": [sp_auto.sk_tiles, sp_auto.sk_units]}
            errs = {name: rel_err(rt.gemm(x, wnk, tile=t, split=sp), ref) for name, (t, sp) in configs.items()}
            variants = {name: (lambda t=t, sp=sp: rt.gemm(x, wnk, out=out, tile=t, split=sp))
                        for name, (t, sp) in configs.items()}
            variants["torch"] = lambda: torch.matmul(x, wt)
            # cuBLAS on W in our [N, K] storage (its TN kernel) and our kernel in row-major tile order
            variants["torch_tn"] = lambda: torch.matmul(x, wnk)
            variants["rowmajor"] = lambda: rt.gemm(x, wnk, out=out, order="row-major")
            errs["rowmajor"] = rel_err(rt.gemm(x, wnk, order="row-major"), ref)
            # other L2 groupings of the tile order, COMET_BENCH_GROUPS="16,8sx8,8sx8d": variants g16,
            # g8sx8, g8sx8d (rt.grouping_variant; a trailing "d" runs it with the dynamic tile schedule;
            # the order is built and cached on the first, uncaptured call)
            def grouping(spec):
                grp, sched = rt.grouping_variant(spec)
                def call():
                    with rt.l2_grouping(*grp):
                        return rt.gemm(x, wnk, out=out, sched=sched)
                return call
            for spec in filter(None, os.environ.get("COMET_BENCH_GROUPS", "").split(",")):
                variants["g" + spec] = grouping(spec)
                errs["g" + spec] = rel_err(variants["g" + spec]().clone(), ref)
            # the tile schedule: "comet" runs the default (static round robin), "dynamic" the counter
            variants["dynamic"] = lambda: rt.gemm(x, wnk, out=out, sched="dynamic")
            errs["dynamic"] = rel_err(rt.gemm(x, wnk, sched="dynamic"), ref)
            if os.environ.get("COMET_BENCH_REF"):
                out_ref = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
                refs, row["cutlass_stages"] = cutlass_ref_variants(torch, rt, x, wnk.t(), out_ref, m, n, k, ctx.sms)
                for name, fn in refs.items():
                    out_ref.fill_(float("nan"))
                    errs[name] = rel_err(fn().clone(), ref)
                variants.update(refs)
            traced = {name: c + (None,) for name, c in configs.items()
                      if (c[1] == "auto" and name != "comet") or name.startswith("sk")}
            traced.update({"comet": (None, "auto", "static"), "dynamic": (None, "auto", "dynamic")})
            if os.environ.get("COMET_BENCH_VARIANTS"):      # e.g. "comet,torch": a clean pair
                keep = os.environ["COMET_BENCH_VARIANTS"].split(",")
                variants = {name: fn for name, fn in variants.items() if name in keep}
                configs = {name: c for name, c in configs.items() if name in keep}
            eager = {name: bench(torch, variants[name], iters=30) for name in ("comet", "torch")}
            graphs = {name: graph_of(fn) for name, fn in variants.items()}
            samples = {name: [] for name in variants}
            rounds = rounds_main if (m, n, k) == (8192, 7168, 4096) else \
                int(os.environ.get("COMET_BENCH_ROUNDS_OTHER", "5"))
            order = list(variants)
            for i in range(rounds):            # interleaved, order rotated: clocks drift under load
                for name in order[i % len(order):] + order[:i % len(order)]:
                    samples[name].append(bench(torch, graphs[name].replay, iters=3, warmup=1) / 10)
            med = {name: sorted(v)[len(v) // 2] for name, v in samples.items()}
            ratios = sorted(t / c for t, c in zip(samples["torch"], samples["comet"]))
            row.update({"comet_graph_ms": med["comet"], "torch_graph_ms": med["torch"],
                        "graph_speedup_vs_cublas": med["torch"] / med["comet"],
                        "ratio_median": ratios[len(ratios) // 2], "ratio_min": ratios[0], "ratio_max": ratios[-1],
                        "ratio_q1_q3": [ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]],
                        # every variant against the same rounds' cuBLAS samples: median [q1, q3]
                        "ratio_by_variant": {
                            name: (lambda rs: [rs[len(rs) // 2], rs[len(rs) // 4], rs[(3 * len(rs)) // 4]])(
                                sorted(t / c for t, c in zip(samples["torch"], v)))
                            for name, v in samples.items() if name != "torch"},
                        "comet_ms": eager["comet"], "torch_ms": eager["torch"],
                        "speedup_vs_cublas": eager["torch"] / eager["comet"],
                        "tflops_graph": 2 * m * n * k / med["comet"] / 1e9,
                        "pred_ms": gpu_model.estimate("gemm", m, n, k, 1, "h100").latency_us / 1e3,
                        "median_ms": med, "samples": samples, "err": errs,
                        "cublas_kernels": cublas_kernels(lambda: torch.matmul(x, wt))})
            row["pred_variants_ms"] = {
                name: (gpu_model.gemm_us(m, n, k, ctx.sms, "h100", ctx.kernel(m, n, k, ctx.sms, t).tile, sp == "auto",
                                         ctx.kernel(m, n, k, ctx.sms, t).cluster) + gpu_model.LAUNCH_US) / 1e3
                for name, (t, sp) in configs.items() if isinstance(sp, str)}
            if (m, n, k) in trace_shapes:
                buf = torch.zeros(ctx.sms, slots, dtype=torch.int64, device="cuda")
                row["trace"] = {}
                for name, (t, sp, sch) in traced.items():
                    ctx.set_trace(buf)
                    buf.zero_()
                    rt.gemm(x, wnk, out=out, tile=t, split=sp, sched=sch)
                    torch.cuda.synchronize()
                    ctx.set_trace(None)
                    tr = buf.cpu()
                    t0 = int(tr[:, 0][tr[:, 0] > 0].min())
                    row["trace"][name] = [[int(v) - t0 if v > 1000 else int(v) for v in r_] for r_ in tr.tolist()]
            row["ok"] = all(e < TOL for e in errs.values())
            res["cases"].append(row)
        return
    # several ranks on one GPU
    shapes = [(8192, 4096, 7168)] if args.task == "bench" else \
        [(m, 4096, n) for m in (128, 512, 2048, 8192, 16384) for n in (4096, 7168)]
    for (m, k, n) in shapes:
        ms = m // w
        for pattern in ("ag_gemm", "gemm_rs"):
            if pattern == "ag_gemm":
                x, wt = gen(torch, (ms, k), 3 + r), gen(torch, (k, n), 4)
                op = lambda s: rt.ag_gemm(x, wnk, strategy=s, check=False)  # noqa: E731
                xg = gen(torch, (m, k), 5)
                gemm_alone = lambda: torch.matmul(xg, wt)  # noqa: E731
            else:
                x, wt = gen(torch, (m, k), 3 + r), gen(torch, (k, n), 4 + r)
                op = lambda s: rt.gemm_rs(x, wnk, strategy=s, check=False)  # noqa: E731
                gemm_alone = lambda: torch.matmul(x, wt)  # noqa: E731
            wnk = wt.t().contiguous().t()
            row = {"op": pattern, "m": m, "k": k, "n": n}
            for s in ("overlap", "sequential", "auto", "tuned"):
                row[s + "_ms"] = bench(torch, lambda: op(s), iters=10, warmup=3, barrier=barrier)
            row["tuned_choice"] = list(ctx._tuned.get((pattern, m, n, k), ()))
            row["torch_gemm_alone_ms"] = bench(torch, gemm_alone, iters=10, warmup=3, barrier=barrier)
            e = gpu_model.estimate(pattern, m, n, k, w, "h100", same_gpu=True)
            row.update(pred_overlap_ms=e.overlap_us / 1e3, pred_sequential_ms=e.sequential_us / 1e3,
                       choice=e.choice, comm_blocks=e.comm_blocks)
            res["cases"].append(row)


if __name__ == "__main__":
    main()
