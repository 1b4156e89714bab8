"""Batched cost evaluation: many tilings / loop orders of one mapped program at once.

`evaluate_batch(program, values, orders, accel)` prices B candidates of one program template
(the slots of `comet_ir.schedule.factors.FactorSpace`: temporal tile factors and compute tile
steps, plus one loop order per temporal tile) and returns per-candidate latency (cycles) and
energy (pJ) equal to `estimate_program` on the candidate's program -- the same steady-state
walk (steady_state.Walker) runs, with three exact shortcuts that make a batch cheap:

* a temporal tile's per-iteration moves are a closed form: iteration k moves a new tile of a
  tensor iff k is a multiple of P, the product of the radices of the loops inside the
  innermost loop (with more than one iteration) over a dimension that indexes the tensor
  (P = all iterations when there is none) -- the digit-carry walk of `_temporal_moves`;
* the time of one move depends only on (unique tiles, tile size, fan-out, tensor attributes,
  levels), so it is computed once per batch for each distinct key;
* a leaf tile (a temporal tile around one compute) depends only on its own loop nest, loop
  order and compute primitive, not on anything above it; candidates sharing a leaf
  configuration share its walk result (copied, since the energy walk scales access counts).

Candidates that repeat in the batch are priced once (the split plan shares every part between
rows; the scalar walk runs once per distinct row). A candidate
the single path rejects (a tile that does not fit its buffer, ...) gets NaN and valid=False.
Trees of the fused-pipeline shape go through batched_split.SplitPlan: each part of the tree
is walked once per distinct input it depends on and the totals are numpy gathers and sums
(docs/cost-model.md, "Split evaluation"); other shapes, and rows the plan does not cover, run
the scalar walk per distinct candidate.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from comet_ir.backends.cost.batched_leaf import visit_leaf
from comet_ir.backends.cost.steady_state import Mov, Walker, estimate_energy
from comet_ir.errors import CometError
from comet_ir.spec.mapping_tree import ColOpNode, ComputeNode, MappedProgram, TileNode


@dataclass
class BatchResult:
    latency: np.ndarray  # cycles (float64; NaN where invalid)
    energy: np.ndarray  # pJ, including NoC energy (float64; NaN where invalid)
    valid: np.ndarray  # bool: False where the single path raises CometError
    errors: dict[int, str]  # candidate row -> the single path's error message


def _preorder(node) -> list:
    from comet_ir.schedule.graph import preorder

    return preorder(node)


class _Moves(Sequence):
    """A leaf tile's per-iteration moves, periodic: move k is a new tile iff k % period == 0.
    Not stored per iteration (leaf loops run to 10^5 iterations and the array leaf walk reads
    only the length, the period and the first two moves); the scalar walk iterates it."""

    __slots__ = ("n", "period", "new", "old")

    def __init__(self, n: int, period: int, new: Mov, old: Mov):
        self.n, self.period, self.new, self.old = n, period, new, old

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(self.n))]
        if k < 0:
            k += self.n
        if not 0 <= k < self.n:
            raise IndexError(k)
        return self.new if k % self.period == 0 else self.old

    def __iter__(self):
        new, old, p = self.new, self.old, self.period
        return (new if k % p == 0 else old for k in range(self.n))


class _MovesList(list):
    """A non-leaf temporal tile's moves, stored (the scalar walk indexes them per iteration)."""

    period: int = 0


