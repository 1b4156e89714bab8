"""comet-map vs random search vs grid sweep, same wall-clock budget, on GEMM-Softmax,
GEMM-LayerNorm and attention on the edge and cloud presets.

For each case and method: the best latency (cycles, our cost model) and the time at which it
was first priced (time to solution). The three methods share one space: the paper strategies
(fusion level, collective type/placement) x DRAM row tiling x the tiling / loop-order space of
the lowered program (comet_ir.schedule.factors):
* comet-map: the pass itself (strategies first, then CP-SAT neighbourhood search on the best);
* random: a random strategy + DRAM tiling, then a random feasible factorization (from the same
  CP-SAT enumeration) and random loop orders, repeated;
* grid: every strategy x DRAM tiling, then each strategy's factorizations in enumeration order.

Run: python benchmarks/mapper_bench.py [--budget S] [--append]  (default 8 s per method and
case: about 2.5 minutes). --append adds a dated section to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import random
import sys
import time

from comet_ir import registry
from comet_ir.api import run_pipeline
from comet_ir.backends.cost.model import estimate_program
from comet_ir.backends.cost_targets import estimate, resolve_arch
from comet_ir.errors import CometError
from comet_ir.ir_tree import ir_to_tree, single_mapping
from comet_ir.spec import workloads as w

CASES = {
    ("gemm_softmax", "edge"): lambda: w.gemm_softmax(256, 256, 128, arch="edge"),
    ("gemm_softmax", "cloud"): lambda: w.gemm_softmax(1024, 1024, 512, arch="cloud"),
    ("gemm_layernorm", "edge"): lambda: w.gemm_layernorm(512, 512, 512, arch="edge"),
    ("gemm_layernorm", "cloud"): lambda: w.gemm_layernorm(1024, 1024, 1024, arch="cloud"),
    ("attention", "edge"): lambda: w.attention(1, 4, 256, 64, arch="edge"),
    ("attention", "cloud"): lambda: w.attention(1, 8, 1024, 64, arch="cloud"),
}


def _strategy_programs(make):
    from comet_ir.passes.map import _workload_candidates

    out = []
    for label, pipe in _workload_candidates(make()):
        try:
            m = run_pipeline(make(), pipe)
            estimate(m)
        except Exception:  # noqa: BLE001 - the same candidates comet-map skips
            continue
        p = ir_to_tree(single_mapping(m))
        out.append((label, p, resolve_arch(m, None, p.arch)))
    return out


class _Track:
    def __init__(self, budget):
        self.t0, self.budget = time.monotonic(), budget
        self.best, self.t_best, self.n = None, 0.0, 0

    def expired(self):
        return time.monotonic() - self.t0 > self.budget

    def price(self, prog, accel):
        try:
            lat = estimate_program(prog, accel).latency_cycles
        except Exception:  # noqa: BLE001
            return
        self.n += 1
        if self.best is None or lat < self.best:
            self.best, self.t_best = lat, time.monotonic() - self.t0


def run_map(make, budget):
    from comet_ir.passes.map import _map_workload, _Progress, refine_strategies
    from xdsl.context import Context

    prog = _Progress(budget)
    mod = make()
    res = _map_workload(Context(), mod, "latency", prog, None)
    res = refine_strategies(res, prog, "latency")
    prog.done()
    if not res:
        return None, 0.0, 0
    best = min(res, key=lambda r: r.score)
    return best.latency, best.t, len(res)


def run_random(make, budget, seed=0):
    from comet_ir.schedule.factors import FactorSpace, order_choices
    from comet_ir.schedule.graph import preorder

    tr = _Track(budget)
    rng = random.Random(seed)
    progs = _strategy_programs(make)
    for _, p, a in progs:
        tr.price(p, a)
    spaces = {}
    while not tr.expired() and progs:
        label, p, a = rng.choice(progs)
        if label not in spaces:
            fs = FactorSpace(p, a)
            spaces[label] = (fs, fs.enumerate_solutions(cap=2000, time_limit=2.0))
        fs, sols = spaces[label]
        cand = fs.apply(rng.choice(sols))
        for n in preorder(cand.root):
            if getattr(n, "kind", "") == "temporal":
                n.order = rng.choice(order_choices(n))
        tr.price(cand, a)
    return tr.best, tr.t_best, tr.n


def run_grid(make, budget):
    from comet_ir.schedule.factors import FactorSpace

    tr = _Track(budget)
    progs = _strategy_programs(make)
    for _, p, a in progs:
        tr.price(p, a)
    for _, p, a in progs:
        if tr.expired():
            break
        fs = FactorSpace(p, a)
        for v in fs.enumerate_solutions(cap=2000, time_limit=2.0)[1:]:
            if tr.expired():
                break
            tr.price(fs.apply(v), a)
    return tr.best, tr.t_best, tr.n


REF = "/work/shared/reference/iterative_mapper"


def throughput(n: int = 300, seed: int = 0) -> tuple[float, float, int]:
    """Candidates/s of comet-map's evaluator, single path vs batched evaluator, on the same n
    candidates (enumerated factorizations x random loop orders) of the imported reference edge
    program (GEMM -> decomposed softmax, M=N=256 K=128); asserts both give the same scores."""
    from comet_ir.passes.map import _Evaluator, _Progress
    from comet_ir.schedule.factors import FactorSpace, order_choices
    from comet_ir.schedule.graph import preorder
    from comet_ir.spec.reference import import_reference

    accel, prog = import_reference(REF, f"{REF}/arch.yaml", f"{REF}/edge_M256N256K128_const.yaml")
    space = FactorSpace(prog, accel)
    rng = random.Random(seed)
    sols = space.enumerate_solutions(cap=n, time_limit=10.0)
    nodes = preorder(prog.root)
    tiles = [i for i, x in enumerate(nodes) if getattr(x, "kind", "") == "temporal"]
    cands = [(v, tuple(rng.choice(order_choices(nodes[i])) for i in tiles)) for v in sols]
    rates, scores = [], []
    for batched in (False, True):
        ev = _Evaluator(space, accel, "latency", _Progress(1e9), batched=batched)
        t = time.perf_counter()
        got = [ev(v, o)[0] for v, o in cands]
        rates.append(len(cands) / (time.perf_counter() - t))
        ev.prog.done()
        scores.append(got)
    assert scores[0] == scores[1], "batched and single-path scores differ"
    return rates[0], rates[1], len(cands)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=8.0)
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--cases", default="", help="comma-separated workload names (default: all)")
    ap.add_argument("--throughput", action="store_true",
                    help="only compare the evaluator's candidates/s, single path vs batched")
    args = ap.parse_args(argv)
    if args.throughput:
        single, batched, n = throughput()
        line = (f"comet-map evaluator on the imported reference edge program, {n} candidates: "
                f"single path {single:,.1f} candidates/s, batched evaluator {batched:,.1f} candidates/s "
                f"({batched / single:.1f}x), same scores")
        print(line)
        if args.append:
            with open("benchmarks/RESULTS.md", "a") as f:
                f.write(f"\n## comet-map evaluator throughput — {datetime.date.today().isoformat()}, "
                        f"{platform.machine()} 2 cores (loaded)\n\n`python benchmarks/mapper_bench.py "
                        f"--throughput --append`: {line}.\n")
        return 0
    rows = []
    for (wl, arch), make in CASES.items():
        if args.cases and wl not in args.cases.split(","):
            continue
        r = {"case": f"{wl} / {arch}"}
        for name, fn in (("comet-map", run_map), ("random", run_random), ("grid", run_grid)):
            try:
                best, t, n = fn(make, args.budget)
            except CometError as e:
                best, t, n = None, 0.0, 0
                print(f"{wl}/{arch} {name}: {e.message}", file=sys.stderr)
            r[name] = (best, t, n)
            print(f"{wl:15s} {arch:6s} {name:10s} best {best if best is None else f'{best:,.0f}'} "
                  f"at {t:.1f} s ({n} priced)", flush=True)
        rows.append(r)
    table = ["| case | comet-map best (t) | random best (t) | grid best (t) | candidates map / random / grid |",
             "|---|---|---|---|---|"]
    for r in rows:
        def cell(k):
            b, t, _ = r[k]
            return "—" if b is None else f"{b:,.0f} ({t:.1f} s)"
        table.append(f"| {r['case']} | {cell('comet-map')} | {cell('random')} | {cell('grid')} | "
                     f"{r['comet-map'][2]} / {r['random'][2]} / {r['grid'][2]} |")
    text = "\n".join(table)
    print(text)
    if args.append:
        day = datetime.date.today().isoformat()
        with open("benchmarks/RESULTS.md", "a") as f:
            f.write(f"\n## Mapper search (comet-map vs random vs grid) — {day}, {platform.machine()} "
                    f"{platform.processor() or ''} 2 cores, budget {args.budget:g} s per method and case\n\n"
                    "`python benchmarks/mapper_bench.py --budget "
                    f"{args.budget:g} --append`. Latency = total cycles under our cost model; (t) = "
                    "seconds until that best was first priced. Same space for all three methods "
                    "(strategies x DRAM tiling x tiling/loop orders of the lowered program).\n\n"
                    + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
