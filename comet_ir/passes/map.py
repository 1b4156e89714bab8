"""`comet-map{objective=latency|energy|edp budget=… seed=… top=…}`: search mappings with the
cost model as the objective and replace the program with the best one found.

Two inputs:
- **workload form** (a `func.func` of comet ops): the search space is every named paper
  strategy that applies to the workload (fusion level, collective type/placement) times the
  outer (DRAM-level) row tiling and loop order passed to `comet-tile`; each candidate is
  lowered by its pipeline and priced;
- **mapped form** (e.g. an imported reference program): the space is the redistribution of
  each dimension's temporal factors between nested temporal tiles (keeping every product, so
  every candidate stays a valid tiling) and the loop orders; a seeded random walk with
  restarts from the incumbent.
Candidates that do not fit or do not verify are skipped (counted). The best `top` are
reported on stderr; a progress line is printed when stderr is a terminal. Deterministic for a
fixed seed and budget in candidates (`budget` is a wall-clock cap in seconds).
"""
from __future__ import annotations

import itertools
import math
import random
import sys
import time
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError


def _score(report, objective: str) -> float:
    if objective == "latency":
        return report.latency_cycles
    if objective == "energy":
        return report.energy_pj
    if objective == "edp":
        return report.latency_cycles * report.energy_pj
    raise CometError(f"comet-map: objective must be latency, energy or edp, got '{objective}'")


class _Progress:
    def __init__(self, total_s: float):
        self.tty = sys.stderr.isatty()
        self.t0, self.total = time.monotonic(), total_s

    def tick(self, n: int, best: float) -> None:
        if self.tty:
            el = time.monotonic() - self.t0
            sys.stderr.write(f"\rcomet-map: {n} candidates, best {best:,.0f}, {el:4.1f}/{self.total:.0f} s")

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")

    def expired(self) -> bool:
        return time.monotonic() - self.t0 > self.total


def _workload_kind(module: ModuleOp) -> str:
    names = {op.name for op in module.walk()}
    if "comet.attention" in names:
        return "attention"
    if "comet.layernorm" in names:
        return "layernorm"
    if "comet.softmax" in names:
        return "softmax"
    return "other"


_STRATEGIES = {
    "softmax": ["unfused", "fused-distsm", "fused-gemm-distsm", "fused-sm"],
    "layernorm": ["unfused", "fused-gemm-distln", "fused-ln"],
    "attention": ["unfused-attention", "partially-fused-attention", "flash-attention"],
    "other": ["unfused"],
}


def _row_dim_sizes(module: ModuleOp) -> dict[str, int]:
    from comet_ir.passes._mapping import analyse

    w = analyse(module)
    return dict(w.dims) if hasattr(w, "dims") else {}


def _workload_candidates(module: ModuleOp):
    from comet_ir import registry

    kind = _workload_kind(module)
    dims = _row_dim_sizes(module)
    m = dims.get("M", 0)
    dram_rows = [None] + ([d for d in (1, 2, 4, 8, 16) if m and m % d == 0] if m else [])
    for strat in _STRATEGIES[kind]:
        base = registry.PIPELINES[strat]
        for f in dram_rows:
            tile = "comet-tile" if f is None else f"comet-tile{{level=DRAM factors=M{f}}}"
            yield f"{strat}" + ("" if f is None else f" (DRAM M={f})"), base.replace("comet-tile", tile, 1)


@dataclass
class _Result:
    label: str
    score: float
    latency: float
    energy: float
    module: ModuleOp


def _map_workload(ctx: Context, module: ModuleOp, objective: str, prog: _Progress, arch) -> list[_Result]:
    from comet_ir.api import run_pipeline
    from comet_ir.backends.cost_targets import estimate

    results, n = [], 0
    for label, pipe in _workload_candidates(module):
        if prog.expired():
            break
        cand = module.clone()
        try:
            run_pipeline(cand, pipe, ctx)
            rep = estimate(cand, arch)
        except CometError:
            continue
        n += 1
        results.append(_Result(label, _score(rep, objective), rep.latency_cycles, rep.energy_pj, cand))
        prog.tick(n, min(r.score for r in results))
    return results


# ------------------------------------------------------------------------- mapped form


def _temporal_chains(node, chain, out):
    """Lists of (tile, tensor index) per (tensor, tag) along each root-to-leaf path."""
    from comet_ir.spec.mapping_tree import BindingNode, TileNode

    if isinstance(node, TileNode):
        if node.kind == "temporal":
            chain = chain + [node]
        body = node.body
    elif isinstance(node, BindingNode):
        body = node.children
    else:
        out.append(chain)
        return
    for ch in body:
        _temporal_chains(ch, chain, out)


