"""Fit the MoE cost model's constants to a benchmark JSON (benchmarks/moe_bench.py output) and
print predicted vs measured for every configuration.

    python tools/moe_fit_cost.py moe_bench.json [--write]

Fitted: gemm_eff and weight_exposed (from the SM-sweep GEMM times and the expert times),
loop_eff and loop_fixed_us (plain torch layer). Grid search, least max relative error.
"""
from __future__ import annotations

import itertools
import json
import sys
from dataclasses import replace

import numpy as np

from comet_ir.backends.cost import moe_model as M

H, FF, E, K = 4096, 14336, 8, 2


def rows(res, tag=""):
    out = []
    for name, c in res["cases"].items():
        T = int(name.split("_")[0][1:])
        cfg = M.MoEConfig(T, H, FF, E, K, counts=tuple(c["counts"]))
        out.append((tag + name, cfg, c, True))
    for name, c in res.get("extra", {}).items():
        t, h, f, e, k = (int(p[1:]) if p[0] in "THFE" else int(p[1:]) for p in name.split("_"))
        cfg = M.MoEConfig(t, h, f, e, k, counts=tuple(c["counts"]))
        out.append((tag + name, cfg, c, False))   # extras: no router GEMM in the timed region
    return out


def predictions(cfg, cal, router=True):
    g = M.predict(cfg, "h100", "grouped", calib=cal, include_router=router)
    l = M.predict(cfg, "h100", "loop", calib=cal, include_router=router)
    return g, l


# measured keys of benchmarks/moe_bench.py (layer mode, tune mode, and the 2026-11-23 runs) that
# are our default layer / expert GEMMs
LAYER_KEYS = ("ours_graph", "c12sk_graph", "cutlass_graph")
EXPERT_KEYS = ("experts_ours", "experts_c12sk", "experts_cutlass_coop")


def table(data, cal):
    errs = []
    lines = [f"{'case':16s} {'what':22s} {'measured':>9s} {'model':>9s} {'err':>7s}"]
    for name, cfg, c, router in data:
        g, l = predictions(cfg, cal, router)
        pairs = []
        gem = g["gemm1_ms"] + g["gemm2_ms"]
        for key in EXPERT_KEYS:
            if key in c:
                pairs.append(("experts (GEMMs+SwiGLU)", c[key]["ms"], gem + g["swiglu_ms"]))
                break
        for key in LAYER_KEYS:
            if key in c:
                pairs.append(("layer ours (graph)", c[key]["ms"], g["total_ms"]))
                break
        if "torch_loop" in c:
            pairs.append(("layer plain torch", c["torch_loop"]["ms"], l["total_ms"]))
        base = g["total_ms"] - M.predict_layer0(cfg, "h100", 0, calib=cal)["total_ms"]
        for cb, t in (c.get("comm_sweep_ms") or {}).items():
            pairs.append((f"layer, {cb} comm CTAs", t, base + M.predict_layer0(cfg, "h100", int(cb), calib=cal)["total_ms"]))
        for sms, t in (c.get("sm_sweep_gemms_ms") or {}).items():
            r = 1 - int(sms) / 132
            gs = M.predict(cfg, "h100", "fused", r, calib=cal) if r > 0 else g
            pairs.append((f"GEMMs on {sms} SMs", t, gs["gemm1_ms"] + gs["gemm2_ms"]))
        for what, meas, pred in pairs:
            e = (pred - meas) / meas
            errs.append(abs(e))
            lines.append(f"{name:16s} {what:22s} {meas:9.3f} {pred:9.3f} {e * 100:6.1f}%")
    return "\n".join(lines), (max(errs) if errs else 0.0), (float(np.mean(errs)) if errs else 0.0)


def fit(data):
    best = None
    for ge, we, le, lf, lx in itertools.product(np.arange(0.60, 0.86, 0.02), np.arange(0.0, 1.01, 0.1),
                                                np.arange(0.60, 0.86, 0.02), (50, 150, 300), (60, 90, 120, 150)):
        cal = replace(M.DEFAULT_CALIB, gemm_eff=round(float(ge), 3), weight_exposed=round(float(we), 3),
                      loop_eff=round(float(le), 3), loop_fixed_us=float(lf), loop_expert_us=float(lx))
        _, mx, mean = table(data, cal)
        if best is None or (mx, mean) < best[0]:
            best = ((mx, mean), cal)
    return best[1]


if __name__ == "__main__":
    # usage: moe_fit_cost.py run1.json [run2.json ...]: fit on all; with --check, only print the
    # current constants' errors (out-of-sample check)
    files = [a for a in sys.argv[1:] if not a.startswith("--")]
    data = [row for i, f in enumerate(files) for row in rows(json.load(open(f)), f"r{i + 1}:")]
    t0, mx0, mean0 = table(data, M.DEFAULT_CALIB)
    print("current constants:", M.DEFAULT_CALIB)
    if "--check" in sys.argv:
        print(t0)
        print(f"max |err| {mx0 * 100:.1f}%  mean {mean0 * 100:.1f}%")
        sys.exit(0)
    cal = fit(data)
    t1, mx1, mean1 = table(data, cal)
    print("fitted:", cal)
    print(t1)
    print(f"max |err| {mx1 * 100:.1f}%  mean {mean1 * 100:.1f}%")
