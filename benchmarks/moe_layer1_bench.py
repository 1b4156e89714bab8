"""Layer1 (GEMM2 + return + combine) fused in one kernel vs unfused, Mixtral-8x7B shapes (hidden 4096,
ffn 14336, 8 experts, top-2), T = 2048 and 8192 tokens, uniform routing. Same run, interleaved rounds,
median of CUDA-event timings of eager calls (see RESULTS: graph replays crashed in this script).

EP=1 (one process), layer1 alone on the same h / offsets / gates:
  unfused     GEMM2 (coop_128x256, the runtime's default) + moe_combine
  fused<k>    moe_layer1 kernel with k comm CTAs returning column tiles + the waiting combine
  and the whole layer (CometMoE, graph): layer1_comm_blocks 0 vs the best k and the model's choice.
EP=2 (two processes = two NVSHMEM PEs sharing ONE GPU: HBM-bound, time-sliced; not NVLink figures):
  the whole layer per rank, eager (the EP path syncs once per call for the error word),
  layer1_comm_blocks 0 (GEMM2 + moe_ep_return + combine) vs k.
Writes $OUT/moe_layer1_bench.json; prints a summary last.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

import torch
from gpu_timing import bench as _bench, graphed  # benchmarks/ is the script's directory

H, FF, E, K = 4096, 14336, 8, 2
OUT = os.environ.get("OUT", ".")
ROUNDS = int(os.environ.get("MOE_ROUNDS", "3"))
REPS = int(os.environ.get("MOE_REPS", "15"))
KS = (4, 8, 16, 32)


def bench(fn, warm=3, reps=None, sync_each=None):
    return _bench(fn, warm, REPS if reps is None else reps, sync_each)


def ep1(T, res):
    from comet_ir.backends.cuda.moe import kernels
    from comet_ir.backends.cuda.moe.layer1 import L1Comm
    from comet_ir.backends.cuda.moe.module import CometMoE
    from comet_ir.backends.cost import moe_model as MM
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(T)
    m = CometMoE(H, FF, E, K, backend="cutlass", device=dev)
    x = torch.randn(T, H, generator=gen, device=dev).bfloat16()
    lg = torch.randn(T, E, generator=gen, device=dev)
    _, gates, _, offsets, perm, inv, _ = m._route(x, lg, copy=False)
    rows = T * K
    h = (torch.randn(rows, FF, generator=gen, device=dev) * 0.1).bfloat16()
    _, w2t = m._pack()
    lib = kernels.load()
    g2 = m._gemm_v("coop_128x256", H, FF, dev)
    y = torch.empty(rows, H, dtype=torch.bfloat16, device=dev)
    out = torch.empty(T, H, dtype=torch.bfloat16, device=dev)

    def unfused():
        s = torch.cuda.current_stream().cuda_stream   # the capture stream inside graphed()
        g2.run(offsets.data_ptr(), h.data_ptr(), w2t.data_ptr(), y.data_ptr(), s)
        kernels.check(lib.moe_combine(y.data_ptr(), inv.data_ptr(), gates.data_ptr(), out.data_ptr(), T, H, K, s), "c")
        return out

    l1 = m._l1(dev)
    counts = (offsets[1:] - offsets[:-1]).to(torch.int32)
    ret = torch.empty(rows, H, dtype=torch.bfloat16, device=dev)
    sig = torch.zeros(l1.nt, dtype=torch.int32, device=dev)
    out2 = torch.empty(T, H, dtype=torch.bfloat16, device=dev)
    err = m._err_buf(dev)

    def fused(k):
        c = L1Comm(y=y.data_ptr(), recv_off=offsets.data_ptr(), counts=counts.data_ptr(), send_off=offsets.data_ptr(),
                   perm=perm.data_ptr(), err=err.data_ptr(), timeout_ns=int(5e9), vec=H // 8, experts=E, ep=1, me=0,
                   sys_scope=0)
        c.peer_ret[0], c.peer_sig[0] = ret.data_ptr(), sig.data_ptr()

        def fn():
            s = torch.cuda.current_stream().cuda_stream
            sig.zero_()
            l1.run(offsets.data_ptr(), h.data_ptr(), w2t.data_ptr(), y.data_ptr(), c, k, s)
            l1.combine(ret.data_ptr(), None, gates.data_ptr(), out2.data_ptr(), T, K, sig.data_ptr(), counts.data_ptr(),
                       E, 1, False, err.data_ptr(), int(5e9), s)
            return out2
        return fn

    ref = unfused().clone()
    variants = {"unfused": unfused}
    for k in KS:
        variants[f"fused{k}"] = fused(k)
        o = variants[f"fused{k}"]().clone()
        torch.cuda.synchronize()
        res.setdefault("check", {})[f"T{T}_fused{k}_vs_unfused_rel"] = float((o.double() - ref.double()).norm() / ref.double().norm())
    m.check_errors()
    # whole layer: layer1 unfused vs fused (layer0 as the runtime chooses)
    for k in (0,) + KS:
        mm = CometMoE(H, FF, E, K, backend="cutlass", device=dev, layer1_comm_blocks=k)
        mm.w1, mm.w3, mm.w2 = m.w1, m.w3, m.w2
        mm._packed = m._packed
        variants[f"layer_l1cb{k}"] = (lambda mm=mm: mm(x, lg))
        o = variants[f"layer_l1cb{k}"]().clone()
        torch.cuda.synchronize()
        if k == 0:
            lref = o
        res.setdefault("check", {})[f"T{T}_layer_l1cb{k}_vs_l1cb0_rel"] = float((o.double() - lref.double()).norm() / lref.double().norm())
        print(f"T={T} layer l1cb{k} eager ok", flush=True)
    # eager timing (CUDA events; the GPU runs ahead of the launches at these sizes)
    times = {n: [] for n in variants}
    for _ in range(ROUNDS):
        for n, fn in variants.items():
            times[n].append(bench(fn))
            torch.cuda.synchronize()
    m.check_errors()
    cfg = MM.MoEConfig(T, H, FF, E, K)
    res[f"ep1_T{T}"] = {n: statistics.median(v) for n, v in times.items()}
    res[f"ep1_T{T}_runs"] = times
    res[f"ep1_T{T}_model"] = {k: MM.predict_layer1(cfg, "h100", k)["total_ms"] for k in (0,) + KS}
    res[f"ep1_T{T}_model_choice"] = MM.choose_layer1_comm_blocks(cfg, "h100")[0]


def graph_diag(T, res):
    """CUDA-graph capture + replay of the whole layer (layer1 fused with 8 comm CTAs, and unfused),
    one step at a time with a sync after each, so a failure names its step."""
    from comet_ir.backends.cuda.moe.module import CometMoE
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(T)
    x = torch.randn(T, H, generator=gen, device=dev).bfloat16()
    lg = torch.randn(T, E, generator=gen, device=dev)
    steps = res.setdefault(f"graph_T{T}", [])
    base = None
    for k in (0, 8):
        m = CometMoE(H, FF, E, K, backend="cutlass", device=dev, layer1_comm_blocks=k)
        if base is None:
            base = m
        else:
            m.w1, m.w3, m.w2 = base.w1, base.w3, base.w2
        eager = m(x, lg).clone()
        torch.cuda.synchronize()
        steps.append(f"l1cb{k} eager ok")
        g, out = graphed(lambda: m(x, lg))
        torch.cuda.synchronize()
        steps.append(f"l1cb{k} captured")
        for i in range(3):
            g.replay()
            torch.cuda.synchronize()
        steps.append(f"l1cb{k} replayed, rel vs eager {float((out.double() - eager.double()).norm() / eager.double().norm()):.2e}")
        res[f"graph_T{T}_l1cb{k}_ms"] = bench(g.replay)
        print(steps[-1], flush=True)


def _ep2_worker(rank, world, initfile, T, q):
    import torch.distributed as dist
    try:
        from comet_ir.backends.cuda.moe.module import CometMoE
        torch.cuda.set_device(0)
        dev = torch.device("cuda", 0)
        dist.init_process_group("gloo", init_method=f"file://{initfile}", rank=rank, world_size=world)
        gen = torch.Generator(device=dev).manual_seed(100 + rank)
        base = CometMoE(H, FF, E, K, ep=2, backend="cutlass", device=dev, transport="nvshmem", max_tokens=T)
        x = torch.randn(T, H, generator=gen, device=dev).bfloat16()
        lg = torch.randn(T, E, generator=gen, device=dev)
        out = {}
        for k in (0, 8, 16):
            base.layer1_comm_blocks = k
            base(x, lg)
            out.setdefault("check", {})[k] = base(x, lg).float().norm().item()
        times = {k: [] for k in (0, 8, 16)}
        for _ in range(ROUNDS):
            for k in times:
                base.layer1_comm_blocks = k
                times[k].append(bench(lambda: base(x, lg), sync_each=dist.barrier))
        out["times"] = {k: statistics.median(v) for k, v in times.items()}
        out["runs"] = times
        base.layer1_comm_blocks = "auto"
        out["auto"] = base.choose_layer1_comm_blocks(T)
        q.put((rank, out))
        dist.barrier()
        dist.destroy_process_group()
    except Exception as err:
        import traceback
        q.put((rank, traceback.format_exc()[-2000:]))


def ep2(T, res):
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as d:
        ps = [ctx.Process(target=_ep2_worker, args=(r, 2, os.path.join(d, "init"), T, q)) for r in range(2)]
        for p in ps:
            p.start()
        out = dict(q.get(timeout=400) for _ in ps)
        for p in ps:
            p.join(timeout=60)
    res[f"ep2_T{T}"] = out


def main():
    res = {"device": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d %H:%M"), "rounds": ROUNDS,
           "reps": REPS}
    parts = os.environ.get("L1_PARTS", "ep1 ep2").split()
    for p in parts:
        for T in (2048, 8192):
            try:
                {"ep1": ep1, "ep2": ep2, "graph": graph_diag}[p](T, res)
            except Exception as err:
                import traceback
                res.setdefault("errors", []).append(f"{p} T={T}: {traceback.format_exc()[-1500:]}")
            with open(os.path.join(OUT, "moe_layer1_bench.json"), "w") as f:
                json.dump(res, f, indent=1, default=str)
    print("== summary")
    print(json.dumps({k: v for k, v in res.items() if not k.endswith("_runs")}, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
