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
import re
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
    """Wall-clock budget plus a tqdm progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, total_s: float):
        from tqdm import tqdm

        self.t0, self.total = time.monotonic(), total_s
        self.failures: list[tuple[str, str]] = []   # (candidate, why it was refused)
        self.bar = tqdm(desc="comet-map", unit=" cand", file=sys.stderr, disable=not sys.stderr.isatty(),
                        leave=False, dynamic_ncols=True)
        self.n = 0

    def tick(self, n: int, best: float) -> None:
        self.bar.update(max(n - self.n, 0))
        self.n = n
        self.bar.set_postfix_str(f"best {best:,.0f}, {time.monotonic() - self.t0:4.1f}/{self.total:.0f} s", refresh=False)

    def done(self) -> None:
        self.bar.close()

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
            yield f"{strat}" + ("" if f is None else f" (DRAM M={f})"), _with_dram_rows(base, f)


def _with_dram_rows(pipeline: str, f: int | None) -> str:
    """The strategy's pipeline with `level=DRAM factors=M<f>` merged into its comet-tile options
    (a strategy may already pass comet-tile options, e.g. attention's col_split / kv_loop)."""
    if f is None:
        return pipeline
    m = re.search(r"comet-tile(\{([^}]*)\})?(?=,|$)", pipeline)
    if m is None:
        return pipeline
    opts = " ".join(o for o in [(m.group(2) or "").strip(), f"level=DRAM factors=M{f}"] if o)
    return pipeline[: m.start()] + f"comet-tile{{{opts}}}" + pipeline[m.end():]


_NEED = re.compile(r"(\d+) bytes(?: needed)?[^0-9]*?(\d+)(?: bytes)? available|needs (\d+) bytes .*?\((\d+) available\)")


def _tightest(failures: list[tuple[str, str]]) -> str:
    """The refusal closest to fitting (smallest bytes needed / available), or the first one."""
    if not failures:
        return "no strategy applies to this workload"

    def ratio(msg: str) -> float:
        m = _NEED.search(msg)
        if not m:
            return math.inf
        need, have = [int(g) for g in m.groups() if g is not None][:2]
        return need / max(have, 1)

    label, msg = min(failures, key=lambda f: ratio(f[1]))
    return f"tightest constraint ({len(failures)} candidates refused), {label}: {msg}"


@dataclass
class _Result:
    label: str
    score: float
    latency: float
    energy: float
    module: ModuleOp
    t: float = 0.0  # seconds into the search when it was priced (time to solution)


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
        except CometError as e:
            prog.failures.append((label, e.message))
            continue
        except Exception:  # noqa: BLE001 - a candidate the model cannot price is skipped
            continue
        n += 1
        results.append(_Result(label, _score(rep, objective), rep.latency_cycles, rep.energy_pj, cand,
                               time.monotonic() - prog.t0))
        prog.tick(n, min(r.score for r in results))
    return results


# ------------------------------------------------------------------------- mapped form


class _Evaluator:
    """Prices candidates (factor vector, loop orders) once each; keeps every result."""

    def __init__(self, space, accel, objective: str, prog: _Progress, batched: bool = True):
        from comet_ir.schedule.graph import preorder

        self.space, self.accel, self.objective, self.prog = space, accel, objective, prog
        # every candidate of one space shares the tree structure: the batched evaluator's
        # shared move times and leaf walks make each one cheaper (same numbers as the single path)
        self.batch = None
        if batched:
            try:
                from comet_ir.backends.cost.batched import BatchEvaluator

                self.batch = BatchEvaluator(space.program, accel, space=space)
            except CometError:
                self.batch = None
        self._bounds: dict = {}
        self.stall_s: float | None = None  # stop a search this long without a new best
        self.best_t = time.monotonic()
        self.cache: dict = {}
        self.results: list[_Result] = []
        self.failed = 0
        self.tiles = [i for i, n in enumerate(preorder(space.program.root))
                      if getattr(n, "kind", "") == "temporal"]
        self.best: _Result | None = None
        self.best_key = None

    def stop(self) -> bool:
        return self.prog.expired() or (self.stall_s is not None and time.monotonic() - self.best_t > self.stall_s)

    def program(self, values, orders):
        from comet_ir.schedule.graph import preorder

        p = self.space.apply(values)
        nodes = preorder(p.root)
        for i, o in zip(self.tiles, orders):
            nodes[i].order = o
        return p

    def __call__(self, values, orders, label=None):
        from comet_ir.backends.cost.model import estimate_program

        key = (values, orders)
        if key in self.cache:
            return self.cache[key]
        try:
            if self.batch is not None:
                lat, en = self.batch.one(values, orders)
                rep = _Totals(lat, en)
            else:
                rep = estimate_program(self.program(values, orders), self.accel)
            score = _score(rep, self.objective)
        except CometError:
            rep, score = None, None
        except Exception:  # noqa: BLE001 - a candidate the model cannot price is skipped
            rep, score = None, None
        self.cache[key] = (score, rep)
        if score is None:
            self.failed += 1
            return self.cache[key]
        r = _Result(label or f"candidate {len(self.results) + 1}", score, rep.latency_cycles, rep.energy_pj, None,
                    time.monotonic() - self.prog.t0)
        self.results.append(r)
        if self.best is None or score < self.best.score:
            if self.best is None or score < self.best.score * (1 - 1e-9):
                self.best_t = time.monotonic()
            self.best, self.best_key = r, key
        self.prog.tick(len(self.results), self.best.score)
        return self.cache[key]


@dataclass
class _Totals:
    latency_cycles: float
    energy_pj: float


def _ideal_compute(ev: _Evaluator, values, orders) -> float | None:
    """Sum of the ops' ideal compute cycles (no loop order changes it), once per factorization."""
    from comet_ir.backends.cost.model import estimate_program

    if values not in ev._bounds:
        try:
            ev._bounds[values] = sum(estimate_program(ev.program(values, orders), ev.accel)
                                     .ideal_compute_cycles.values())
        except Exception:  # noqa: BLE001 - no bound: no pruning
            ev._bounds[values] = None
    return ev._bounds[values]


def _order_descent(ev: _Evaluator, values, orders):
    """Try every loop order of one tile at a time; keep improvements. Orders change only
    transfers, so when the candidate's ideal compute (a latency lower bound that no order
    changes) is already no better than the best, the whole family is pruned."""
    from comet_ir.schedule.factors import order_choices
    from comet_ir.schedule.graph import preorder

    score, rep = ev(values, orders)
    if score is None:
        return orders, score
    if ev.objective == "latency" and ev.best is not None and ev.best_key != (values, orders):
        lb = _ideal_compute(ev, values, orders)
        if lb is not None and lb <= score and lb >= ev.best.score:
            return orders, score
    nodes = preorder(ev.program(values, orders).root)
    improved = True
    while improved and not ev.stop():
        improved = False
        for k, ti in enumerate(ev.tiles):
            for o in order_choices(nodes[ti]):
                if o == orders[k] or ev.stop():
                    continue
                cand = orders[:k] + (o,) + orders[k + 1:]
                s, _ = ev(values, cand)
                if s is not None and s < score:
                    orders, score, improved = cand, s, True
    return orders, score


def _search_space(ev: _Evaluator, start_values, start_orders, rng: random.Random, exhaustive_limit: int,
                  max_radius: int = 8, n_samples: int = 8):
    """Exhaustive when the space is small; otherwise first-improvement local search in CP-SAT
    neighbourhoods (radius 2 = one prime factor moved between loop levels, widened to 8 when
    stuck), order descent after every improvement, random restarts from the best."""
    import itertools

    from comet_ir.schedule.factors import order_choices
    from comet_ir.schedule.graph import preorder

    space = ev.space
    # enumeration is CP-SAT time taken from the candidates: at most a quarter of what is left
    left = ev.prog.total - (time.monotonic() - ev.prog.t0)
    every = space.enumerate_solutions(cap=exhaustive_limit + 1, time_limit=max(0.5, min(5.0, left / 4)))
    if len(every) <= exhaustive_limit and getattr(space, "last_complete", False):
        combos = []
        for v in every:
            nodes = preorder(space.apply(v).root)
            combos.append((v, list(itertools.product(*[order_choices(nodes[i]) for i in ev.tiles]))))
        if sum(len(c) for _, c in combos) <= exhaustive_limit:
            ev.exhaustive = True
            for v, orders_list in combos:
                for o in orders_list:
                    if ev.prog.expired():
                        ev.exhaustive = False
                        return
                    ev(v, tuple(o))
            return
    ev.exhaustive = False
    # a few random points of the space before descending: the given mapping can sit in a poor
    # basin that a handful of samples already beats (random search did, on attention)
    nodes = preorder(space.apply(start_values).root)
    choices = [order_choices(nodes[i]) for i in ev.tiles]
    for v in rng.sample(every, min(n_samples, len(every))):
        if ev.stop():
            return
        ev(v, start_orders)
        ev(v, tuple(rng.choice(c) for c in choices))
    values, orders = ev.best_key if ev.best_key is not None else (start_values, start_orders)
    orders, score = _order_descent(ev, values, orders)
    radius, restarts = 2, 0
    while not ev.stop():
        neigh = space.enumerate_solutions(cap=600, around=values, radius=radius, time_limit=2.0)[1:]
        rng.shuffle(neigh)
        moved = False
        for v in neigh:
            if ev.stop():
                return
            s, _ = ev(v, orders)
            if s is not None and (score is None or s < score):
                values, score, moved = v, s, True
                orders, score = _order_descent(ev, values, orders)
                break
        if moved:
            radius = 2
            continue
        if radius < max_radius:
            radius += 2
            continue
        restarts += 1
        if restarts > 4:
            return  # a local optimum at radius 8 from five starts: stop early
        values, orders = ev.best_key
        far = space.enumerate_solutions(cap=600, around=values, radius=max_radius, time_limit=2.0)[1:]
        if not far:
            return
        values = rng.choice(far)
        score, _ = ev(values, orders)
        radius = 2


def _structures(base, accel, objective: str, prog: _Progress, attributes) -> list[_Result]:
    """The given mapping and its structural variants (comet_ir.schedule.structure) that price."""
    from comet_ir.backends.cost.model import estimate_program
    from comet_ir.ir_tree import program_module
    from comet_ir.schedule.structure import structural_variants

    out = []
    from comet_ir.schedule.order import order_variants

    # inter-op order of independent sequential children is a structure too (its tiling space
    # is searched like the others'); a pure chain adds nothing
    variants = structural_variants(base, accel) + order_variants(base)[1:]
    for label, p in [("given mapping", base)] + variants:
        try:
            rep = estimate_program(p, accel)
        except Exception:  # noqa: BLE001 - a variant that does not fit or price is skipped
            continue
        m = program_module(p)
        if attributes:
            m.attributes.update(attributes)
        out.append(_Result(label, _score(rep, objective), rep.latency_cycles, rep.energy_pj, m,
                           time.monotonic() - prog.t0))
    return out


def _map_mapped(ctx: Context, module: ModuleOp, objective: str, prog: _Progress, arch,
                seed: int, exhaustive_limit: int = 2000, refine: bool = True) -> list[_Result]:
    from comet_ir.backends.cost_targets import resolve_arch
    from comet_ir.ir_tree import ir_to_tree, program_module, single_mapping

    base = ir_to_tree(single_mapping(module))
    accel = resolve_arch(module, arch, base.arch)
    heads = _structures(base, accel, objective, prog, module.attributes)
    if len(heads) > 1 or (heads and heads[0].label != "given mapping") or not refine:
        # collective type / placement and spatial split: each structure's tiling space is
        # searched (budget split by promise), then per-op factors from the best
        if not refine:
            return heads
        total = prog.total
        prog.total = total * 0.6
        results = refine_strategies(heads, prog, objective, seed, arch)
        prog.total = total
        best = min((r for r in results if r.module is not None), key=lambda r: r.score, default=None)
        if best is None or prog.expired():
            return results
        more = _refine(ir_to_tree(single_mapping(best.module)), accel, objective, prog, seed, 0,
                       module.attributes, label=best.label, per_op=True)
        for r in more:
            if r.label.startswith("candidate"):
                r.label = f"{best.label} + per-op {r.label}"
            r.exhaustive = False
        return results + [r for r in more if r.label != best.label or r.module is not None]
    # first the tied space (tensors of a tile that share a factor keep sharing it: small
    # neighbourhoods, fast descent), then per-op factors (ops fused in one tile may loop differently) from the best
    total = prog.total
    prog.total = total * 0.5
    # the tied space stalls long before its half is up on the reference edge case (46,986
    # from 10 s to 20 s, while per-op factors reach 29,906 at once): a stall hands over early
    results = _refine(base, accel, objective, prog, seed, exhaustive_limit, module.attributes,
                      stall_s=total * 0.1)
    prog.total = total
    best = min((r for r in results if r.module is not None), key=lambda r: r.score, default=None)
    if best is None or getattr(best, "exhaustive", False) or prog.expired():
        return results
    start = ir_to_tree(single_mapping(best.module))
    more = _refine(start, accel, objective, prog, seed, 0, module.attributes, label=best.label,
                   per_op=True)
    for r in more:
        if r.label.startswith("candidate"):
            r.label = "per-op " + r.label
    return results + [r for r in more if r.label != best.label or r.module is not None]


def _try_orders(results: list[_Result], objective: str, arch, prog: _Progress) -> list[_Result]:
    """The best mapping's other inter-op orders (comet_ir.schedule.order), each priced; tiling
    and collectives kept. Empty for a program whose sequential bindings are all chains."""
    from comet_ir.backends.cost.model import estimate_program
    from comet_ir.backends.cost_targets import resolve_arch
    from comet_ir.ir_tree import ir_to_tree, program_module, single_mapping
    from comet_ir.schedule.order import order_variants

    scored = [r for r in results if r.module is not None]
    if not scored:
        return []
    best = min(scored, key=lambda r: r.score)
    tree = ir_to_tree(single_mapping(best.module))
    accel = resolve_arch(best.module, arch, tree.arch)
    out = []
    for label, p in order_variants(tree)[1:]:
        try:
            rep = estimate_program(p, accel)
        except Exception:  # noqa: BLE001 - an order the model cannot price is skipped
            continue
        m = program_module(p)
        m.attributes.update(best.module.attributes)
        out.append(_Result(f"{best.label}, {label}", _score(rep, objective), rep.latency_cycles,
                           rep.energy_pj, m, time.monotonic() - prog.t0))
    return out


def _new_evaluator(base, accel, objective: str, prog: _Progress, label: str, per_op: bool = False) -> _Evaluator:
    """An evaluator over `base`'s tiling space, with the given mapping priced first."""
    from comet_ir.schedule.factors import FactorSpace
    from comet_ir.schedule.graph import preorder

    space = FactorSpace(base, accel, per_op=per_op)
    ev = _Evaluator(space, accel, objective, prog)
    given = tuple(s.value for s in space.slots)
    nodes = preorder(base.root)
    orders = tuple(nodes[i].order for i in ev.tiles)
    ev.start = (given, orders)
    ev(given, orders, label)
    return ev


def _finish(ev: _Evaluator, attributes=None) -> list[_Result]:
    """The evaluator's results, its best one carrying the IR of its program."""
    from comet_ir.ir_tree import program_module

    if ev.best is None:
        return []
    ev.best.module = program_module(ev.program(*ev.best_key))
    if attributes:
        ev.best.module.attributes.update(attributes)
    ev.best.exhaustive = getattr(ev, "exhaustive", False)
    return ev.results


def _refine(base, accel, objective: str, prog: _Progress, seed: int, exhaustive_limit: int,
            attributes=None, label: str = "given mapping", per_op: bool = False,
            stall_s: float | None = None) -> list[_Result]:
    ev = _new_evaluator(base, accel, objective, prog, label, per_op)
    ev.stall_s = stall_s
    given, orders = ev.start
    _search_space(ev, given, orders, random.Random(seed), exhaustive_limit, 4 if per_op else 8)
    return _finish(ev, attributes)


@dataclass(frozen=True)
class MapPass(ModulePass):
    """Search mappings (strategy, tiling, loop order) with the cost model; keep the best."""

    name = "comet-map"
    objective: str = "latency"
    budget: int = 40
    seed: int = 0
    top: int = 5
    arch: str = ""
    refine: bool = True
    schedule: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.budget <= 0:
            raise CometError("comet-map: budget must be > 0 seconds")
        if self.objective not in ("latency", "energy", "edp"):
            raise CometError(f"comet-map: objective must be latency, energy or edp, got '{self.objective}'")
        from comet_ir.ir_tree import find_mappings

        prog = _Progress(self.budget)
        mapped = bool(find_mappings(op))
        try:
            if mapped:
                results = _map_mapped(ctx, op, self.objective, prog, self.arch or None, self.seed,
                                      refine=self.refine)
            else:
                results = _map_workload(ctx, op, self.objective, prog, self.arch or None)
                if self.refine and results and not prog.expired():
                    results = self._refine_best(ctx, op, results, prog)
            results = results + _try_orders(results, self.objective, self.arch or None, prog)
        finally:
            prog.done()
        scored = [r for r in results if r.module is not None]
        if not scored:
            raise CometError("comet-map: no candidate mapping fits the architecture; "
                             + _tightest(prog.failures))
        ranked = sorted([r for r in results if not math.isnan(r.score)], key=lambda r: r.score)
        best = min(scored, key=lambda r: r.score)
        sys.stderr.write(f"comet-map: {len(results)} candidates priced; best {self.objective} "
                         f"{best.score:,.0f} ({best.label}); top {self.top}:\n")
        for r in ranked[: self.top]:
            sys.stderr.write(f"  {r.label:40s} latency {r.latency:14,.0f}  energy {r.energy:16,.0f}\n")
        if getattr(best, "exhaustive", False):
            sys.stderr.write("comet-map: the space was searched exhaustively; the result is optimal "
                             "under the cost model\n")
        elif prog.expired():
            sys.stderr.write("comet-map: budget expired; the result is the best found, not proven optimal\n")
        new = best.module
        for region_op in list(op.body.block.ops):
            op.body.block.erase_op(region_op)
        for child in list(new.body.block.ops):
            child.detach()
            op.body.block.add_op(child)
        op.attributes.update(new.attributes)
        if self.schedule:
            from comet_ir.passes.schedule import SchedulePass

            SchedulePass(objective="energy" if self.objective == "energy" else "latency",
                         seed=self.seed, arch=self.arch).apply(ctx, op)

    def _refine_best(self, ctx, op, results, prog):
        return refine_strategies(results, prog, self.objective, self.seed, self.arch or None)


def refine_strategies(results: list[_Result], prog: _Progress, objective: str, seed: int = 0,
                      arch=None, probe_share: float = 0.3) -> list[_Result]:
    """Tiling / loop-order search (the mapped-form space) on EVERY lowered candidate (each
    strategy x DRAM row tiling is its own tree, so its own space). Two phases:
    probe: each lowering gets a few random points of its space (random loop orders too), at most
    `probe_share` of the remaining budget; its promise is the best probe score (the score before
    tiling misleads: on attention the worst lowering before tiling, flash with DRAM M=8, is the
    best after);
    refine: neighbourhood search on the lowerings in order of promise, the remaining budget split
    in proportion to (leader/promise)^2; what a search does not use (its space was exhausted)
    rolls over to the next."""
    from comet_ir.backends.cost_targets import resolve_arch
    from comet_ir.ir_tree import ir_to_tree, single_mapping

    out = list(results)
    heads = sorted([r for r in results if r.module is not None], key=lambda r: r.score)
    if not heads:
        return out
    rng = random.Random(seed)
    total = prog.total
    probe_end = (time.monotonic() - prog.t0) + probe_share * max(total - (time.monotonic() - prog.t0), 0)
    probes = []
    try:
        prog.total = probe_end
        for r in heads:
            if prog.expired():
                break
            base = ir_to_tree(single_mapping(r.module))
            accel = resolve_arch(r.module, arch, base.arch)
            ev = _new_evaluator(base, accel, objective, prog, r.label)
            _probe(ev, rng)
            probes.append((ev.best.score if ev.best else r.score, r, base, accel, ev))
        prog.total = total
        probes.sort(key=lambda x: x[0])
        leader = probes[0][0] if probes else 0
        weights = [max((leader / p[0]) ** 2 if p[0] > 0 else 1.0, 0.02) for p in probes]
        for i, (_, r, base, accel, ev) in enumerate(probes):
            left = total - (time.monotonic() - prog.t0)
            if left > 0.2:
                share = left * weights[i] / sum(weights[i:])
                prog.total = (time.monotonic() - prog.t0) + share
                given, orders = ev.start
                _search_space(ev, given, orders, rng, 2000)
                prog.total = total
            more = _finish(ev, r.module.attributes)
            for m in more:
                if m.label.startswith("candidate"):
                    m.label = f"{r.label} + tiling {m.label.split()[-1]}"
            out += [m for m in more if m.label != r.label]
        if not probes or not all(getattr(p[4], "exhaustive", False) for p in probes):
            for m in out:  # optimal only when every lowering's space was exhausted
                m.exhaustive = False
    finally:
        prog.total = total
    return out


def _probe(ev: _Evaluator, rng: random.Random, n: int = 4, cap: int = 60) -> None:
    from comet_ir.schedule.factors import order_choices
    from comet_ir.schedule.graph import preorder

    given, orders = ev.start
    sols = ev.space.enumerate_solutions(cap=cap, time_limit=0.5)
    nodes = preorder(ev.space.apply(given).root)
    choices = [order_choices(nodes[i]) for i in ev.tiles]
    for v in rng.sample(sols, min(n, len(sols))):
        if ev.prog.expired():
            return
        ev(v, orders)
        ev(v, tuple(rng.choice(c) for c in choices))
