"""MoE layer benchmarks on one GPU (Mixtral-8x7B shapes: hidden 4096, ffn 14336, 8 experts, top-2).

Everything compared is measured in this run, interleaved: each round times every variant once
(median of REPS CUDA-event timings after warm-up), and the table reports the median over rounds.

Layer variants (timed from x and the router weight, the router GEMM included everywhere):
  torch_loop      plain torch layer (softmax, top-2, argsort, per-expert SwiGLU loop,
                  gate-weighted index_add_; eager: it syncs for the counts)
  grouped_mm      CometMoE(backend="grouped_mm")
  ours_eager      CometMoE default (GEMM1 + SwiGLU in one CUTLASS kernel, GEMM2 with split-K where
                  it pays, comm blocks chosen by the cost model)
  ours_graph      the same captured in a CUDA graph
  prev_graph      the previous default (2026-11-24 part 3: SwiGLU through ex2 + rcp)
  cb<k>_graph     the fused layer0 kernel with k comm blocks (0 = unfused) -> chosen vs best
Expert GEMMs alone (rows already grouped), effective TFLOP/s = 6 T k H F / time:
  experts_ours / _prev / _prev_dup (the previous default again: the run's noise floor), and cuBLAS
  dense GEMMs of equal FLOPs; stages gemm1_pair, gemm2, route_dispatch.
CTA profile (one eager call each of ours and prev, after the rounds): per grouped GEMM, the
  makespan, the mean CTA busy fraction and the spread of CTA end times (the tail).
MOE_BENCH_MODE=tune measures the grouped-GEMM choices instead (same baselines, same rounds):
  g1_*  GEMM1 + SwiGLU alone: silu through ex2 + rcp or tanh.approx (each twice: noise floor);
        L2 strips of 3 / 12 N-clusters and CUTLASS's AlongM order vs the default (6 at K=4096)
  g2_*  GEMM2 alone: cluster 1x2 with split-K where it pays (incl. the fold) / never split, 1x1 split
        (each twice)
  experts_<name>, layer <name>_graph for whole configurations; "prev" = the previous default.
MOE_BENCH_MODE=diag (T=2048 uniform, or MOE_DIAG_T): where the expert GEMMs lose to dense cuBLAS --
  GEMM1 / GEMM2 each as ours, ours again (noise floor), with expert offsets padded to whole
  128-row tiles ("aligned": 512 rows per expert, no padding MMAs), with every expert reading the
  same weights ("shared": b_group_stride 8 elements, 1/8 of the weight bytes from HBM), both, and
  dense cuBLAS of the same shape; GEMM2 also without the split-K fold and without split-K.
  MOE_DIAG_SET=dyn: the dynamic tile schedule (*_dyn variants) vs the default (dyn_case).
  MOE_DIAG_T=2048,8192s: the token counts (a trailing s: skewed routing).
  MOE_DIAG_SET=gap: the padding-free (aligned) GEMMs with per-expert / shared weights / one group,
  cluster 1x2 / 2x1, GEMM1 with the plain epilogue too, vs cuBLAS (gap_case).
Energy (tune and diag modes, or MOE_ENERGY=1): after each variant's timing in a round, a burst of
  back-to-back calls (~MOE_BURST_MS) between two reads of NVML's total-energy counter
  (nvmlDeviceGetTotalEnergyConsumption, mJ) with a thread sampling the SM clock and power every
  5 ms: fields mj_per_call, b2b_ms (ms per call in the burst), sm_mhz, power_w (medians over rounds).
  Under the 700 W cap the GPU's time per call is its energy per call over ~700 W.
Writes $OUT/moe_bench.json (tune: $OUT/moe_tune.json, diag: $OUT/moe_diag.json).
"""
from __future__ import annotations

import ctypes
import json
import os
import random
import statistics
import sys
import threading
import time
import traceback

import torch
import torch.nn.functional as F

from comet_ir.backends.cuda.moe.module import COMM_BLOCKS, CometMoE, reference_moe, route, permutation
from comet_ir.backends.cost import moe_model as MM
from gpu_timing import bench as _bench, graphed  # benchmarks/ is the script's directory

H, FF, E, K = 4096, 14336, 8, 2
OUT = os.environ.get("OUT", ".")
ROUNDS = int(os.environ.get("MOE_ROUNDS", "3"))
REPS = int(os.environ.get("MOE_REPS", "15"))
MODE = os.environ.get("MOE_BENCH_MODE", "layer")
ENERGY = os.environ.get("MOE_ENERGY", "1" if MODE in ("tune", "diag") else "0") == "1"
BURST_MS = float(os.environ.get("MOE_BURST_MS", "300"))
RES: dict = {"device": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
             "rounds": ROUNDS, "reps": REPS, "cases": {}, "errors": []}


def save():
    dset = os.environ.get("MOE_DIAG_SET")
    fn = {"tune": "moe_tune.json", "diag": f"moe_diag_{dset}.json" if dset else "moe_diag.json"}.get(MODE, "moe_bench.json")
    with open(os.path.join(OUT, fn), "w") as f:
        json.dump(RES, f, indent=1)


class Nvml:
    """The few NVML calls the energy bursts need, through ctypes on libnvidia-ml.so.1 (no pynvml):
    total energy since driver load (mJ), SM clock (MHz), power (mW). None where NVML is missing."""
    SM_CLOCK = 1   # NVML_CLOCK_SM

    def __init__(self, dev):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        if self.lib.nvmlInit_v2():
            raise RuntimeError("nvmlInit_v2 failed")
        self.h = ctypes.c_void_p()
        try:   # the CUDA device's PCI address; NVML's index 0 where torch does not say
            p = torch.cuda.get_device_properties(dev)
            bus = f"{p.pci_domain_id:08X}:{p.pci_bus_id:02X}:{p.pci_device_id:02X}.0".encode()
            rc = self.lib.nvmlDeviceGetHandleByPciBusId_v2(ctypes.c_char_p(bus), ctypes.byref(self.h))
        except AttributeError:
            rc = 1
        if rc and self.lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(self.h)):
            raise RuntimeError("no NVML handle")
        self.energy_mj()

    def energy_mj(self) -> int:
        e = ctypes.c_ulonglong()
        if self.lib.nvmlDeviceGetTotalEnergyConsumption(self.h, ctypes.byref(e)):
            raise RuntimeError("nvmlDeviceGetTotalEnergyConsumption failed")
        return e.value

    def sm_mhz(self) -> int:
        c = ctypes.c_uint()
        self.lib.nvmlDeviceGetClockInfo(self.h, self.SM_CLOCK, ctypes.byref(c))
        return c.value

    def power_mw(self) -> int:
        p = ctypes.c_uint()
        self.lib.nvmlDeviceGetPowerUsage(self.h, ctypes.byref(p))
        return p.value


