#!/usr/bin/env python3
"""Reproduce the COMET paper's fusion study (arXiv 2509.00599, GEMM-Softmax, GEMM-LayerNorm,
self-attention on the `edge` and `cloud` accelerators) with comet_ir's passes and cost model.

For every (workload, arch, shape) the tool runs each strategy — a named pipeline of
`comet_ir.registry.PIPELINES` — on the builder's workload-form IR, prices the mapped program with
`comet_ir.estimate(module, arch)` and writes, under `--out` (default `docs/repro/`):

    results.csv     one row per (workload, arch, shape, strategy): status, cycles, energy,
                    latency and energy normalised to the unfused strategy of the same shape
    results.md      per-shape tables, per-strategy and best-fused geomean speedups
    <workload>.png  normalised latency and energy per shape (matplotlib; `pip install .[plots]`)

A strategy that does not map (a CometError from a pass, e.g. comet-verify-capacity) is a row
with status `no-fit` and the error message: never dropped. Normalised values exist only where
both the strategy and the unfused baseline of that shape priced.

    python tools/repro_paper.py                    # full sweep, < 2 min on 2 cores
    python tools/repro_paper.py --quick --no-plots   # one tiny shape per workload (to a temp dir)
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

ARCHS = ("edge", "cloud")

# workload -> (baseline strategy, fused strategies in the paper's order, shape fields)
STRATEGIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "gemm_softmax": ("unfused", ("fused-distsm", "fused-gemm-distsm", "fused-sm", "fused-sm-rows"),
                     ("M", "N", "K")),
    "gemm_layernorm": ("unfused", ("fused-gemm-distln", "fused-ln", "fused-ln-rows"), ("M", "N", "K")),
    "attention": ("unfused-attention", ("partially-fused-attention", "flash-attention"),
                  ("B", "H", "S", "D")),
}

# The sweep: small and large GEMMs (M, N, K); self-attention over sequence lengths (B, H, S, D)
# with 8 heads of 64 (BERT-/GPT-2-like head size). The same shapes on both archs.
# (small K = 32/64 is the attention-score shape Q K^T with a head dim of 32/64; 256x1024x4096 is
# the reference example_run's GEMM)
GEMM_SHAPES = [(512, 512, 32), (256, 1024, 64), (1024, 1024, 64), (128, 128, 128),
               (256, 256, 256), (512, 512, 512), (256, 1024, 512), (1024, 1024, 1024),
               (256, 1024, 4096), (2048, 2048, 1024)]
SWEEP: dict[str, list[tuple[int, ...]]] = {
    "gemm_softmax": GEMM_SHAPES,
    "gemm_layernorm": GEMM_SHAPES,
    # 8 heads of 64 over several sequence lengths; then two families that the passes can
    # spread over cloud's 16 clusters / edge's 4 (B*H = 32 or 16 with narrower heads)
    "attention": [(1, 8, s, 64) for s in (64, 128, 256, 512, 1024)]
                 + [(4, 8, s, 64) for s in (64, 128)] + [(1, 16, s, 32) for s in (128, 256)],
}
QUICK: dict[str, list[tuple[int, ...]]] = {
    "gemm_softmax": [(256, 256, 128)],
    "gemm_layernorm": [(256, 256, 128)],
    "attention": [(1, 4, 64, 64)],
}

COLUMNS = ["workload", "arch", "shape", "strategy", "baseline", "status", "latency_cycles",
           "energy_pj", "norm_latency", "norm_energy", "speedup", "root_latency_cycles",
           "compute_cycles", "stall_cycles", "dram_energy_pj", "seconds", "reason"]

# The mapper's pick beside the hand strategies: `comet-map` on the workload form (it searches the
# strategies x DRAM row tilings with the cost model), a small wall-clock budget per case.
SEARCHED = "searched"
MAP_BUDGET_S = 6
# The unfused baseline with its best DRAM row tiling (comet-tile{level=DRAM factors=M<f>} over
# the divisors f of the rows, the default tiling included): how much of a fused speedup is the
# default tiling of the baseline rather than fusion.
TUNED = "unfused-tuned"

# The paper's headline fused-vs-unfused speedups (abstract: "up to").
PAPER = {"gemm_softmax": 1.42, "gemm_layernorm": 3.46, "attention": 1.82}


def shape_str(shape: tuple[int, ...], names: tuple[str, ...]) -> str:
    return " ".join(f"{n}={v}" for n, v in zip(names, shape))


def build(workload: str, shape: tuple[int, ...], arch: str):
    from comet_ir.spec import workloads as w

    return getattr(w, workload)(*shape, arch=arch)


def estimate(module, arch: str):
    """comet_ir.estimate when the lead has exported it, else the cost-targets function."""
    try:
        from comet_ir import estimate as est  # type: ignore[attr-defined]
    except ImportError:
        from comet_ir.backends.cost_targets import estimate as est
    return est(module, arch)


def run_case(case: tuple[str, str, tuple[int, ...], str]) -> dict:
    """Map and price one (workload, arch, shape, strategy). Never raises."""
    from comet_ir.api import run_pipeline
    from comet_ir.errors import CometError
    from comet_ir.registry import PIPELINES

    workload, arch, shape, strategy = case[:4]
    budget = case[4] if len(case) > 4 else MAP_BUDGET_S
    row = {"workload": workload, "arch": arch,
           "shape": shape_str(shape, STRATEGIES[workload][2]), "strategy": strategy,
           "baseline": STRATEGIES[workload][0], "status": "", "latency_cycles": "",
           "energy_pj": "", "norm_latency": "", "norm_energy": "", "speedup": "", "reason": "",
           "root_latency_cycles": "", "compute_cycles": "", "stall_cycles": "",
           "dram_energy_pj": ""}
    t0 = time.perf_counter()
    try:
        if strategy == SEARCHED:
            import contextlib
            import io

            log = io.StringIO()
            with contextlib.redirect_stderr(log):
                mapped = run_pipeline(build(workload, shape, arch),
                                      f"comet-map{{budget={budget} seed=0}}")
            row["reason"] = _one_line("comet-map picked: " + _map_pick(log.getvalue()))
        elif strategy == TUNED:
            mapped, pick = _best_row_tiling(workload, shape, arch)
            row["reason"] = f"best DRAM row tiling: {pick}"
        else:
            mapped = run_pipeline(build(workload, shape, arch), PIPELINES[strategy])
    except CometError as e:
        # capacity overflow / indivisible spatial split = the strategy does not fit this shape;
        # anything else (an IR verifier complaint) is a pass defect, reported as `error`
        msg = e.message
        status = "no-fit" if msg.startswith(("comet-verify-capacity", "comet-distribute",
                                             "comet-tile: no tiling fits",
                                             "comet-online-softmax: no chunking",
                                             "comet-map: no candidate")) else "error"
        row.update(status=status, reason=_one_line(e.located() if e.where else msg))
    except Exception as e:  # a pass bug: report it, do not hide the shape
        row.update(status="error", reason=_one_line(f"{type(e).__name__}: {e}"))
    else:
        try:
            rep = estimate(mapped, arch)
            row.update(status="ok", latency_cycles=float(rep.latency_cycles),
                       energy_pj=float(rep.energy_pj))
            # breakdown (optional fields of the CostReport): what fusion can and cannot save
            for col, get in (("root_latency_cycles", lambda: rep.root_latency_cycles),
                             ("compute_cycles", lambda: sum(rep.ideal_compute_cycles.values())),
                             ("stall_cycles", lambda: sum(rep.stalls.values())),
                             ("dram_energy_pj", lambda: rep.energy_by_level.get("DRAM", 0.0))):
                try:
                    row[col] = float(get())
                except Exception:
                    pass
        except CometError as e:
            row.update(status="cost-error", reason=_one_line(e.located() if e.where else e.message))
        except Exception as e:
            row.update(status="cost-error", reason=_one_line(f"{type(e).__name__}: {e}"))
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _best_row_tiling(workload: str, shape, arch: str):
    """(module, label) of the baseline pipeline priced under every DRAM factor of the rows M."""
    import re

    from comet_ir.api import run_pipeline
    from comet_ir.errors import CometError
    from comet_ir.registry import PIPELINES

    base = PIPELINES[STRATEGIES[workload][0]]
    tile = re.search(r"comet-tile(\{[^}]*\})?", base)
    opts = (tile.group(1) or "{}")[1:-1]
    rows = dict(zip(STRATEGIES[workload][2], shape)).get("M") or dict(
        zip(STRATEGIES[workload][2], shape))["S"]
    best, err = None, None
    for f in [None] + [d for d in range(2, min(rows, 64) + 1) if rows % d == 0]:
        spec = base if f is None else base.replace(
            tile.group(0), "comet-tile{" + " ".join(x for x in (opts, f"level=DRAM factors=M{f}") if x) + "}", 1)
        try:
            m = run_pipeline(build(workload, shape, arch), spec)
            lat = estimate(m, arch).latency_cycles
        except CometError as e:
            err = err or e
            continue
        if best is None or lat < best[0]:
            best = (lat, m, "default" if f is None else f"M{f}")
    if best is None:
        raise err
    return best[1], best[2]


def _map_pick(log: str) -> str:
    """The best candidate's label from comet-map's report ("best latency N (label)")."""
    import re

    m = re.search(r"best \w+ [\d,.]+ \((.*)\)", log)
    return m.group(1) if m else (log.strip().splitlines() or ["?"])[0]


def _one_line(s: str, limit: int = 240) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def cases(sweep: dict, archs, workloads, map_budget: int = 0) -> list[tuple]:
    out = []
    for wl in workloads:
        base, fused, _ = STRATEGIES[wl]
        for arch in archs:
            for shape in sweep[wl]:
                for s in (base, *fused):
                    out.append((wl, arch, tuple(shape), s))
                out.append((wl, arch, tuple(shape), TUNED))
                if map_budget > 0:
                    out.append((wl, arch, tuple(shape), SEARCHED, map_budget))
    return out


def normalise(rows: list[dict]) -> None:
    """Fill norm_latency / norm_energy / speedup from the unfused row of the same shape."""
    base = {(r["workload"], r["arch"], r["shape"]): r for r in rows if r["strategy"] == r["baseline"]}
    for r in rows:
        b = base.get((r["workload"], r["arch"], r["shape"]))
        if r["status"] != "ok":
            continue
        if b is None or b["status"] != "ok":
            r["reason"] = "; ".join(x for x in (r["reason"], "baseline (unfused) did not price: "
                                                 "no normalised values") if x)
            continue
        r["norm_latency"] = r["latency_cycles"] / b["latency_cycles"]
        r["norm_energy"] = r["energy_pj"] / b["energy_pj"]
        r["speedup"] = b["latency_cycles"] / r["latency_cycles"]


def geomean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


@dataclass
class Summary:
    """Geomean speedups over the shapes where the baseline and the strategy both priced."""

    per_strategy: dict = field(default_factory=dict)   # (wl, arch, strategy) -> (geomean, n, total)
    best: dict = field(default_factory=dict)           # (wl, arch|"all") -> (geomean, max, n, total)
    energy_best: dict = field(default_factory=dict)    # (wl, arch|"all") -> geomean energy ratio


def summarise(rows: list[dict]) -> Summary:
    s = Summary()
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["workload"], r["arch"], r["strategy"]), []).append(r)
    for (wl, arch, st), rs in groups.items():
        sp = [r["speedup"] for r in rs if r["speedup"] != ""]
        s.per_strategy[(wl, arch, st)] = (geomean(sp), len(sp), len(rs))
    for wl, (base, fused, _) in STRATEGIES.items():
        for arch in (*ARCHS, "all"):
            shapes: dict = {}
            for r in rows:
                if r["workload"] == wl and (arch == "all" or r["arch"] == arch) \
                        and r["strategy"] in fused:
                    shapes.setdefault((r["arch"], r["shape"]), []).append(r)
            if not shapes:
                continue
            best, energy = [], []
            for rs in shapes.values():
                ok = [r for r in rs if r["speedup"] != ""]
                if ok:
                    b = max(ok, key=lambda r: r["speedup"])
                    best.append(b["speedup"])
                    energy.append(b["norm_energy"])
            s.best[(wl, arch)] = (geomean(best), max(best) if best else None, len(best), len(shapes))
            s.energy_best[(wl, arch)] = geomean(energy)
    return s


def vs_tuned(rows: list[dict]) -> dict:
    """(wl, arch) -> geomeans of default/tuned unfused, tuned/best hand fused, tuned/searched
    latency, and the number of shapes (where the tuned baseline priced)."""
    out = {}
    for wl, (base, fused, _) in STRATEGIES.items():
        for arch in ARCHS:
            rs = [r for r in rows if r["workload"] == wl and r["arch"] == arch]
            a, b, c = [], [], []
            for t in (r for r in rs if r["strategy"] == TUNED and r["status"] == "ok"):
                same = [r for r in rs if r["shape"] == t["shape"] and r["status"] == "ok"]
                tl = t["latency_cycles"]
                d = next((r for r in same if r["strategy"] == base), None)
                if d:
                    a.append(d["latency_cycles"] / tl)
                hand = [r["latency_cycles"] for r in same if r["strategy"] in fused]
                if hand:
                    b.append(tl / min(hand))
                srch = next((r for r in same if r["strategy"] == SEARCHED), None)
                if srch:
                    c.append(tl / srch["latency_cycles"])
            if a:
                out[(wl, arch)] = (geomean(a), geomean(b), geomean(c), len(a))
    return out


def _f(x, fmt="{:.2f}", unit="") -> str:
    return "—" if x in ("", None) else fmt.format(x) + unit


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=COLUMNS)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})


def write_markdown(rows: list[dict], s: Summary, path: str, elapsed: float) -> None:
    L = ["# Paper reproduction: fused vs unfused (generated by `tools/repro_paper.py`)", "",
         "Speedup = unfused latency / strategy latency (> 1 is faster); energy = strategy / "
         "unfused. `no-fit` = the pipeline rejected the shape (reason in `results.csv`); "
         "`—` = not priced. Geomeans are over the shapes where both the unfused baseline and "
         "the strategy priced.", "",
         f"Run time: {elapsed:.1f} s.", "", "## Best fused strategy vs unfused (geomean over shapes)", "",
         "| workload | arch | geomean speedup | max speedup | geomean energy ratio | shapes priced | paper (up to) |",
         "|---|---|---|---|---|---|---|"]
    for (wl, arch), (g, mx, n, tot) in s.best.items():
        L.append(f"| {wl} | {arch} | {_f(g, unit='×')} | {_f(mx, unit='×')} | {_f(s.energy_best[(wl, arch)])} | "
                 f"{n}/{tot} | {PAPER[wl]:.2f}× |")
    L += ["", "## Against the tuned baseline (unfused with its best DRAM row tiling)", "",
          "| workload | arch | tuned unfused vs default unfused | best hand fused vs tuned unfused "
          "| searched vs tuned unfused | shapes |", "|---|---|---|---|---|---|"]
    for (wl, arch), vals in vs_tuned(rows).items():
        L.append(f"| {wl} | {arch} | " + " | ".join(_f(v, unit="×") for v in vals[:3]) +
                 f" | {vals[3]} |")
    L += ["", "## Where the time goes (descriptive)", "",
          "`latency_cycles` is the reference's *total cycles* (all stall rows + compute of every "
          "op, no overlap). Fusion saves stalls (intermediates no longer fill from / drain to "
          "DRAM) and can change the vector ops' spatial spread; it adds collectives.", "",
          "| workload | arch | unfused stalls / latency | unfused latency / ideal compute | "
          "best fused latency / ideal compute | best fused DRAM energy / unfused |",
          "|---|---|---|---|---|---|"]
    for wl, (base, fused, _) in STRATEGIES.items():
        for arch in ARCHS:
            bs = [r for r in rows if r["workload"] == wl and r["arch"] == arch
                  and r["strategy"] == base and r["status"] == "ok" and r["stall_cycles"] != ""]
            share = geomean([r["stall_cycles"] / r["latency_cycles"] for r in bs])
            ub = geomean([r["latency_cycles"] / r["compute_cycles"] for r in bs if r["compute_cycles"]])
            fb, dram = [], []
            for b in bs:
                fs = [r for r in rows if r["workload"] == wl and r["arch"] == arch
                      and r["shape"] == b["shape"] and r["strategy"] in fused and r["speedup"] != ""]
                if not fs:
                    continue
                f = max(fs, key=lambda r: r["speedup"])
                if f["compute_cycles"]:
                    fb.append(f["latency_cycles"] / f["compute_cycles"])
                if f["dram_energy_pj"] and b["dram_energy_pj"]:
                    dram.append(f["dram_energy_pj"] / b["dram_energy_pj"])
            L.append(f"| {wl} | {arch} | {_f(share)} | {_f(ub)} | {_f(geomean(fb))} | "
                     f"{_f(geomean(dram))} |")
    L += ["", "## Per strategy (geomean speedup vs unfused)", "",
          "| workload | arch | strategy | geomean speedup | shapes priced |", "|---|---|---|---|---|"]
    for (wl, arch, st), (g, n, tot) in s.per_strategy.items():
        L.append(f"| {wl} | {arch} | {st} | {_f(g, unit='×')} | {n}/{tot} |")
    for wl, (base, fused, _) in STRATEGIES.items():
        for arch in ARCHS:
            rs = [r for r in rows if r["workload"] == wl and r["arch"] == arch]
            if not rs:
                continue
            shapes = list(dict.fromkeys(r["shape"] for r in rs))
            strats = (base, *fused, TUNED) + ((SEARCHED,) if any(r["strategy"] == SEARCHED for r in rs) else ())
            L += ["", f"## {wl} on {arch}", "",
                  "| shape | " + " | ".join(f"{st} speedup / energy" for st in strats) + " |",
                  "|---" * (len(strats) + 1) + "|"]
            for sh in shapes:
                cells = []
                for st in strats:
                    r = next((r for r in rs if r["shape"] == sh and r["strategy"] == st), None)
                    if r is None:
                        cells.append("—")
                    elif r["status"] != "ok":
                        cells.append(r["status"])
                    elif r["speedup"] == "":
                        cells.append(f"{r['latency_cycles']:.3g} cyc (no baseline)")
                    else:
                        cells.append(f"{r['speedup']:.2f}× / {r['norm_energy']:.2f}")
                L.append(f"| {sh} | " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def write_plots(rows: list[dict], out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for wl, (base, fused, _) in STRATEGIES.items():
        if not any(r["workload"] == wl for r in rows):
            continue
        strats = (base, *fused) + ((SEARCHED,) if any(r["workload"] == wl and r["strategy"] == SEARCHED
                                                       for r in rows) else ())
        fig, axes = plt.subplots(2, 2, figsize=(13, 7), squeeze=False)
        for j, arch in enumerate(ARCHS):
            rs = [r for r in rows if r["workload"] == wl and r["arch"] == arch]
            shapes = list(dict.fromkeys(r["shape"] for r in rs))
            for i, (key, label) in enumerate((("norm_latency", "latency / unfused"),
                                              ("norm_energy", "energy / unfused"))):
                ax = axes[i][j]
                width = 0.8 / len(strats)
                for k, st in enumerate(strats):
                    xs, ys, miss = [], [], []
                    for x, sh in enumerate(shapes):
                        r = next((r for r in rs if r["shape"] == sh and r["strategy"] == st), None)
                        pos = x - 0.4 + width * (k + 0.5)
                        if r is not None and r[key] != "":
                            xs.append(pos)
                            ys.append(r[key])
                        else:
                            miss.append(pos)
                    ax.bar(xs, ys, width, label=st)
                    for p in miss:
                        ax.text(p, 0.02, "n/f", rotation=90, ha="center", va="bottom", fontsize=7,
                                transform=ax.get_xaxis_transform())
                ax.axhline(1.0, color="k", lw=0.6)
                ax.set_xticks(range(len(shapes)))
                ax.set_xticklabels([s.replace(" ", "\n") for s in shapes], fontsize=6)
                ax.set_ylabel(label)
                ax.set_title(f"{wl} on {arch}", fontsize=9)
                if i == 0 and j == 0:
                    ax.legend(fontsize=7)
        fig.suptitle(f"{wl}: normalised to {base} (n/f = does not fit / not priced)", fontsize=10)
        fig.tight_layout()
        p = os.path.join(out, f"{wl}.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None,
                    help="output folder (default docs/repro; with --quick a temp folder, so the "
                         "committed full results are not overwritten)")
    ap.add_argument("--quick", action="store_true", help="one tiny shape per workload")
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--workloads", default=",".join(STRATEGIES))
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--map-budget", type=int, default=MAP_BUDGET_S,
                    help="seconds of comet-map search per shape for the 'searched' column "
                         "(0: no search)")
    a = ap.parse_args(argv)
    archs = [x for x in a.archs.split(",") if x]
    wls = [x for x in a.workloads.split(",") if x]
    for x in archs:
        if x not in ARCHS:
            ap.error(f"unknown arch {x!r} (known: {', '.join(ARCHS)})")
    for x in wls:
        if x not in STRATEGIES:
            ap.error(f"unknown workload {x!r} (known: {', '.join(STRATEGIES)})")
    if a.out is None:
        import tempfile

        a.out = (os.path.join(tempfile.gettempdir(), "comet-repro-quick") if a.quick
                 else os.path.join(ROOT, "docs", "repro"))
    os.makedirs(a.out, exist_ok=True)
    todo = cases(QUICK if a.quick else SWEEP, archs, wls, a.map_budget)
    t0 = time.perf_counter()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            rows = list(ex.map(run_case, todo, chunksize=1))
    else:
        rows = [run_case(c) for c in todo]
    normalise(rows)
    elapsed = time.perf_counter() - t0
    s = summarise(rows)
    write_csv(rows, os.path.join(a.out, "results.csv"))
    write_markdown(rows, s, os.path.join(a.out, "results.md"), elapsed)
    plots = [] if a.no_plots else write_plots(rows, a.out)
    n_ok = sum(r["status"] == "ok" for r in rows)
    print(f"{len(rows)} cases, {n_ok} priced, {len(rows) - n_ok} not ({elapsed:.1f} s); "
          f"wrote {a.out}/results.csv, results.md" + (f", {len(plots)} plots" if plots else ""))
    for (wl, arch), (g, mx, n, tot) in s.best.items():
        print(f"  {wl:15s} {arch:6s} best fused geomean {_f(g, unit='x')}  max {_f(mx, unit='x')}  "
              f"({n}/{tot} shapes)  paper up to {PAPER[wl]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