def _mutate(prog, rng: random.Random) -> bool:
    """Move a prime factor of one dimension from one temporal tile to a nested one (same
    (tensor, tag) pairs in both, all of them moved together so every product is preserved),
    or permute one tile's loop order."""
    chains: list = []
    _temporal_chains(prog.root, [], chains)
    tiles = list({id(t): t for c in chains for t in c}.values())
    if not tiles:
        return False
    if rng.random() < 0.25:
        t = rng.choice(tiles)
        dims = list(t.order)
        rng.shuffle(dims)
        t.order = "".join(dims)
        return True
    pairs = [(c[i], c[j]) for c in chains for i in range(len(c)) for j in range(i + 1, len(c))]
    rng.shuffle(pairs)
    for a, b in pairs:
        if rng.random() < 0.5:
            a, b = b, a
        pa, pb = list(zip(a.tensors, a.tags)), list(zip(b.tensors, b.tags))
        if set(pa) != set(pb) or len(set(pa)) != len(pa) or len(set(pb)) != len(pb):
            continue  # move only between tiles that carry exactly the same pairs
        dims = [d for d in a.factors[0] if d in b.factors[0]]
        rng.shuffle(dims)
        for d in dims:
            fa = a.factors[0][d]
            if len(set(fa)) != 1 or fa[0] == 1:
                continue
            p = min(q for q in range(2, fa[0] + 1) if fa[0] % q == 0)
            ia = {pair: i for i, pair in enumerate(zip(a.tensors, a.tags))}
            for i, pair in enumerate(zip(b.tensors, b.tags)):
                j = ia[pair]
                a.factors[0][d][j] //= p
                b.factors[0][d][i] *= p
            return True
    return False


def _map_mapped(ctx: Context, module: ModuleOp, objective: str, prog: _Progress, arch,
                seed: int) -> list[_Result]:
    import copy

    from comet_ir.api import verify_module
    from comet_ir.backends.cost.model import estimate_program
    from comet_ir.backends.cost_targets import resolve_arch
    from comet_ir.ir_tree import ir_to_tree, program_module, single_mapping

    base = ir_to_tree(single_mapping(module))
    accel = resolve_arch(module, arch, base.arch)
    rng = random.Random(seed)
    rep = estimate_program(base, accel)
    best = _Result("given mapping", _score(rep, objective), rep.latency_cycles, rep.energy_pj, None)
    best_prog, results, n = base, [best], 1
    while not prog.expired() and n < 20000:
        cand = copy.deepcopy(best_prog if rng.random() < 0.8 else base)
        for _ in range(rng.randint(1, 3)):
            _mutate(cand, rng)
        try:
            m = program_module(cand)
            verify_module(m)
            r = estimate_program(cand, accel)
        except CometError:
            continue
        except Exception:  # noqa: BLE001 - an IR verifier error on an invalid candidate
            continue
        n += 1
        s = _score(r, objective)
        results.append(_Result(f"candidate {n}", s, r.latency_cycles, r.energy_pj, None))
        if s < best.score:
            best, best_prog = results[-1], cand
        prog.tick(n, best.score)
    best.module = program_module(best_prog)
    best.module.attributes.update(module.attributes)
    return results


@dataclass(frozen=True)
class MapPass(ModulePass):
    """Search mappings (strategy, tiling, loop order) with the cost model; keep the best."""

    name = "comet-map"
    objective: str = "latency"
    budget: int = 20
    seed: int = 0
    top: int = 5
    arch: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.budget <= 0:
            raise CometError("comet-map: budget must be > 0 seconds")
        from comet_ir.ir_tree import find_mappings

        prog = _Progress(self.budget)
        mapped = bool(find_mappings(op))
        results = (_map_mapped(ctx, op, self.objective, prog, self.arch or None, self.seed) if mapped
                   else _map_workload(ctx, op, self.objective, prog, self.arch or None))
        prog.done()
        scored = [r for r in results if r.module is not None or mapped]
        if not scored:
            raise CometError("comet-map: no candidate mapping fits the architecture (every "
                             "strategy failed comet-verify-capacity or distribution); try a larger "
                             "architecture or smaller shapes")
        ranked = sorted([r for r in results if not math.isnan(r.score)], key=lambda r: r.score)
        best = next(r for r in ranked if r.module is not None) if not mapped else \
            min(results, key=lambda r: r.score)
        sys.stderr.write(f"comet-map: {len(results)} candidates priced; best {self.objective} "
                         f"{best.score:,.0f} ({best.label}); top {self.top}:\n")
        for r in ranked[: self.top]:
            sys.stderr.write(f"  {r.label:40s} latency {r.latency:14,.0f}  energy {r.energy:16,.0f}\n")
        if prog.expired():
            sys.stderr.write("comet-map: budget expired; the result is the best found, not proven optimal\n")
        new = best.module
        for region_op in list(op.body.block.ops):
            op.body.block.erase_op(region_op)
        for child in list(new.body.block.ops):
            child.detach()
            op.body.block.add_op(child)
        op.attributes.update(new.attributes)