_NVML: list = []


def nvml():
    if not _NVML:
        try:
            _NVML.append(Nvml(torch.cuda.current_device()))
        except Exception as e:
            RES["errors"].append(f"nvml: {e!r}")
            _NVML.append(None)
    return _NVML[0]


def energy_burst(fn, ms_hint, trace=None):
    """n back-to-back calls of fn (n from the call's time: ~BURST_MS in all) between two reads of
    the energy counter, the SM clock and power sampled every 5 ms by a thread meanwhile:
    {mj_per_call, b2b_ms, sm_mhz, power_w, n}. trace (a list) receives (s, mJ) counter samples
    (the counter's update granularity)."""
    nv = nvml()
    if nv is None:
        return None
    n = max(10, int(BURST_MS / max(ms_hint, 1e-3)))
    fn()
    torch.cuda.synchronize()
    clk, pw, stop = [], [], threading.Event()

    def sample():
        while not stop.is_set():
            clk.append(nv.sm_mhz())
            pw.append(nv.power_mw())
            if trace is not None:
                trace.append((time.perf_counter(), nv.energy_mj()))
            time.sleep(0.005)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0 = nv.energy_mj()
    th = threading.Thread(target=sample)
    th.start()
    a.record()
    for _ in range(n):
        fn()
    b.record()
    while not b.query():
        time.sleep(0.0005)
    e1 = nv.energy_mj()
    stop.set()
    th.join()
    return {"mj_per_call": (e1 - e0) / n, "b2b_ms": a.elapsed_time(b) / n, "n": n,
            "sm_mhz": statistics.mean(clk) if clk else None,
            "power_w": statistics.mean(pw) / 1e3 if pw else None}


def bench(fn, warm=3, reps=None, sync_each=None):
    return _bench(fn, warm, REPS if reps is None else reps, sync_each)


def run_rounds(name, fns, r, flops_of):
    """Every variant timed once per round, rounds interleaving the variants in a new random order
    each round (a fixed order favoured whatever ran first in a round: the GPU heats and slows over
    a round), so drift and clock changes hit all alike; r[k] = median over rounds, with TFLOP/s
    where flops_of(k) is known."""
    times = {k: [] for k in fns}
    en = {k: [] for k in fns}
    for rnd in range(ROUNDS):
        order = list(fns.items())
        random.Random(rnd).shuffle(order)
        for k, fn in order:
            try:
                times[k].append(bench(fn))
                if ENERGY and not k.startswith(("torch_loop", "grouped_mm", "ours_eager")):
                    b = energy_burst(fn, times[k][-1])
                    if b:
                        en[k].append(b)
            except Exception as e:
                RES["errors"].append(f"{name} {k} round {rnd}: {e!r}")
    for k, ts in times.items():
        if ts:
            r[k] = {"ms": statistics.median(ts), "rounds": ts}
            f = flops_of(k)
            if f:
                r[k]["tflops"] = f / (r[k]["ms"] * 1e9)
            extra = ""
            if en[k]:
                for fld in ("mj_per_call", "b2b_ms", "sm_mhz", "power_w"):
                    vals = [b[fld] for b in en[k] if b[fld] is not None]
                    if vals:
                        r[k][fld] = statistics.median(vals)
                r[k]["energy_rounds"] = en[k]
                extra = (f" | {r[k].get('mj_per_call', 0):7.1f} mJ/call, b2b {r[k].get('b2b_ms', 0):.3f} ms, "
                         f"SM {r[k].get('sm_mhz', 0):.0f} MHz, {r[k].get('power_w', 0):.0f} W")
            print(f"{name:16s} {k:48s} {r[k]['ms']:8.3f} ms {[round(t, 3) for t in ts]}{extra}", flush=True)


def skew_bias(dev):
    # Zipf-like: expert popularity ~ 1/rank^1.2 (logit bias), as in gpu.md's skewed case
    return torch.log(1.0 / torch.arange(1, E + 1, device=dev, dtype=torch.float32) ** 1.2) * 3


def plain_layer(x, wr, bias, w1, w3, w2, k=K):
    lg = (x @ wr).float() + bias
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


def dense_equal_flops(T, dev):
    """(CUDA graph, its operands) of dense cuBLAS GEMMs with the expert GEMMs' FLOPs (T*K rows
    through GEMM1's gate+up and GEMM2): the practical ceiling ../shared/gpu.md quotes. A graph
    does not own its inputs: the caller keeps the operands alive while it replays."""
    a1 = torch.randn(T * K, H, device=dev).bfloat16()
    b1 = torch.randn(H, 2 * FF, device=dev).bfloat16()
    a2 = torch.randn(T * K, FF, device=dev).bfloat16()
    b2 = torch.randn(FF, H, device=dev).bfloat16()
    g, _ = graphed(lambda: (a1 @ b1, a2 @ b2))
    return g, (a1, b1, a2, b2)


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def routed_case(T, skew, wr, dev):
    """One benchmark case's tokens and routing (Zipf-biased logits when skewed): its name, its
    result record (with the per-expert counts), x, the logit bias, the logits, and the
    expert-grouped perm / offsets."""
    name = f"T{T}_{'skewed' if skew else 'uniform'}"
    r = RES["cases"][name] = {}
    x = torch.randn(T, H, device=dev).bfloat16()
    bias = skew_bias(dev) if skew else torch.zeros(E, device=dev)
    lg = (x @ wr).float() + bias
    idx, _ = route(lg, K)
    perm, _, counts, offsets = permutation(idx, E)
    r["counts"] = counts.tolist()
    return name, r, x, bias, lg, perm, offsets


