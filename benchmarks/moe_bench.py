"""MoE layer benchmarks on one GPU (Mixtral-8x7B shapes: hidden 4096, ffn 14336, 8 experts, top-2).

Variants, all timed from x and the router weight (router GEMM included everywhere):
  torch_loop     plain torch layer: router GEMM, softmax, top-2, argsort, per-expert SwiGLU loop,
                 gate-weighted index_add_ combine (the gpu.md baseline)
  grouped_mm     CometMoE(backend="grouped_mm"): same routing, permutation, torch._grouped_mm
  cutlass_coop   CometMoE(backend="cutlass"), CUTLASS grouped GEMM 128x256 cooperative
  cutlass_ping   same, 128x128 ping-pong
  cutlass_graph  cutlass_coop captured in a CUDA graph
Expert GEMMs alone (rows already grouped; GEMM1 + SwiGLU + GEMM2) give the effective TFLOP/s.
SM sweep: the cooperative grouped GEMM on fewer SMs (the compute role's share when comm blocks
take the rest), to calibrate the comm-ratio model. Writes JSON to $OUT (or ./moe_bench.json).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F

from comet_ir.backends.cuda.moe.module import CometMoE, reference_moe, route, permutation
from comet_ir.backends.cost import moe_model as MM

H, FF, E, K = 4096, 14336, 8, 2
OUT = os.environ.get("OUT", ".")
RES: dict = {"device": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
             "cases": {}, "errors": []}


def save():
    with open(os.path.join(OUT, "moe_bench.json"), "w") as f:
        json.dump(RES, f, indent=1)


def bench(fn, warm=5, reps=20):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts), min(ts), max(ts)


def skew_bias(dev):
    # Zipf-like: expert popularity ~ 1/rank^1.2 (logit bias), as in gpu.md's skewed case
    return torch.log(1.0 / torch.arange(1, E + 1, device=dev, dtype=torch.float32) ** 1.2) * 3


def main():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    w1 = (torch.randn(E, H, FF, device=dev) * H ** -0.5).bfloat16()
    w3 = (torch.randn(E, H, FF, device=dev) * H ** -0.5).bfloat16()
    w2 = (torch.randn(E, FF, H, device=dev) * FF ** -0.5).bfloat16()
    wr = (torch.randn(H, E, device=dev) * H ** -0.5).bfloat16()
    m = CometMoE(H, FF, E, K, backend="cutlass", device=dev)
    m.load_global_weights(w1, w3, w2)
    for T in (2048, 8192):
        for skew in (False, True):
            name = f"T{T}_{'skewed' if skew else 'uniform'}"
            r = RES["cases"][name] = {}
            x = torch.randn(T, H, device=dev).bfloat16()
            bias = skew_bias(dev) if skew else torch.zeros(E, device=dev)
            wr_b = wr  # bias added to the logits below
            logits_fn = lambda: (x @ wr_b).float() + bias  # noqa: E731
            lg = logits_fn()
            idx, gates = route(lg, K)
            perm, inv, counts, offsets = permutation(idx, E)
            r["counts"] = counts.tolist()
            # ---------- correctness at this shape (T=2048 only: the fp32 reference is slow-ish)
            if T == 2048:
                ref = reference_moe(x, lg, w1, w3, w2, K)
                for be in ("cutlass", "grouped_mm"):
                    try:
                        m.backend_req = be
                        y = m(x, lg)
                        r[f"relerr_{be}"] = float((y.double() - ref.double()).norm() / ref.double().norm())
                    except Exception as e:
                        RES["errors"].append(f"{name} {be}: {e!r}")
                yb = plain_layer_from_logits(x, lg, w1, w3, w2)
                r["relerr_torch_loop_bf16"] = float((yb.double() - ref.double()).norm() / ref.double().norm())
            # ---------- whole layer
            def run_variant(key, fn, into=None):
                into = r if into is None else into
                try:
                    med, lo, hi = bench(fn)
                    into[key] = {"ms": med, "min": lo, "max": hi}
                    print(f"{name:18s} {key:16s} {med:8.3f} ms", flush=True)
                except Exception as e:
                    RES["errors"].append(f"{name} {key}: {e!r}")
                    traceback.print_exc()
            # ---------- grouped-GEMM variants: GEMM1 and GEMM2 alone, correctness vs variant 0
            from comet_ir.backends.cuda.moe.kernels import GroupedGemm, PLAIN_VARIANTS as VARIANTS
            xs0 = x.index_select(0, perm // K)
            w13t, w2t = m._pack()
            st = torch.cuda.current_stream().cuda_stream
            rows = xs0.shape[0]
            hb = torch.randn(rows, FF, device=dev).bfloat16()
            vs = r["variants"] = {}
            base = None
            for v in VARIANTS:
                try:
                    g1 = GroupedGemm(E, 2 * FF, H, 0, v)
                    g2 = GroupedGemm(E, H, FF, 0, v)
                    o1 = torch.full((rows, 2 * FF), float("nan"), device=dev, dtype=torch.bfloat16)
                    o2 = torch.full((rows, H), float("nan"), device=dev, dtype=torch.bfloat16)
                    t1 = bench(lambda: g1.run(offsets.data_ptr(), xs0.data_ptr(), w13t.data_ptr(), o1.data_ptr(), st))[0]
                    t2 = bench(lambda: g2.run(offsets.data_ptr(), hb.data_ptr(), w2t.data_ptr(), o2.data_ptr(), st))[0]
                    vs[v] = {"gemm1_ms": t1, "gemm2_ms": t2,
                             "gemm1_tflops": 2.0 * rows * H * 2 * FF / (t1 * 1e9),
                             "gemm2_tflops": 2.0 * rows * H * FF / (t2 * 1e9)}
                    if T == 2048 and not skew:
                        if base is None:
                            # variant 0 against torch for one expert slice
                            a, b = int(offsets[0]), int(offsets[1])
                            refg = (xs0[a:b].float() @ w13t[0].float().t())
                            vs[v]["gemm1_relerr_vs_torch"] = float((o1[a:b].float() - refg).norm() / refg.norm())
                            base = (o1.clone(), o2.clone())
                        vs[v]["relerr_vs_variant0"] = float(max((o1.float() - base[0].float()).norm() / base[0].float().norm(),
                                                                (o2.float() - base[1].float()).norm() / base[1].float().norm()))
                        vs[v]["nan"] = bool(torch.isnan(o1).any() or torch.isnan(o2).any())
                    print(name, v, vs[v], flush=True)
                    del g1, g2, o1, o2
                except Exception as e:
                    RES["errors"].append(f"{name} variant {v}: {e!r}")
            if vs:
                b1 = min(vs, key=lambda v: vs[v]["gemm1_ms"])
                b2 = min(vs, key=lambda v: vs[v]["gemm2_ms"])
                r["best_pair"] = [b1, b2]
            del hb, xs0
            # ---------- stages of the cutlass layer
            m.backend_req, m.gemm_variant, m._gemms = "cutlass", "coop_128x256", {}
            run_variant("stage_route_dispatch", lambda: m._route_dispatch_fused(x, lg))
            xs_f, inv_f, gates_f, offs_f = m._route_dispatch_fused(x, lg)
            ys_f = torch.randn(rows, H, device=dev).bfloat16()
            run_variant("stage_combine", lambda: m._combine(ys_f, inv_f, gates_f, T, "cutlass"))
            from comet_ir.backends.cuda.moe import kernels as KK
            gbuf = torch.randn(rows, 2 * FF, device=dev).bfloat16()
            hbuf = torch.empty(rows, FF, device=dev, dtype=torch.bfloat16)
            run_variant("stage_swiglu", lambda: KK.load().moe_swiglu(gbuf.data_ptr(), hbuf.data_ptr(), rows, FF, st))
            run_variant("stage_router_gemm", lambda: x @ wr)
            del gbuf, hbuf, ys_f, xs_f

            # ---------- expert GEMMs alone (rows grouped): GEMM1 + SwiGLU + GEMM2
            xs = x.index_select(0, perm // K)
            flops = 2.0 * 3 * T * K * H * FF
            pair = tuple(r.get("best_pair", ["coop_128x256"] * 2))
            cands = {"experts_cutlass_coop": ("cutlass", "coop_128x256"),
                     "experts_cutlass_best_pair": ("cutlass", pair),
                     "experts_cutlass_swiglu_evt": ("cutlass", ("swiglu_evt_128x256", pair[1])),
                     "experts_grouped_mm": ("grouped_mm", "coop_128x256")}
            y_ref_exp = None
            for key, (be, var) in cands.items():
                m.backend_req, m.gemm_variant, m._gemms = be, var, {}
                try:
                    ye = m.experts_forward(xs, offsets, be)
                    if y_ref_exp is None:
                        y_ref_exp = ye.float()
                    r[key + "_relerr_vs_coop"] = float((ye.float() - y_ref_exp).norm() / y_ref_exp.norm())
                except Exception as e:
                    RES["errors"].append(f"{name} {key}: {e!r}")
                    continue
                run_variant(key, lambda: m.experts_forward(xs, offsets, be))
                if key in r:
                    r[key]["tflops"] = flops / (r[key]["ms"] * 1e9)
            ok = [k for k in cands if k in r and k.startswith("experts_cutlass") and r.get(k + "_relerr_vs_coop", 1) < 1e-2]
            bestk = min(ok, key=lambda k: r[k]["ms"]) if ok else "experts_cutlass_coop"
            best = cands[bestk][1]
            r["best_config"] = [bestk, list(best) if isinstance(best, tuple) else best]
            if T == 2048:
                m.backend_req, m.gemm_variant, m._gemms = "cutlass", best, {}
                yb_ = m(x, lg)
                r["relerr_cutlass_best"] = float((yb_.double() - ref.double()).norm() / ref.double().norm())
                del yb_
            # plain torch layer with the same skew: add the bias through a biased router
            run_variant("torch_loop", lambda: plain_layer_biased(x, wr, bias, w1, w3, w2))
            for be, var, key in (("grouped_mm", "coop_128x256", "grouped_mm"), ("cutlass", "coop_128x256", "cutlass_coop"),
                                 ("cutlass", best, "cutlass_best")):
                m.backend_req, m.gemm_variant = be, var
                m._gemms = {}
                run_variant(key, lambda: m(x, logits_fn()))
            m.backend_req, m.gemm_variant, m._gemms = "cutlass", best, {}
            try:
                xs_, lgs_ = x.clone(), lg.clone()
                m(xs_, lgs_)
                s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    m(xs_, lgs_)
                torch.cuda.current_stream().wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    yg = (m(xs_, ((xs_ @ wr).float() + bias)))
                run_variant("cutlass_graph", g.replay)
                y_eager = m(x, logits_fn())
                r["graph_vs_eager_relerr"] = float((yg.double() - y_eager.double()).norm() / y_eager.double().norm())
                del g
            except Exception as e:
                RES["errors"].append(f"{name} graph: {e!r}")
                traceback.print_exc()
            m.backend_req, m.gemm_variant, m._gemms = "cutlass", "coop_128x256", {}
            # ---------- SM sweep (compute role on fewer SMs)
            if not skew:
                from comet_ir.backends.cuda.moe.kernels import GroupedGemm
                sweep = {}
                for sms in (132, 124, 116, 100):
                    try:
                        g1 = GroupedGemm(E, 2 * FF, H, 0, "coop_128x256", sms)
                        g2 = GroupedGemm(E, H, FF, 0, "coop_128x256", sms)
                        w13t, w2t = m._pack()
                        gb = torch.empty(xs.shape[0], 2 * FF, device=dev, dtype=torch.bfloat16)
                        hb = torch.empty(xs.shape[0], FF, device=dev, dtype=torch.bfloat16)
                        yb = torch.empty(xs.shape[0], H, device=dev, dtype=torch.bfloat16)
                        st = torch.cuda.current_stream().cuda_stream

                        def both():
                            g1.run(offsets.data_ptr(), xs.data_ptr(), w13t.data_ptr(), gb.data_ptr(), st)
                            g2.run(offsets.data_ptr(), hb.data_ptr(), w2t.data_ptr(), yb.data_ptr(), st)
                        sweep[sms] = bench(both)[0]
                        del g1, g2
                    except Exception as e:
                        RES["errors"].append(f"{name} sweep {sms}: {e!r}")
                r["sm_sweep_gemms_ms"] = sweep
                print(name, "sm sweep", sweep, flush=True)
            # ---------- cost model
            cfg = MM.MoEConfig(T, H, FF, E, K, counts=tuple(int(c) for c in r["counts"]))
            r["model"] = {"grouped": MM.predict(cfg, "h100", "grouped"), "loop": MM.predict(cfg, "h100", "loop")}
            save()
            del x, xs


def extra_shapes():
    """Out-of-sample shapes for the cost model: (T, H, F, E, k)."""
    dev = torch.device("cuda")
    ex = RES["extra"] = {}
    for (T, h, f, e, k) in ((4096, 4096, 14336, 8, 2), (4096, 2048, 1408, 64, 6), (1024, 4096, 14336, 8, 2)):
        name = f"T{T}_H{h}_F{f}_E{e}_k{k}"
        r = ex[name] = {}
        try:
            torch.manual_seed(1)
            w1 = (torch.randn(e, h, f, device=dev) * h ** -0.5).bfloat16()
            w3 = (torch.randn(e, h, f, device=dev) * h ** -0.5).bfloat16()
            w2 = (torch.randn(e, f, h, device=dev) * f ** -0.5).bfloat16()
            x = torch.randn(T, h, device=dev).bfloat16()
            lg = torch.randn(T, e, device=dev)
            m = CometMoE(h, f, e, k, backend="cutlass", device=dev)
            m.load_global_weights(w1, w3, w2)
            idx, _ = route(lg, k)
            r["counts"] = torch.bincount(idx.reshape(-1), minlength=e).tolist()
            ref = reference_moe(x, lg, w1, w3, w2, k)
            r["relerr_cutlass"] = float((m(x, lg).double() - ref.double()).norm() / ref.double().norm())
            for key, fn in (("torch_loop", lambda: plain_layer_from_logits(x, lg, w1, w3, w2, k)),
                            ("cutlass_eager", lambda: m(x, lg))):
                r[key] = {"ms": bench(fn)[0]}
            m(x, lg)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                m(x, lg)
            r["cutlass_graph"] = {"ms": bench(g.replay)[0]}
            cfg = MM.MoEConfig(T, h, f, e, k, counts=tuple(r["counts"]))
            r["model_grouped_ms"] = MM.predict(cfg, "h100", "grouped")["total_ms"]
            r["model_loop_ms"] = MM.predict(cfg, "h100", "loop")["total_ms"]
            print(name, {kk: vv for kk, vv in r.items() if kk != "counts"}, flush=True)
            del g, m, w1, w3, w2
        except Exception as e_:
            RES["errors"].append(f"extra {name}: {e_!r}")
            traceback.print_exc()
        save()


def plain_layer_from_logits(x, lg, w1, w3, w2, k=K):
    idx, g = route(lg, k)
    flat = idx.reshape(-1)
    order = torch.argsort(flat)
    counts = torch.bincount(flat, minlength=w1.shape[0]).tolist()
    tok = order // k
    gate = g.reshape(-1)[order].to(x.dtype)
    out = torch.zeros_like(x)
    s = 0
    for e, c in enumerate(counts):
        if c:
            t = tok[s:s + c]
            xe = x[t]
            out.index_add_(0, t, ((F.silu(xe @ w1[e]) * (xe @ w3[e])) @ w2[e]) * gate[s:s + c, None])
        s += c
    return out


def plain_layer_biased(x, wr, bias, w1, w3, w2):
    return plain_layer_from_logits(x, (x @ wr).float() + bias, w1, w3, w2)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        RES["errors"].append(traceback.format_exc())
        traceback.print_exc()
    torch.cuda.empty_cache()
    try:
        extra_shapes()
    except Exception:
        RES["errors"].append(traceback.format_exc())
    save()
    print(json.dumps({k: {kk: (vv["ms"] if isinstance(vv, dict) and "ms" in vv else None)
                          for kk, vv in v.items() if isinstance(vv, dict) and "ms" in vv}
                      for k, v in RES["cases"].items()}, indent=1))
    print("errors:", RES["errors"])
    sys.exit(0)
