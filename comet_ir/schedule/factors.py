"""The tiling space of a mapped program as a CP-SAT model (log domain), for comet-map.

A *slot* is one loop factor that may change: (temporal tile, dimension, group of tensors whose
factor for that dimension is equal in the given program) or (compute op, dimension) for its
tile steps (all tensors' steps and the primitive together). Each slot's value is written as
prod p^x_p over the primes of the program's factors, with integer exponents x_p: products
become sums, divisibility is built in. Spatial tiles stay fixed (their collectives depend on
them).

Constraints:
- every (tensor, served op) pair keeps, per dimension and prime, the exponent sum over the
  slots that hold it: the same workload, the same number of visits, only moved between loop
  levels (the reference validator's rule, applied to every pair, not only the outermost);
- a MAC primitive keeps M x N within the array (ops per cycle); a SIMD step within
  max(lanes, its given size) elements.
Capacity (double-buffered tiles in each memory) is left to the cost model's own check, which
rejects a candidate that does not fit.

`enumerate_solutions` lists the feasible exponent vectors (CP-SAT's solution enumeration, one
worker, so the order is reproducible); `apply` builds the program of one vector.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from comet_ir.spec.mapping_tree import ComputeNode, MappedProgram, TileNode


def _primes(n: int) -> dict[int, int]:
    out, p = {}, 2
    while p * p <= n:
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
        p += 1
    if n > 1:
        out[n] = out.get(n, 0) + 1
    return out


@dataclass
class Slot:
    node_index: int  # pre-order index of the tile / compute node
    dim: str
    members: list[int]  # tensor indices (tile) or [] for a compute node
    value: int
    is_compute: bool = False


def _preorder(node) -> list:
    from comet_ir.schedule.graph import preorder

    return preorder(node)


class FactorSpace:
    def __init__(self, program: MappedProgram, accel=None, per_op: bool = False):
        self.program = program
        self.nodes = _preorder(program.root)
        self.slots: list[Slot] = []
        self.fixed: dict[tuple[str, str, str], int] = {}
        for ni, n in enumerate(self.nodes):
            if isinstance(n, TileNode) and n.kind == "temporal" and n.factors:
                for d, fs in n.factors[0].items():
                    groups: dict[int, list[int]] = {}
                    for i, f in enumerate(fs):
                        # per_op: the tensors of one served op share the op's loop, so they stay
                        # tied; different ops fused in one tile may loop differently (the
                        # reference mapper's per-op constants, e.g. M_A_DRAM vs M_H_DRAM)
                        groups.setdefault((n.tags[i], f) if per_op else f, []).append(i)
                    for members in groups.values():
                        self.slots.append(Slot(ni, d, members, fs[members[0]]))
            elif isinstance(n, ComputeNode) and n.tile_steps:
                dims = {d for st in n.tile_steps.values() for d in st}
                for d in sorted(dims):
                    vals = {st.get(d) for st in n.tile_steps.values()}
                    prim = n.tile_primitive.get(d)
                    if len(vals) == 1 and (prim is None or prim in vals):
                        self.slots.append(Slot(ni, d, [], vals.pop(), is_compute=True))
        self.primes = sorted({p for s in self.slots for p in _primes(s.value)})
        self.accel = accel

    # pairs (tensor, tag) held by a slot
    def _pairs(self, s: Slot) -> list[tuple[str, str]]:
        n = self.nodes[s.node_index]
        if s.is_compute:
            return [(t, n.name) for t in n.tile_steps]
        return [(n.tensors[i], n.tags[i]) for i in s.members]

    def model(self):
        from ortools.sat.python import cp_model

        m = cp_model.CpModel()
        x: dict[tuple[int, int], object] = {}
        sums: dict[tuple[str, str, str, int], list] = {}
        totals: dict[tuple[str, str, str, int], int] = {}
        for si, s in enumerate(self.slots):
            e = _primes(s.value)
            for p in self.primes:
                # a slot can take at most what the pairs through it hold in total
                x[(si, p)] = m.new_int_var(0, 64, f"x{si}_{p}")
                for t, g in self._pairs(s):
                    key = (t, g, s.dim, p)
                    sums.setdefault(key, []).append(x[(si, p)])
                    totals[key] = totals.get(key, 0) + e.get(p, 0)
        for key, vs in sums.items():
            m.add(sum(vs) == totals[key])
        self._bound_compute(m, x)
        return m, x

    def _bound_compute(self, m, x) -> None:
        if self.accel is None:
            return
        by_node: dict[int, list[int]] = {}
        for si, s in enumerate(self.slots):
            if s.is_compute:
                by_node.setdefault(s.node_index, []).append(si)
        for ni, sis in by_node.items():
            n = self.nodes[ni]
            try:
                ct = self.accel.compute(n.unit)
            except Exception:  # noqa: BLE001 - unit unknown: the cost model reports it
                continue
            if ct.kind == "mac":
                dims, cap = {"M", "N"}, ct.ops_per_cycle
            else:
                out_t = n.tensors[-1] if n.tensors else None
                idx = {d for o in self.program.problem.ops if o.name == n.name
                       for tp in o.tensors if tp.name == (n.tensors[0] if n.tensors else out_t)
                       for r in tp.projection for d in r}
                dims = idx
                given = math.prod(self.slots[si].value for si in sis if self.slots[si].dim in idx)
                cap = max(ct.ops_per_cycle, given)
            terms = [(si, p) for si in sis if self.slots[si].dim in dims for p in self.primes]
            if not terms or cap <= 0:
                continue
            scale = 1000
            m.add(sum(int(math.log(p) * scale) * x[(si, p)] for si, p in terms)
                  <= int(math.log(cap) * scale + 1))

    def _exponents(self, values: tuple[int, ...]) -> dict[tuple[int, int], int]:
        return {(si, p): _primes(v).get(p, 0) for si, v in enumerate(values) for p in self.primes}

    def enumerate_solutions(self, cap: int = 200000, around: tuple[int, ...] | None = None,
                            radius: int = 0, time_limit: float = 20.0) -> list[tuple[int, ...]]:
        """Feasible slot values (one tuple per solution). With `around`, only those whose
        exponents differ from it by at most `radius` in total (a neighbourhood: radius 2 moves
        one prime factor from one loop level to another). The given/centre vector comes first."""
        from ortools.sat.python import cp_model

        m, x = self.model()
        centre = around or tuple(s.value for s in self.slots)
        if around is not None:
            e0 = self._exponents(around)
            devs = []
            for key, var in x.items():
                d = m.new_int_var(0, 64, "")
                m.add_abs_equality(d, var - e0[key])
                devs.append(d)
            m.add(sum(devs) <= radius)
        out: list[tuple[int, ...]] = [centre]
        seen = {centre}
        slots, primes = self.slots, self.primes

        class Collect(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(self):
                v = tuple(math.prod(p ** self.value(x[(si, p)]) for p in primes) for si in range(len(slots)))
                if v not in seen:
                    seen.add(v)
                    out.append(v)
                if len(out) >= cap:
                    self.stop_search()

        solver = cp_model.CpSolver()
        solver.parameters.enumerate_all_solutions = True
        solver.parameters.num_workers = 1
        solver.parameters.max_time_in_seconds = time_limit
        status = solver.solve(m, Collect())
        # complete: every solution was seen (not cut by the cap or the time limit); only then may
        # a search over `out` call itself exhaustive
        self.last_complete = status in (cp_model.OPTIMAL, cp_model.INFEASIBLE) and len(out) < cap
        return out

    def apply(self, values: tuple[int, ...]) -> MappedProgram:
        prog = copy.deepcopy(self.program)
        nodes = _preorder(prog.root)
        for s, v in zip(self.slots, values):
            n = nodes[s.node_index]
            if s.is_compute:
                old = s.value
                for st in n.tile_steps.values():
                    if s.dim in st:
                        st[s.dim] = v
                if s.dim in n.tile_primitive:
                    n.tile_primitive[s.dim] = v
                for k, d in enumerate(n.reduction_dims):
                    if d == s.dim and n.reduction_factors[k] == old:
                        n.reduction_factors[k] = v
            else:
                for i in s.members:
                    n.factors[0][s.dim][i] = v
        return prog

    def distance(self, a: tuple[int, ...], b: tuple[int, ...]) -> int:
        """Primes moved between a and b (L1 distance of the exponent vectors / 2)."""
        d = 0
        for va, vb in zip(a, b):
            if va != vb:
                ea, eb = _primes(va), _primes(vb)
                d += sum(abs(ea.get(p, 0) - eb.get(p, 0)) for p in set(ea) | set(eb))
        return d


def order_choices(tile: TileNode) -> list[str]:
    """Loop orders that differ for the cost model: permutations of the dims whose factor is
    not 1 for some tensor (unit loops do not reorder anything), the rest kept behind."""
    import itertools

    if not tile.factors:
        return [tile.order]
    live = [d for d in tile.order if any(f > 1 for f in tile.factors[0].get(d, [1]))]
    live += [d for d in tile.factors[0] if d not in tile.order and any(f > 1 for f in tile.factors[0][d])]
    rest = [d for d in tile.order if d not in live]
    if len(live) <= 1:
        return [tile.order]
    return ["".join(p) + "".join(rest) for p in itertools.permutations(live)]