def mixtral_weights(dev):
    """Seeded (0) Mixtral-8x7B expert weights w1, w3 [E, H, F], w2 [E, F, H] and router [H, E],
    scaled by 1/sqrt(fan-in)."""
    torch.manual_seed(0)
    w1 = (torch.randn(E, H, FF, device=dev) * H ** -0.5).bfloat16()
    w3 = (torch.randn(E, H, FF, device=dev) * H ** -0.5).bfloat16()
    w2 = (torch.randn(E, FF, H, device=dev) * FF ** -0.5).bfloat16()
    wr = (torch.randn(H, E, device=dev) * H ** -0.5).bfloat16()
    return w1, w3, w2, wr


def grouped_setup(x, perm, offsets, w1, w3, w2, dev):
    """The default CometMoE without comm blocks on these weights, its packed weights, the tokens in
    expert order, their count, and offsets padded to whole row tiles (every expert rows // E rows)."""
    m = CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0)
    m.load_global_weights(w1, w3, w2)
    w13t, w2t = m._pack()
    xs = x.index_select(0, perm // K)
    rows = xs.shape[0]
    aligned = (torch.arange(E + 1, device=dev, dtype=offsets.dtype) * (rows // E)).contiguous()
    return m, w13t, w2t, xs, rows, aligned


def case(T, skew, w1, w3, w2, wr, dev):
    name, r, x, bias, lg, perm, offsets = routed_case(T, skew, wr, dev)
    cfg = MM.MoEConfig(T, H, FF, E, K, counts=tuple(int(c) for c in r["counts"]))

    layers = {}
    m = CometMoE(H, FF, E, K, backend="cutlass", device=dev)
    m.load_global_weights(w1, w3, w2)
    m._pack()

    def share(mm):  # one packed copy of the 2.8 GB of weights per layout, not one per module
        mm.w1, mm.w3, mm.w2 = m.w1, m.w3, m.w2
        if mm._variants()[0].startswith("swiglu_pair"):
            mm._packed = m._packed
        return mm
    r["chosen_comm_blocks"] = m.choose_comm_blocks(T)
    mods = {"ours": m}
    for cb in COMM_BLOCKS:
        mods[f"cb{cb}"] = share(CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=cb))
    # the previous default (scalar epilogue stores, CUTLASS's tile order, GEMM2 cluster 2x1
    # without split-K) for before/after in one run
    mods["prev"] = tuned(share(CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0)), dev, **PREV)
    mods["prev_dup"] = tuned(share(CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0)), dev, **PREV)
    mg = share(CometMoE(H, FF, E, K, backend="grouped_mm", device=dev))
    # correctness of every layer variant at this shape (fp32 reference at T=2048 only: slow)
    if T == 2048:
        ref = reference_moe(x, lg, w1, w3, w2, K)
        for key, mm in list(mods.items()) + [("grouped_mm", mg)]:
            try:
                r[f"relerr_{key}"] = rel(mm(x, lg), ref)
                mm.check_errors()
            except Exception as e:
                RES["errors"].append(f"{name} {key}: {e!r}")
        r["relerr_torch_loop_bf16"] = rel(plain_layer(x, wr, bias, w1, w3, w2), ref)
        del ref
    layers["torch_loop"] = lambda: plain_layer(x, wr, bias, w1, w3, w2)
    layers["grouped_mm"] = lambda: mg(x, (x @ wr).float() + bias)
    layers["ours_eager"] = lambda: m(x, (x @ wr).float() + bias)
    graphs = {}
    for key, mm in mods.items():
        if key == "prev_dup":
            continue   # experts only
        try:
            g, _ = graphed(lambda mm=mm: mm(x, (x @ wr).float() + bias))
            graphs[key] = g
            layers[f"{key}_graph"] = g.replay
        except Exception as e:
            RES["errors"].append(f"{name} graph {key}: {e!r}")
            traceback.print_exc()

    # expert GEMMs alone on grouped rows
    xs = x.index_select(0, perm // K)
    rows = xs.shape[0]
    flops = 6.0 * T * K * H * FF
    exp = {}
    y0 = None
    for key in ("ours", "prev", "prev_dup"):
        me = mods.get(key)
        if me is None:
            continue
        try:
            y = me.experts_forward(xs, offsets, "cutlass")
            if y0 is None:
                y0 = y.float()
            r[f"experts_{key}_relerr_vs_ours"] = rel(y.float(), y0)
            g, _ = graphed(lambda me=me: me.experts_forward(xs, offsets, "cutlass"))
            exp[f"experts_{key}"] = g.replay
            graphs[f"e_{key}"] = g
        except Exception as e:
            RES["errors"].append(f"{name} experts {key}: {e!r}")
    # GEMM1 alone / GEMM2 alone (default variants) for the model and the profile
    try:
        h = m._gemm1_cutlass(xs, offsets, rows)
        g1, _ = graphed(lambda: m._gemm1_cutlass(xs, offsets, rows, h))
        g2, _ = graphed(lambda: m._gemm2_cutlass(h, offsets, rows))
        exp["gemm1_pair"], exp["gemm2"] = g1.replay, g2.replay
        graphs["g1"], graphs["g2"] = g1, g2
        g3, _ = graphed(lambda: m._route(x, lg, copy=True))
        exp["route_dispatch"] = g3.replay
        graphs["g3"] = g3
    except Exception as e:
        RES["errors"].append(f"{name} stages: {e!r}")

    # dense cuBLAS GEMMs of the same FLOPs (the practical ceiling gpu.md quotes: 587 TFLOP/s)
    try:
        gd, graphs["dense_operands"] = dense_equal_flops(T, dev)
        graphs["dense"] = gd
        exp["experts_dense_cublas_equal_flops"] = gd.replay
    except Exception as e:
        RES["errors"].append(f"{name} dense: {e!r}")
    run_rounds(name, {**layers, **exp}, r, lambda k: flops if k.startswith("experts_") else None)
    for key in ("ours", "prev"):
        try:
            r[f"profile_{key}"] = cta_profile(mods[key], xs, offsets, dev)
        except Exception as e:
            RES["errors"].append(f"{name} profile {key}: {e!r}")
    # comm-block sweep: chosen vs measured best; model per config (layer0 part + the rest)
    sweep = {cb: r[f"cb{cb}_graph"]["ms"] for cb in COMM_BLOCKS if f"cb{cb}_graph" in r}
    if sweep:
        r["comm_sweep_ms"] = sweep
        r["measured_best_comm_blocks"] = min(sweep, key=sweep.get)
        base = MM.predict(cfg, "h100", "grouped", include_router=True)["total_ms"]
        l0_0 = MM.predict_layer0(cfg, "h100", 0)["total_ms"]
        r["model_comm_ms"] = {cb: base - l0_0 + MM.predict_layer0(cfg, "h100", cb)["total_ms"] for cb in COMM_BLOCKS}
        r["model_err_pct"] = {cb: 100 * (r["model_comm_ms"][cb] - sweep[cb]) / sweep[cb] for cb in sweep}
    r["model_grouped_ms"] = MM.predict(cfg, "h100", "grouped", include_router=True)
    r["model_loop_ms"] = MM.predict(cfg, "h100", "loop", include_router=True)["total_ms"]
    if "torch_loop" in r and "ours_graph" in r:
        r["speedup_graph"] = r["torch_loop"]["ms"] / r["ours_graph"]["ms"]
        r["speedup_eager"] = r["torch_loop"]["ms"] / r["ours_eager"]["ms"]
        for key in ("prev",):
            if f"{key}_graph" in r:
                r[f"speedup_{key}_graph"] = r["torch_loop"]["ms"] / r[f"{key}_graph"]["ms"]
    save()
    del graphs, layers, exp, mods, m, mg
    torch.cuda.empty_cache()


LEGACY = (1 << 30, 0)   # (strip, light): CUTLASS's AlongM order, no light groups
# the previous default's options (part 3: SwiGLU through ex2 + rcp)
PREV = dict(g1={"tanh": False})


def tuned(mm, dev, g1=None, g2=None):
    """Set the schedule / epilogue options of a module's GEMM handles (created on demand); an
    option not named keeps the handle's default."""
    v1, v2 = mm._variants()
    if g1:
        h = mm._gemm_v(v1, 2 * FF, H, dev)
        if "sched" in g1:
            h.set_schedule(*g1["sched"])
        if "scalar" in g1:
            h.set_scalar_stores(g1["scalar"])
        if "tanh" in g1:
            h.set_silu_tanh(g1["tanh"])
    if g2 and "sched" in g2:
        for v in {v2, v2.replace("_sk2", "")}:
            mm._gemm_v(v, H, FF, dev).set_schedule(*g2["sched"])
    return mm


def cta_profile(mm, xs, offsets, dev):
    """One eager experts_forward with the CTA timing profile on every GEMM handle of `mm`: per
    handle used, CTAs with tiles, makespan (first start to last end), mean busy fraction, the
    spread of end times (how long the last CTAs run alone) and tiles per CTA."""
    bufs = {}
    for key, h in mm._gemms.items():
        bufs[key] = torch.zeros(3 * 1024, dtype=torch.int64, device=dev)
        h.set_profile(bufs[key].data_ptr())
    try:
        mm.experts_forward(xs, offsets, "cutlass")
        torch.cuda.synchronize()
    finally:
        for h in mm._gemms.values():
            h.set_profile(0)
    out = {}
    for key, b in bufs.items():
        p = b.view(-1, 3).cpu()
        p = p[p[:, 2] > 0]
        if not len(p):
            continue
        t0, t1 = int(p[:, 0].min()), int(p[:, 1].max())
        span = max(t1 - t0, 1)
        ends = p[:, 1].double()
        out[key[0]] = {"ctas": len(p), "makespan_us": span / 1e3,
                       "busy_frac": float((p[:, 1] - p[:, 0]).double().mean() / span),
                       "end_spread_us": float(ends.max() - ends.min()) / 1e3,
                       "end_p10_us": float(ends.quantile(0.1) - t0) / 1e3,
                       "tiles_min": int(p[:, 2].min()), "tiles_max": int(p[:, 2].max())}
    return out


def tune_case(T, skew, w1, w3, w2, wr, dev):
    name, r, x, bias, lg, perm, offsets = routed_case(T, skew, wr, dev)
    base = CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0)
    base.load_global_weights(w1, w3, w2)
    base._pack()

    def mk(v1, v2, g1=None, g2=None):
        mm = CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0, gemm_variant=(v1, v2))
        mm.w1, mm.w3, mm.w2 = base.w1, base.w3, base.w2
        if v1.startswith("swiglu_pair"):
            mm._packed = base._packed
        return tuned(mm, dev, g1, g2)
    # (2x1 / 2x2 clusters: 5-25 % slower than 1x2 at T=2048, 2x1 equal at 8192: run 2 of
    # 2026-11-24 session 4, RESULTS part 4.)
    # *_dup = the same configuration again: the run's noise floor.
    v1, v2 = "swiglu_pair_c12", "coop_128x256_c12_sk2"
    EXP, TANH = {"tanh": False}, {"tanh": True}
    configs = {
        "prev": mk(v1, v2, EXP), "prev_dup": mk(v1, v2, EXP), "tanh": mk(v1, v2, TANH),
        "tanh_dup": mk(v1, v2, TANH), "tanh_nosplit": mk(v1, "coop_128x256_c12", TANH),
    }
    mg = CometMoE(H, FF, E, K, backend="grouped_mm", device=dev)
    mg.w1, mg.w3, mg.w2 = base.w1, base.w3, base.w2
    if T == 2048:
        ref = reference_moe(x, lg, w1, w3, w2, K)
        for key, mm in configs.items():
            try:
                r[f"relerr_{key}"] = rel(mm(x, lg), ref)
            except Exception as e:
                RES["errors"].append(f"{name} {key}: {e!r}")
        r["relerr_torch_loop_bf16"] = rel(plain_layer(x, wr, bias, w1, w3, w2), ref)
        del ref
    fns, graphs = {}, {}
    fns["torch_loop"] = lambda: plain_layer(x, wr, bias, w1, w3, w2)
    fns["grouped_mm"] = lambda: mg(x, (x @ wr).float() + bias)
    xs = x.index_select(0, perm // K)
    rows = xs.shape[0]
    for key, mm in configs.items():
        try:
            g, _ = graphed(lambda mm=mm: mm(x, (x @ wr).float() + bias))
            graphs[key], fns[f"{key}_graph"] = g, g.replay
            g, _ = graphed(lambda mm=mm: mm.experts_forward(xs, offsets, "cutlass"))
            graphs["e" + key], fns[f"experts_{key}"] = g, g.replay
        except Exception as e:
            RES["errors"].append(f"{name} graph {key}: {e!r}")
            traceback.print_exc()
    # GEMM1 alone: SwiGLU form; GEMM2 alone: cluster 1x2 / 1x1
    h = torch.empty(rows, FF, dtype=x.dtype, device=dev)
    for cl in ("c12",):
        for sk, opt in (("exp", EXP), ("exp_dup", EXP), ("tanh", TANH), ("tanh_dup", TANH),
                        ("tanh_strip3", {"tanh": True, "sched": (3, -1)}),
                        ("tanh_strip12", {"tanh": True, "sched": (12, -1)}),
                        ("tanh_alongm", {"tanh": True, "sched": (1 << 30, -1)})):
            key = f"{cl}_{sk}"
            try:
                mm = mk(f"swiglu_pair_{cl}", "coop_128x256", g1=opt)
                mm._gemm1_cutlass(xs, offsets, rows, h)
                g, _ = graphed(lambda mm=mm: mm._gemm1_cutlass(xs, offsets, rows, h))
                graphs["g1" + key], fns[f"g1_{key}"] = g, g.replay
                configs["g1" + key] = mm
            except Exception as e:
                RES["errors"].append(f"{name} g1 {key}: {e!r}")
    base._gemm1_cutlass(xs, offsets, rows, h)
    for cl, v2 in (("c12sk", "coop_128x256_c12_sk2"), ("c12", "coop_128x256_c12"), ("c11sk", "coop_128x256_c11_sk2")):
        for sk in ("a", "b"):
            key = f"{cl}_{sk}"
            try:
                mm = mk("swiglu_pair_c12", v2)
                mm._gemm2_cutlass(h, offsets, rows)
                g, _ = graphed(lambda mm=mm: mm._gemm2_cutlass(h, offsets, rows))
                graphs["g2" + key], fns[f"g2_{key}"] = g, g.replay
                configs["g2" + key] = mm
            except Exception as e:
                RES["errors"].append(f"{name} g2 {key}: {e!r}")
    try:
        gd, graphs["dense_operands"] = dense_equal_flops(T, dev)
        graphs["dense"], fns["experts_dense_cublas_equal_flops"] = gd, gd.replay
    except Exception as e:
        RES["errors"].append(f"{name} dense: {e!r}")
    flops = 6.0 * T * K * H * FF
    run_rounds(name, fns, r, lambda k: flops if k.startswith("experts_") else flops * 2 / 3 if k.startswith("g1_")
               else flops / 3 if k.startswith("g2_") else None)
    for key in configs:
        if f"{key}_graph" in r and "torch_loop" in r:
            r[f"speedup_{key}"] = r["torch_loop"]["ms"] / r[f"{key}_graph"]["ms"]
    save()
    del graphs, fns, configs, mg, base
    torch.cuda.empty_cache()


def graph_each(name, calls):
    """Each call captured in its own CUDA graph: (replay functions, graphs) by key; a capture that
    fails is recorded in RES["errors"] and left out, the others still run."""
    fns, graphs = {}, {}
    for k, fn in calls.items():
        try:
            g, _ = graphed(fn)
            graphs[k], fns[k] = g, g.replay
        except Exception as e:
            RES["errors"].append(f"{name} graph {k}: {e!r}")
            traceback.print_exc()
    return fns, graphs


def expert_flops(T):
    """FLOPs of one call by variant key: experts_* both GEMMs, g1_* GEMM1 (2/3), g2_* GEMM2 (1/3)."""
    f = 6.0 * T * K * H * FF
    return lambda k: f if k.startswith("experts_") else f * 2 / 3 if k.startswith("g1_") else \
        f / 3 if k.startswith("g2_") else None


def diag_rounds(name, fns, r, T):
    """The diag modes' rounds: run_rounds, then each variant's TFLOP/s and GFLOP/J in its
    back-to-back bursts; saved."""
    fl = expert_flops(T)
    run_rounds(name, fns, r, fl)
    for k, v in r.items():
        if isinstance(v, dict) and "b2b_ms" in v and fl(k):
            v["tflops_b2b"] = fl(k) / (v["b2b_ms"] * 1e9)
            v["gflop_per_j"] = fl(k) / 1e9 / (v["mj_per_call"] / 1e3) if v.get("mj_per_call") else 0
    save()


def add_dense_gemms(fns, graphs, rows, h, dev):
    """cuBLAS on random operands of GEMM1's ([rows, H] @ [H, 2F]) and GEMM2's (h @ [F, H])
    shapes, as graphs g1_dense / g2_dense."""
    a1 = torch.randn(rows, H, device=dev).bfloat16()
    b1 = torch.randn(H, 2 * FF, device=dev).bfloat16()
    b2 = torch.randn(FF, H, device=dev).bfloat16()
    for k, fn in (("g1_dense", lambda: a1 @ b1), ("g2_dense", lambda: h @ b2)):
        g, _ = graphed(fn)
        graphs[k], fns[k] = g, g.replay


def diag_case(T, skew, w1, w3, w2, wr, dev):
    """GEMM1 / GEMM2 of the default layer with padding (aligned offsets) and weight bytes (shared
    weights) taken away one at a time and together, vs dense cuBLAS of the same shape: which of
    them the gap to dense is, in time and in energy per call (module docstring)."""
    from comet_ir.backends.cuda.moe import kernels
    name, r, x, bias, lg, perm, offsets = routed_case(T, skew, wr, dev)
    m, w13t, w2t, xs, rows, aligned = grouped_setup(x, perm, offsets, w1, w3, w2, dev)
    r["aligned_rows_per_expert"] = rows // E
    v1, v2 = m._variants()
    g1h = m._gemm_v(v1, 2 * FF, H, dev)
    g2h = m._gemm_v(v2, H, FF, dev)
    g2n = m._gemm_v(v2.replace("_sk2", ""), H, FF, dev)
    g2t = m._gemm_v("coop_128x128_c12", H, FF, dev)
    try:   # gang order (RESULTS part 5)
        g1g = m._gemm_v("swiglu_pair_c12_gang", 2 * FF, H, dev)
        g2g = m._gemm_v("coop_128x256_c12_gang_sk2", H, FF, dev)
    except Exception as e:
        RES["errors"].append(f"{name} gang handles: {e!r}")
        g1g = g2g = None
    h = torch.randn(rows, FF, device=dev).bfloat16()
    y = torch.empty(2 * rows, H, dtype=xs.dtype, device=dev)
    lib = kernels.load()
    SHARED = 8   # elements: expert e reads B from b + 8 e (16-byte aligned): ~1/8 of the weight bytes

    def cs():
        return torch.cuda.current_stream(dev).cuda_stream

    def g1(offs, bs=0, handle=g1h):
        return lambda: handle.run(offs.data_ptr(), xs.data_ptr(), w13t.data_ptr(), h.data_ptr(), cs(), bs)

    def g2(offs, bs=0, fold=True, handle=g2h):
        def f():
            handle.run(offs.data_ptr(), h.data_ptr(), w2t.data_ptr(), y.data_ptr(), cs(), bs)
            if fold:
                kernels.check(lib.moe_fold(y.data_ptr(), y[rows:].data_ptr(), handle.split_flag_ptr(), rows * H, cs()),
                              "fold")
        return f
    offs = offsets.contiguous()
    calls = {
        "g1_ours": g1(offs), "g1_ours_dup": g1(offs), "g1_aligned": g1(aligned), "g1_shared": g1(offs, SHARED),
        "g1_aligned_shared": g1(aligned, SHARED),
        "g2_ours": g2(offs), "g2_ours_dup": g2(offs), "g2_nofold": g2(offs, fold=False),
        "g2_nosplit": g2(offs, fold=False, handle=g2n), "g2_aligned": g2(aligned), "g2_shared": g2(offs, SHARED),
        "g2_aligned_shared": g2(aligned, SHARED), "g2_n128": g2(offs, fold=False, handle=g2t),
        "experts_ours": lambda: m.experts_forward(xs, offsets, "cutlass"),
        "experts_ours_dup": lambda: m.experts_forward(xs, offsets, "cutlass"),
    }
    mn = CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0, gemm_variant=(v1, "coop_128x128_c12"))
    mn.w1, mn.w3, mn.w2, mn._packed = m.w1, m.w3, m.w2, m._packed
    calls["experts_n128"] = lambda: mn.experts_forward(xs, offsets, "cutlass")
    if g1g is not None:
        mg = CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0,
                      gemm_variant=("swiglu_pair_c12_gang", "coop_128x256_c12_gang_sk2"))
        mg.w1, mg.w3, mg.w2, mg._packed = m.w1, m.w3, m.w2, m._packed
        calls["g1_gang"] = g1(offs, handle=g1g)
        calls["g2_gang"] = g2(offs, handle=g2g)
        calls["experts_gang"] = lambda: mg.experts_forward(xs, offsets, "cutlass")
    if os.environ.get("MOE_DIAG_SET") == "gang":   # the gang-order A/B
        keep = ("g1_ours", "g1_ours_dup", "g1_gang", "g2_ours", "g2_ours_dup", "g2_gang",
                "experts_ours", "experts_ours_dup", "experts_gang")
        calls = {k: calls[k] for k in keep if k in calls}
    try:   # gang order computes bit-identical outputs (same tiles, same K order per tile)
        if "g1_gang" not in calls:
            raise RuntimeError("no gang handles")
        calls["g1_ours"]()
        href = h.clone()
        h.fill_(float("nan"))
        calls["g1_gang"]()
        r["g1_gang_equal"] = bool(torch.equal(h, href))
        calls["g2_ours"]()
        yref = y[:rows].clone()
        y.fill_(float("nan"))
        calls["g2_gang"]()
        r["g2_gang_equal"] = bool(torch.equal(y[:rows], yref))
        print("gang order bit-identical: GEMM1", r["g1_gang_equal"], "GEMM2", r["g2_gang_equal"], flush=True)
        del href, yref
    except Exception as e:
        RES["errors"].append(f"{name} gang check: {e!r}")
    try:   # the 128x128 GEMM2 computes what the default does
        if "g2_n128" in calls:
            calls["g2_ours"]()
            yref = y[:rows].float().clone()
            y.fill_(float("nan"))
            calls["g2_n128"]()
            r["g2_n128_relerr_vs_ours"] = rel(y[:rows].float(), yref)
            print("g2_n128 relerr vs ours", r["g2_n128_relerr_vs_ours"], flush=True)
            del yref
    except Exception as e:
        RES["errors"].append(f"{name} n128 check: {e!r}")
    fns, graphs = graph_each(name, calls)
    add_dense_gemms(fns, graphs, rows, h, dev)
    gd, graphs["dense_operands"] = dense_equal_flops(T, dev)
    graphs["dense"], fns["experts_dense_cublas_equal_flops"] = gd, gd.replay
    if os.environ.get("MOE_DIAG_SET") == "gang":
        del fns["g1_dense"], fns["g2_dense"]
    # the energy counter's update granularity: counter samples over one ~1 s burst
    trace = []
    b = energy_burst(fns["g1_ours"], 0.5, trace) if ENERGY and nvml() else None   # ~600 calls, ~1 s
    if trace:
        t0, e0 = trace[0]
        steps = [(round(t - t0, 4), e - e0) for (t, e), (_, ep) in zip(trace, [(None, None)] + trace[:-1]) if e != ep]
        r["energy_counter_probe"] = {"burst": b, "samples": len(trace), "changes": steps[:400]}
        print("energy counter probe:", len(trace), "samples,", len(steps), "changes; first", steps[:6], flush=True)
    diag_rounds(name, fns, r, T)
    del graphs, fns
    torch.cuda.empty_cache()