class _FastWalker(Walker):
    """Walker with the batch's shared caches (results are those of the plain Walker)."""

    def __init__(self, program: MappedProgram, arch, ev: "BatchEvaluator"):
        super().__init__(program, arch)
        self._ev = ev
        self._pre = {id(n): i for i, n in enumerate(ev.nodes)}

    def _temporal_moves(self, L, i):
        tile = L.node
        t, tag = tile.tensors[i], tile.tags[i]
        desc = L.desc[i][-1]
        order = [d for d in L.order if d in desc] + [d for d in desc if d not in L.order]
        key = ("mv", t, tag, tuple(order), tuple(sorted(desc.items())), L.iters[i], self._is_leaf(tile))
        hit = self._ev._moves.get(key)
        if hit is not None:
            return hit
        proj = self.proj(t, tag)
        proj_dims = {d for r in proj for d in r}
        radix = [desc[d][0] // max(desc[d][1], 1) if desc[d][1] else 1 for d in order]
        size = self._proj_size(proj, {d: s for d, (_, s) in desc.items()})
        n = L.iters[i]
        # the carry chain of iteration k reaches digit p iff k is a multiple of the product of
        # the radices below p; the first projected digit with radix > 1 decides reuse
        period = n
        prod = 1
        for d, r in zip(order, radix):
            if r > 1 and d in proj_dims:
                period = prod
                break
            prod *= r
        period = max(period, 1)
        new, old = Mov(size, 1, 1), Mov(size, 0, 1)
        if self._is_leaf(tile):
            out = _Moves(max(n, 1), period, new, old)
        else:
            out = _MovesList(([new] + [old] * (period - 1)) * (n // period)
                             + ([new] + [old] * (n % period - 1))[:n % period] if n else [new])
            out.period = period
        # Mov objects are never mutated by the walk, so sharing them is safe
        self._ev._moves[key] = out
        return out

    def visit(self, n) -> None:
        # a leaf's reuse/actual counts from the moves' period instead of counting the list
        # (Walker.visit's leaf branch otherwise; the compute child has nothing to visit)
        if isinstance(n, TileNode) and self._is_leaf(n):
            dm = self.dm[id(n)]
            if all(isinstance(m, _Moves) for m in dm):
                L = self.loop[id(n)]
                for i, tag in enumerate(n.tags):
                    act = (len(dm[i]) - 1) // dm[i].period + 1
                    key = (L.tids[i], tag)
                    self.reuse.setdefault(id(n), {})[key] = (L.iters[i] // act if act else 0) or 1
                    self.actual.setdefault(id(n), {})[key] = act
                self._visit_leaf(n, L)
                return
        super().visit(n)

    def _move_time(self, mv, L, i, target, child):
        tile = L.node
        key = (mv.unique, mv.size, mv.count, L.rw[i], tile.rmw[i], tile.precision[i], target, child)
        hit = self._ev._mt.get(key)
        if hit is None:
            hit = self._ev._mt[key] = super()._move_time(mv, L, i, target, child)
        return hit

    def _visit_leaf(self, n: TileNode, L) -> None:
        op: ComputeNode = self.kids[id(n)][0]
        key = ("leaf", self._pre[id(n)], n.order, tuple(L.iters), tuple(L.rts), tuple(L.rw), tuple(L.tids),
               repr(L.desc), tuple(sorted(op.tile_primitive.items())), tuple(op.reduction_dims),
               tuple(op.reduction_factors), op.rmw, op.specd, op.unit, tuple(n.child_levels))
        hit = self._ev._leaves.get(key)
        if hit is None:
            if not visit_leaf(self, n, L):
                super()._visit_leaf(n, L)
            hit = (self.cost[id(n)], self.arch_cost[id(n)][id(op)], self.level_cost[id(n)][id(op)],
                   [copy.copy(a) for a in self.access[id(n)]], dict(self.rampup.get(id(n), {})),
                   dict(self.rampdown.get(id(n), {})), self.comp_time[op.name])
            self._ev._leaves[key] = hit
            return
        cost, ac, nlc, acc, ru, rd, ct = hit
        self.cost[id(n)] = cost
        self.arch_cost[id(n)] = {id(op): ac}
        self.level_cost[id(n)] = {id(op): nlc}
        self.access[id(n)] = [copy.copy(a) for a in acc]
        if ru:
            self.rampup[id(n)] = dict(ru)
        if rd:
            self.rampdown[id(n)] = dict(rd)
        self.comp_time[op.name] = ct


def _totals(w: Walker, program: MappedProgram) -> tuple[float, float]:
    """latency_cycles and energy_pj exactly as estimate_program sums them."""
    from comet_ir.backends.cost.model import latency_rows

    total = 0
    energy = 0.0
    for n in _preorder(program.root):
        if isinstance(n, (TileNode, ColOpNode)):
            energy += sum(w.energy.get(id(n), {}).values()) + sum(w.noc.get(id(n), {}).values())
        cs, os_, ct, ov, _ = latency_rows(w, n, with_detail=False)
        total += cs + os_ + ct - ov
    return float(total), energy


class BatchEvaluator:
    """Prices candidates of one program template; caches live as long as the evaluator.

    `space` is a FactorSpace of `program` (built when omitted); a candidate is one value per
    slot (`space.slots`) and one loop order per temporal tile (`self.tiles`, pre-order)."""

    def __init__(self, program: MappedProgram, accel, space=None, per_op: bool = False):
        from comet_ir.backends.cost.model import _check_units
        from comet_ir.schedule.factors import FactorSpace

        if space is None:
            space = FactorSpace(program, accel, per_op=per_op)
        self.space, self.accel = space, accel
        self.program = copy.deepcopy(space.program)
        self.nodes = _preorder(self.program.root)
        self.tiles = [i for i, n in enumerate(self.nodes) if getattr(n, "kind", "") == "temporal"]
        self.template_orders = tuple(self.nodes[i].order for i in self.tiles)
        self.template_values = tuple(s.value for s in space.slots)
        # compute slots rewrite steps relative to the template: keep pristine copies
        self._pristine = {i: (copy.deepcopy(n.tile_steps), dict(n.tile_primitive), list(n.reduction_factors))
                          for i, n in enumerate(self.nodes) if isinstance(n, ComputeNode)}
        self._moves: dict = {}
        self._mt: dict = {}
        self._leaves: dict = {}
        _check_units(self.program, accel)
        from comet_ir.backends.cost.batched_split import SplitPlan

        self.split = SplitPlan.build(self)  # None: this tree shape is priced by the scalar walk

    def _apply(self, values, orders, only: set | None = None) -> None:
        """Write a candidate into self.program (`only`: just these pre-order nodes)."""
        for i, (st, prim, red) in self._pristine.items():
            if only is not None and i not in only:
                continue
            n = self.nodes[i]
            n.tile_steps = {t: dict(v) for t, v in st.items()}
            n.tile_primitive, n.reduction_factors = dict(prim), list(red)
        for s, v in zip(self.space.slots, values):
            if only is not None and s.node_index not in only:
                continue
            n = self.nodes[s.node_index]
            v = int(v)
            if s.is_compute:
                for st in n.tile_steps.values():
                    if s.dim in st:
                        st[s.dim] = v
                if s.dim in n.tile_primitive:
                    n.tile_primitive[s.dim] = v
                for k, d in enumerate(n.reduction_dims):
                    if d == s.dim and n.reduction_factors[k] == s.value:
                        n.reduction_factors[k] = v
            else:
                for i in s.members:
                    n.factors[0][s.dim][i] = v
        for i, o in zip(self.tiles, orders):
            if only is None or i in only:
                self.nodes[i].order = o

    def one(self, values, orders) -> tuple[float, float]:
        """Latency and energy of one candidate (raises CometError as the single path does)."""
        from comet_ir.backends.cost.model import _check_fits

        self._apply(values, orders)
        _check_fits(self.program, self.accel)
        w = _FastWalker(self.program, self.accel, self)
        w.build_loops()
        w.build_movement()
        w.visit(self.program.root)
        estimate_energy(w)
        return _totals(w, self.program)

    def evaluate(self, values, orders=None) -> BatchResult:
        vals = np.asarray(values, dtype=np.int64)
        if vals.ndim != 2 or vals.shape[1] != len(self.space.slots):
            raise CometError(f"evaluate_batch: values must be (candidates, {len(self.space.slots)} slots), "
                             f"got shape {vals.shape}")
        b = vals.shape[0]
        if orders is None:
            oidx = np.zeros(b, dtype=np.int64)
            table = [self.template_orders]
        else:
            rows = list(map(tuple, orders))
            table = list(dict.fromkeys(rows))
            if len(rows) != b or any(len(r) != len(self.tiles) for r in table):
                raise CometError(f"evaluate_batch: orders must be (candidates, {len(self.tiles)} temporal tiles)")
            pos = {r: k for k, r in enumerate(table)}
            oidx = np.fromiter(map(pos.__getitem__, rows), dtype=np.int64, count=b)
        from comet_ir.backends.cost.batched_split import unique_rows

        lat = np.full(b, np.nan)
        en = np.full(b, np.nan)
        todo = np.arange(b)
        if self.split is not None and b:
            # the split plan shares everything shared between rows (repeats included)
            try:
                lat, en, priced = self.split.evaluate(vals, oidx, table)
                todo = np.flatnonzero(~priced)
            except CometError:  # a representative the walk rejects: price row by row
                lat, en = np.full(b, np.nan), np.full(b, np.nan)
        errors: dict[int, str] = {}
        if len(todo):
            # the scalar walk, once per distinct row
            first, inverse = unique_rows(np.concatenate([vals[todo], oidx[todo, None]], axis=1))
            errs: dict[int, str] = {}
            ul, ue = np.full(len(first), np.nan), np.full(len(first), np.nan)
            for u, r in enumerate(todo[first].tolist()):
                try:
                    ul[u], ue[u] = self.one(vals[r], table[int(oidx[r])])
                except CometError as e:
                    errs[u] = str(e)
            lat[todo], en[todo] = ul[inverse], ue[inverse]
            if errs:
                errors = {int(todo[j]): errs[u] for j, u in enumerate(inverse.tolist()) if u in errs}
        return BatchResult(lat, en, ~np.isnan(lat), errors)


def evaluate_batch(program: MappedProgram, values, orders=None, accel=None, space=None) -> BatchResult:
    """Latency and energy of B candidates of `program` on `accel` (see BatchEvaluator)."""
    return BatchEvaluator(program, accel, space=space).evaluate(values, orders)
