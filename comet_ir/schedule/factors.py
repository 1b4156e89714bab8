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
- (capacity=True, an accelerator given) every temporal tile's live tiles fit each SRAM child
  level, counted exactly as comet-verify-capacity counts them (`check_capacity`: per level the
  sum over tensors of the largest (tensor, op) tile, doubled). The rule is not re-derived: each
  pair's bytes are read off `resident_bytes` itself on a copy whose slots hold distinct marker
  primes (a pair's element count is C x prod v_s^m_s, a monomial in the slot values), then
  modelled exactly in CP-SAT (slot values tied to their exponents by a table over the divisor
  set, products by AddMultiplicationEquality, max over ops, sum <= capacity). The cost model
  keeps its own check, so the constraint only removes candidates the evaluator would reject.

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
    def __init__(self, program: MappedProgram, accel=None, per_op: bool = False, capacity: bool = True):
        self.program = program
        self.capacity = capacity
        self._cap_terms = None
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
        if self.capacity and self.accel is not None:
            # a slot's exponent of p is at most what the pairs through it hold in total
            bound = {}
            for si, s in enumerate(self.slots):
                for p in self.primes:
                    bound[(si, p)] = min(totals[(t, g, s.dim, p)] for t, g in self._pairs(s))
                    m.add(x[(si, p)] <= bound[(si, p)])
            self._bound_capacity(m, x, bound)
        return m, x

    def capacity_terms(self):
        """Per (temporal tile, SRAM level): (capacity, {tensor: [(op, C, {slot: mult}, precision)]})
        with the pair's element count C x prod value(slot)^mult, read off
        verify_capacity.resident_bytes on marker primes (so the rule is that pass's own)."""
        if self._cap_terms is not None:
            return self._cap_terms
        from comet_ir.passes.verify_capacity import resident_bytes

        acc = self.accel
        cap = {lv.name: acc.memory_types[lv.type].capacity for lv in acc.levels.values()
               if not lv.is_compute and acc.memory_types[lv.type].kind == "SRAM"}
        # marker primes above every factor of the program: a marker's power in a count is the
        # number of times its slot multiplies into it, the cofactor is the fixed part
        big = max([s.value for s in self.slots] + [8])
        for n in self.nodes:
            if isinstance(n, TileNode):
                big = max([big] + [f for lvl in n.factors for fs in lvl.values() for f in fs])
            elif isinstance(n, ComputeNode):
                big = max([big] + [v for st in n.tile_steps.values() for v in st.values()])
        markers, q = [], big + 1
        while len(markers) < len(self.slots):
            if all(q % d for d in range(2, int(q ** 0.5) + 1)):
                markers.append(q)
            q += 1
        marked = self.apply(tuple(markers))
        mnodes = _preorder(marked.root)
        out = []
        for ni, (n, mn) in enumerate(zip(self.nodes, mnodes)):
            if not (isinstance(n, TileNode) and n.kind == "temporal"):
                continue
            prec = list(mn.precision)
            mn.precision = [8] * len(prec)  # bytes == elements: the count itself
            per_level: dict[str, dict[str, list]] = {}
            for i, (t, g, lvl, elems) in enumerate(resident_bytes(marked, mn)):
                if lvl not in cap:
                    continue
                mult = {}
                for si, qm in enumerate(markers):
                    while elems % qm == 0:
                        elems //= qm
                        mult[si] = mult.get(si, 0) + 1
                per_level.setdefault(lvl, {}).setdefault(t, []).append((g, elems, mult, prec[i]))
            mn.precision = prec
            for lvl, tensors in per_level.items():
                out.append((ni, lvl, cap[lvl], tensors))
        self._cap_terms = out
        return out

    def _bound_capacity(self, m, x, bound) -> None:
        k = 2  # double buffering, as check_capacity(double_buffer=True) and the cost model count
        values: dict[int, object] = {}

        def value(si):
            if si not in values:
                import itertools

                ps = self.primes
                table = [list(es) + [math.prod(p ** e for p, e in zip(ps, es))]
                         for es in itertools.product(*[range(bound[(si, p)] + 1) for p in ps])]
                v = m.new_int_var(1, max(r[-1] for r in table), f"v{si}")
                m.add_allowed_assignments([x[(si, p)] for p in ps] + [v], table)
                values[si] = v
            return values[si]

        for ni, lvl, cap, tensors in self.capacity_terms():
            per_tensor = []
            for t, pairs in tensors.items():
                bs = []
                for g, c, mult, prec in pairs:
                    # feasible => k * bytes <= cap => c * prec * prod < 8 * (cap // k + 1)
                    ub = 8 * (cap // k + 1) // (c * prec) + 1
                    factors = [value(si) for si, e in sorted(mult.items()) for _ in range(e)]
                    if not factors:
                        prod = 1
                    else:
                        prod = factors[0]
                        for f in factors[1:]:
                            nxt = m.new_int_var(1, max(ub, 1), "")
                            m.add_multiplication_equality(nxt, [prod, f])
                            prod = nxt
                        if len(factors) == 1:
                            m.add(prod <= max(ub, 1))
                    if ub < 1:
                        m.add_bool_or([])  # nothing fits: infeasible
                    # bytes = max(1, c * prod * prec // 8), exactly as resident_bytes
                    if (c * prec) % 8 == 0:
                        b = prod * (c * prec // 8) if not isinstance(prod, int) else c * prec // 8
                        if (c * prec) // 8 == 0:
                            b = 1
                    else:
                        fl = m.new_int_var(0, cap, "")
                        m.add(8 * fl <= c * prec * prod)
                        m.add(c * prec * prod <= 8 * fl + 7)
                        b = m.new_int_var(1, cap + 1, "")
                        m.add_max_equality(b, [fl, 1])
                    bs.append(b)
                if len(bs) == 1:
                    per_tensor.append(bs[0])
                else:
                    mx = m.new_int_var(1, cap + 1, "")
                    m.add_max_equality(mx, bs)
                    per_tensor.append(mx)
            m.add(k * sum(per_tensor) <= cap)

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