def gap_case(T, skew, w1, w3, w2, wr, dev):
    """MOE_DIAG_SET=gap: with the padding taken away (aligned offsets), what still separates the
    grouped GEMMs from dense cuBLAS on the same tile grid? Each GEMM at aligned offsets with
    (a) its own weights per expert, (b) every expert reading expert 0's weights shifted by 8 rows
    (b_group_stride 8 K: 16-byte aligned rows, ~1/8 of the weight bytes from HBM, the group
    switches kept), (c) one group holding every row (expert 0: a dense GEMM through the grouped
    kernel, no group switches), for the default cluster 1x2 and for 2x1 (weights multicast), and
    GEMM1 also with the plain TMA-store epilogue (no SwiGLU; output 2F wide) -- vs cuBLAS and vs
    our TP kernel (runtime.gemm; needs its library, .cache/cuda) on the same dense shapes."""
    name, r, x, bias, lg, perm, offsets = routed_case(T, skew, wr, dev)
    m, w13t, w2t, xs, rows, aligned = grouped_setup(x, perm, offsets, w1, w3, w2, dev)
    r["aligned_rows_per_expert"] = rows // E
    single = torch.full((E + 1,), rows, device=dev, dtype=offsets.dtype)
    single[0] = 0
    v1, v2 = m._variants()
    handles = {"c12": m._gemm_v(v1, 2 * FF, H, dev), "c21": m._gemm_v("swiglu_pair_c21", 2 * FF, H, dev),
               "plain": m._gemm_v("coop_128x256_c12", 2 * FF, H, dev),
               "g2c12": m._gemm_v(v2.replace("_sk2", ""), H, FF, dev), "g2c21": m._gemm_v("coop_128x256", H, FF, dev)}
    h = torch.randn(rows, FF, device=dev).bfloat16()
    g = torch.empty(rows, 2 * FF, dtype=xs.dtype, device=dev)
    y = torch.empty(2 * rows, H, dtype=xs.dtype, device=dev)

    def cs():
        return torch.cuda.current_stream(dev).cuda_stream

    def g1(offs, hd, bs=0):
        out = g if hd.variant.startswith("coop") else h
        return lambda: hd.run(offs.data_ptr(), xs.data_ptr(), w13t.data_ptr(), out.data_ptr(), cs(), bs)

    def g2(offs, hd, bs=0):
        return lambda: hd.run(offs.data_ptr(), h.data_ptr(), w2t.data_ptr(), y.data_ptr(), cs(), bs)
    offs = offsets.contiguous()
    calls = {"g1_ours": g1(offs, handles["c12"]), "g1_ours_dup": g1(offs, handles["c12"]),
             "g2_ours_nosplit": g2(offs, handles["g2c12"])}
    for c in ("c12", "c21", "plain"):
        calls[f"g1_{c}_aligned"] = g1(aligned, handles[c])
        calls[f"g1_{c}_aligned_sh8"] = g1(aligned, handles[c], 8 * H)
        calls[f"g1_{c}_single"] = g1(single, handles[c])
    for c in ("c12", "c21"):
        hd = handles["g2" + c]
        calls[f"g2_{c}_aligned"] = g2(aligned, hd)
        calls[f"g2_{c}_aligned_sh8"] = g2(aligned, hd, 8 * FF)
        calls[f"g2_{c}_single"] = g2(single, hd)
    try:   # one group = a dense GEMM on expert 0's weights: check it against torch
        calls["g1_c12_single"]()
        w13 = torch.stack([w1[0], w3[0]], 1).reshape(H, 2, FF // 8, 8).transpose(1, 2).reshape(H, 2 * FF)
        ref = (xs[:256].float() @ w13.float())
        gate, up = ref.view(256, FF // 8, 2, 8).unbind(2)
        r["g1_single_relerr"] = rel(h[:256].float(), (F.silu(gate) * up).reshape(256, FF))
        print("g1 single relerr", r["g1_single_relerr"], flush=True)
    except Exception as e:
        RES["errors"].append(f"{name} single check: {e!r}")
    fns, graphs = graph_each(name, calls)
    add_dense_gemms(fns, graphs, rows, h, dev)
    keep = []
    try:   # our TP kernel (within 1 % of cuBLAS at 8192x7168x4096) on the same dense shapes
        from comet_ir.backends.cuda import runtime as tp
        for k, (n, kk, a) in (("g1_tpkernel_dense", (2 * FF, H, xs)), ("g2_tpkernel_dense", (H, FF, h))):
            w = torch.randn(n, kk, device=dev).bfloat16().t()      # [K, N] over [N, K] storage: no copy
            out = torch.empty(rows, n, dtype=torch.bfloat16, device=dev)
            keep += [w, out]
            fn = (lambda a=a, w=w, out=out: tp.gemm(a, w, out=out, check=False))
            fn()
            torch.cuda.synchronize()
            gr, _ = graphed(fn)
            graphs[k], fns[k] = gr, gr.replay
    except Exception as e:
        RES["errors"].append(f"{name} TP kernel: {e!r}")
    diag_rounds(name, fns, r, T)
    del graphs, fns, keep
    torch.cuda.empty_cache()


def dyn_case(T, skew, w1, w3, w2, wr, dev):
    """MOE_DIAG_SET=dyn: the dynamic tile schedule (variants *_dyn: a cluster takes the next item
    when it can start it) vs the default static round robin, each GEMM alone and the experts,
    default twice (noise floor), timed as in diag; outputs checked bit-identical first."""
    from comet_ir.backends.cuda.moe import kernels
    name, r, x, bias, lg, perm, offsets = routed_case(T, skew, wr, dev)
    m, w13t, w2t, xs, rows, aligned = grouped_setup(x, perm, offsets, w1, w3, w2, dev)
    v1, v2 = m._variants()
    md = CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0,
                  gemm_variant=(kernels.dynamic_variant(v1), kernels.dynamic_variant(v2)))
    md.w1, md.w3, md.w2, md._packed = m.w1, m.w3, m.w2, m._packed
    offs = offsets.contiguous()
    h = torch.empty(rows, FF, dtype=xs.dtype, device=dev)
    hr = torch.randn(rows, FF, device=dev).bfloat16()
    calls = {}
    for tag, mm in (("ours", m), ("ours_dup", m), ("dyn", md)):
        calls[f"g1_{tag}"] = (lambda mm=mm: mm._gemm1_cutlass(xs, offs, rows, h))
        calls[f"g2_{tag}"] = (lambda mm=mm: mm._gemm2_cutlass(hr, offs, rows))
        calls[f"experts_{tag}"] = (lambda mm=mm: mm.experts_forward(xs, offs, "cutlass"))
    try:
        a, b = calls["experts_ours"](), calls["experts_dyn"]()
        r["dyn_equal"] = bool(torch.equal(a, b))
        print("dynamic schedule bit-identical:", r["dyn_equal"], flush=True)
    except Exception as e:
        RES["errors"].append(f"{name} dyn check: {e!r}")
    fns, graphs = graph_each(name, calls)
    gd, graphs["dense_operands"] = dense_equal_flops(T, dev)
    graphs["dense"], fns["experts_dense_cublas_equal_flops"] = gd, gd.replay
    diag_rounds(name, fns, r, T)
    del graphs, fns
    torch.cuda.empty_cache()


def cluster_case(T, skew, w1, w3, w2, wr, dev):
    """MOE_DIAG_SET=clusters: GEMM1 / GEMM2 alone under each cluster shape (and GEMM2 with / without
    split-K), default twice (noise floor), timed as in diag. Do clusters that multicast the weight
    tile over row tiles (2x1, 2x2) cut the DRAM re-reads (tools/moe_ncu_dram.py) and the time?"""
    name, r, x, bias, lg, perm, offsets = routed_case(T, skew, wr, dev)
    base, _, _, xs, rows, _ = grouped_setup(x, perm, offsets, w1, w3, w2, dev)
    h = torch.randn(rows, FF, device=dev).bfloat16()

    def mk(v1, v2):
        mm = CometMoE(H, FF, E, K, backend="cutlass", device=dev, comm_blocks=0, gemm_variant=(v1, v2))
        mm.w1, mm.w3, mm.w2, mm._packed = base.w1, base.w3, base.w2, base._packed
        return mm
    calls = {}
    for key, v in (("g1_c12", "swiglu_pair_c12"), ("g1_c12_dup", "swiglu_pair_c12"), ("g1_c21", "swiglu_pair_c21"),
                   ("g1_c22", "swiglu_pair_c22")):
        mm = mk(v, "coop_128x256")
        calls[key] = lambda mm=mm: mm._gemm1_cutlass(xs, offsets, rows, h)
    for key, v in (("g2_c12_sk2", "coop_128x256_c12_sk2"), ("g2_c12_sk2_dup", "coop_128x256_c12_sk2"),
                   ("g2_c12", "coop_128x256_c12"), ("g2_c21_sk2", "coop_128x256_sk2"), ("g2_c21", "coop_128x256"),
                   ("g2_c22_sk2", "coop_128x256_c22_sk2"), ("g2_c22", "coop_128x256_c22"),
                   ("g2_c11_sk2", "coop_128x256_c11_sk2")):
        mm = mk("swiglu_pair_c12", v)
        calls[key] = lambda mm=mm: mm._gemm2_cutlass(h, offsets, rows)
    fns, graphs = graph_each(name, calls)
    diag_rounds(name, fns, r, T)
    del graphs, fns
    torch.cuda.empty_cache()


def main():
    dev = torch.device("cuda")
    w1, w3, w2, wr = mixtral_weights(dev)
    fn = {"tune": tune_case, "diag": diag_case}.get(MODE, case)
    if MODE == "diag":   # sets with their own case; the others (gang, unset) are diag_case's
        fn = {"clusters": cluster_case, "gap": gap_case, "dyn": dyn_case}.get(os.environ.get("MOE_DIAG_SET"), fn)
    cases = [(2048, False), (2048, True), (8192, False), (8192, True)]
    if MODE == "diag":
        # "8192s": skewed routing
        cases = [(int(t.rstrip("s")), t.endswith("s")) for t in os.environ.get("MOE_DIAG_T", "2048").split(",")]
    for T, skew in cases:
        try:
            fn(T, skew, w1, w3, w2, wr, dev)
        except Exception:
            RES["errors"].append(traceback.format_exc())
            traceback.print_exc()


if __name__ == "__main__":
    try:
        main()
    except Exception:
        RES["errors"].append(traceback.format_exc())
        traceback.print_exc()
    save()
    print("\n== summary (ms, median over rounds)")
    if MODE == "diag":
        for n, c in RES["cases"].items():
            print(n, "counts", c.get("counts"))
            for k, v in c.items():
                if isinstance(v, dict) and "ms" in v:
                    print(f"  {k:34s} {v['ms']:7.3f} ms ({v.get('tflops', 0):4.0f} TF/s) b2b {v.get('b2b_ms', 0):7.3f} ms "
                          f"({v.get('tflops_b2b', 0):4.0f}) {v.get('mj_per_call', 0):7.1f} mJ/call "
                          f"{v.get('gflop_per_j', 0):6.0f} GFLOP/J SM {v.get('sm_mhz', 0):5.0f} MHz {v.get('power_w', 0):4.0f} W")
        print("errors:", RES["errors"])
        sys.exit(0)
    if MODE == "tune":
        for n, c in RES["cases"].items():
            print(n, "counts", c.get("counts"), "split_taken", c.get("split_taken"))
            print("  ", {k: (round(v["ms"], 3), round(v["tflops"])) if "tflops" in v else round(v["ms"], 3)
                         for k, v in c.items() if isinstance(v, dict) and "ms" in v})
            print("   speedups", {k: round(v, 3) for k, v in c.items() if k.startswith("speedup")},
                  "relerr", {k: round(v, 5) for k, v in c.items() if k.startswith("relerr")})
        print("errors:", RES["errors"])
        sys.exit(0)
    for n, c in RES["cases"].items():
        keys = ["torch_loop", "ours_graph", "ours_eager", "prev_graph", "grouped_mm", "gemm1_pair",
                "gemm2", "route_dispatch"]
        print(n, c.get("counts"), {k: round(c[k]["ms"], 3) for k in keys if k in c},
              "speedup graph/eager", round(c.get("speedup_graph", 0), 3), round(c.get("speedup_eager", 0), 3),
              "prev", round(c.get("speedup_prev_graph", 0), 3))
        ex = {k: (round(v["ms"], 3), round(v["tflops"])) for k, v in c.items() if k.startswith("experts_") and isinstance(v, dict)}
        print("  experts", ex)
        print("  comm sweep", {k: round(v, 3) for k, v in c.get("comm_sweep_ms", {}).items()},
              "chosen", c.get("chosen_comm_blocks"), "best", c.get("measured_best_comm_blocks"),
              "model err %", {k: round(v, 1) for k, v in c.get("model_err_pct", {}).items()})
        print("  relerr", {k: round(v, 5) for k, v in c.items() if k.startswith("relerr") or k.endswith("relerr_vs_ours")})
        for key in ("ours", "prev"):
            for v, pr in c.get(f"profile_{key}", {}).items():
                print(f"  profile {key} {v}: makespan {pr['makespan_us']:.0f} us, busy {pr['busy_frac']:.3f}, "
                      f"end spread {pr['end_spread_us']:.0f} us (p10 end {pr['end_p10_us']:.0f}), "
                      f"tiles {pr['tiles_min']}..{pr['tiles_max']}, ctas {pr['ctas']}")
    print("errors:", RES["errors"])
    sys.exit(0)
