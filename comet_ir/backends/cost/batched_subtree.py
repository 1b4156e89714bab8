"""A split-plan subtree priced as array code over all its distinct inputs at once (exact).

batched_split.SplitPlan prices every distinct (upper key, subtree key) pair of a batch; a
subtree-only walk (Python, ~1 ms) per pair was most of a batch's time. For the common subtree
shape -- a spatial tile P with one child, a leaf tile T around one compute C, then the
collectives that follow it under S -- this module computes the same numbers for all pairs of
one upper key with numpy over the pairs (arrays of length Q, one entry per pair):

* the loop nest (`Walker._loops`) as products of slot columns; what the subtree exports upwards
  (the strides of the pairs the chain and S hold) comes from it too, so the upper key needs no
  walk per distinct subtree key;
* T (`batched_leaf.visit_leaf`, closed form): with every tensor on the same iteration count n
  (no `different` re-indexing), a tensor's moves are periodic with a period p dividing n, so the
  iterations `evaluate` lists (k = 0, p, 2p, ...) are all new tiles: its transfer is one value
  E, its window the constant rts x t_op x p less what the tensors merged before it on the same
  memory port moved (a constant per-substep amount E_a // p_a over one contiguous range, so the
  window changes only at the ends of that range); each tensor's stall is then a step function
  with a handful of breakpoints, evaluated on the union of all tensors' breakpoints and merged
  as `node_cost_of` does (first memory replaces, write port from iteration 1, later memories
  max);
* P (`_visit_spatial`, `target_child_cost`, `evaluate`, `node1_node2`, `node_cost_of`): its
  iteration space, moves pattern and reuse come from S (fixed by the upper key), so its walk is
  the scalar code run once with arrays for the values that vary (tile sizes, move times, T's
  cost and ramp-ups, the port use of T);
* the energy walk (`steady_state._energy`) for P and T with the count maps S hands its children
  (fixed by the upper key): the same expressions in the same order on arrays (float products
  and sums are elementwise IEEE operations, so bit-equal); a node's energy total is summed per
  pair with Python's sum, as the single path does;
* collectives after the subtree: `collective_cost` once per distinct input size.

Pairs outside the covered case (different iteration counts in T, a move time that is not a
non-negative int, an empty or 32-bit-wrapping compute window, a product that could leave int64)
are returned as not covered and the caller walks them one by one. tests/unit/test_cost_batched.py
checks the kernel against the plain walk of each candidate (hypothesis); the split plan runs each
kernel once against the full walk of the template candidate before using it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from comet_ir.backends.cost import units
from comet_ir.backends.cost.steady_state import U32, Access, Mov, Walker, _copy, _find_count, collective_cost
from comet_ir.spec.mapping_tree import ComputeNode, TileNode

_I64 = np.int64


def _i32(v):
    return ((v & U32) ^ 0x80000000) - 0x80000000


def _col(x, q: int) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.shape == (q,):
        return x
    return np.full(q, x, dtype=_I64)


def _proj_size(proj, ext: dict, q: int, dtype=_I64):
    out = np.ones(q, dtype=dtype)
    for rank in proj:
        s = np.zeros(q, dtype=dtype)
        for d in rank:
            if d in ext:
                s = s + ext[d]
        out = out * s
    return out


_BIG = float(1 << 61)  # int64 products are exact below this; a pair that could reach it is walked


def _small(*factors) -> np.ndarray:
    """Whether the product of non-negative factors stays below _BIG (estimated in floats): the
    scalar walk's ints are unbounded, int64 is not."""
    f = 1.0
    for x in factors:
        f = f * np.asarray(x, dtype=np.float64)
    return f < _BIG


def _by_value(keys: np.ndarray, fn, *dtypes):
    """fn(*row) once per distinct row of `keys` (Q, k); fn returns a tuple of len(dtypes)
    numbers; the results as arrays over the Q pairs."""
    from comet_ir.backends.cost.batched_split import unique_rows

    keys = np.asarray(keys, dtype=_I64)
    first, inv = unique_rows(keys)
    vals = [fn(*row) for row in keys[first].tolist()]
    return [np.array([v[j] for v in vals], dtype=dt)[inv] for j, dt in enumerate(dtypes)]


def _move_times(w, reqs) -> list:
    """Walker._move_time for requests (loop, tensor, target, child, unique, count, sizes (Q,)),
    once per distinct (request, size): per request (memory + link cycles, NoC pJ, both ints,
    both >= 0, sizes)."""
    from comet_ir.backends.cost.batched_split import unique_codes

    if not reqs:
        return []
    q = len(reqs[0][6])
    top = max(int(r[6].max()) for r in reqs) + 1 if q else 1
    if top * len(reqs) >= 1 << 62:  # one code per (request, size) would not fit: one by one
        out = []
        for r in reqs:
            out += _move_times(w, [r]) if top < 1 << 62 else [(np.zeros(q, dtype=_I64), np.zeros(q),
                                                                np.zeros(q, dtype=bool), np.zeros(q, dtype=bool),
                                                                r[6])]
        return out
    code = np.concatenate([j * top + np.maximum(r[6], 0) for j, r in enumerate(reqs)])
    first, inv = unique_codes(code)
    vals = []
    for c in code[first].tolist():
        L, i, tgt, chl, u, cnt, _ = reqs[c // top]
        try:
            m, t, e = w._move_time(Mov(c % top, u, cnt), L, i, tgt, chl)
        except Exception:  # noqa: BLE001 - the scalar walk raises / prices it
            vals.append((0, 0.0, False, False))
            continue
        good = isinstance(m, int) and isinstance(t, int) and abs(m) < 1 << 60 and abs(t) < 1 << 60
        vals.append((m + t if good else 0, e, good, good and m >= 0 and t >= 0))
    cols = [np.array([v[k] for v in vals], dtype=dt)[inv] for k, dt in
            enumerate((_I64, np.float64, bool, bool))]
    return [tuple(c[j * q:(j + 1) * q] for c in cols) + (r[6],) for j, r in enumerate(reqs)]


@dataclass
class SubtreeResult:
    ok: np.ndarray  # bool (Q,): covered; the other fields are meaningful only there
    cost: np.ndarray  # cost of the subtree (P), int64
    col_costs: list  # per owned collective: its cost (int64 arrays)
    node_lat: dict  # pre-order position -> int64 array (stalls x executions, model._row)
    node_en: dict  # pre-order position -> float64 array (energy + NoC energy of the node)


class _VTC:
    """steady_state.TC with array-valued fields (a merged port or one tensor's transfers)."""

    __slots__ = ("n", "compute_time", "mem_net", "stall", "cstall", "ctv", "reuse", "hide", "cum", "ramp_up",
                 "ramp_down", "access", "tile", "noc")

    def __init__(self, n=0):
        self.n, self.compute_time, self.reuse, self.hide = n, 0, 0, True
        self.mem_net, self.stall, self.cstall, self.ctv = [0] * n, [0] * n, [0] * n, [0] * n
        self.cum = self.ramp_up = self.ramp_down = 0
        self.access, self.tile, self.noc = 1, 1, 0.0


class SubtreeKernel:
    """Array pricing of subtree i of a SplitPlan (see the module docstring)."""

    @staticmethod
    def build(plan, i: int) -> "SubtreeKernel | None":
        try:
            return SubtreeKernel(plan, i)
        except _NoFit:
            return None

    def __init__(self, plan, i: int):
        ev = plan.ev
        self.plan, self.ev, self.i = plan, ev, i
        P = plan.subs[i]
        if not (isinstance(P, TileNode) and P.kind == "spatial" and len(P.body) == 1
                and isinstance(P.body[0], TileNode)):
            raise _NoFit
        T = P.body[0]
        if not (T.kind == "temporal" and len(T.body) == 1 and isinstance(T.body[0], ComputeNode) and T.factors):
            raise _NoFit
        C = T.body[0]
        if not any(g in T.tags for g in P.tags):
            raise _NoFit  # P's untouched-child branch is not covered
        S = plan.S
        pos = {id(n): k for k, n in enumerate(ev.nodes)}
        self.P, self.T, self.C, self.S = P, T, C, S
        self.pP, self.pT, self.pC = pos[id(P)], pos[id(T)], pos[id(C)]
        self.cols = sorted(p for p, o in plan.colops.items() if o == i)
        # where each slot lands: (tile factors: level 0, dim, tensor) or (compute: dim)
        self.t_slot: dict = {}
        self.c_slot: dict = {}
        for j, s in enumerate(ev.space.slots):
            if s.node_index == self.pP:
                raise _NoFit  # spatial factors as slots: P's moves would vary per pair
            if s.node_index == self.pT and not s.is_compute:
                for m in s.members:
                    self.t_slot[(s.dim, m)] = j
            elif s.node_index == self.pC and s.is_compute:
                self.c_slot[s.dim] = (j, s.value)
            elif s.node_index in (self.pT, self.pC):
                raise _NoFit
        self.tile_k = plan.sub_tiles[i]
        if len(self.tile_k) != 1 or ev.tiles[self.tile_k[0]] != self.pT:
            raise _NoFit
        # what the walk reads of the tree and the architecture, once (Walker on the template)
        w = plan.loops_walker
        a = ev.accel
        self.upper_pairs = plan.upper_pairs
        self.out_of = {o.out for o in ev.program.problem.ops}
        self.dims = list(w.dims)
        tid = lambda t: w.tid.get(t, len(w.tid))  # noqa: E731 - Walker._loops' rule
        # T: per tensor
        nT = len(T.tensors)
        self.T_rw = [bool(w.is_rw(t, g)) for t, g in zip(T.tensors, T.tags)]
        self.T_tid = [tid(t) for t in T.tensors]
        self.T_proj = [w.proj(t, g) for t, g in zip(T.tensors, T.tags)]
        self.T_last = [list(T.factors[-1]) for _ in range(nT)]  # desc[-1]'s dims, in order
        self.T_L = SimpleNamespace(node=T, rw=self.T_rw)  # what _move_time reads of a Loop
        self._perms: dict = {}
        unit = T.child_levels[0]
        if not a.level(unit).is_compute:
            raise _NoFit  # the scalar walk raises the located error
        if any(a.memory(t).dma_contiguous for t in T.targets):
            raise _NoFit  # no preset has a DMA-contiguous leaf target: the scalar walk
        self.unit, self.ctu, self.opc = unit, a.compute(unit), units.op_class(C.op_type)
        self.prim_dims = [d for d in w.dims if d in C.tile_primitive] + \
            [d for d in C.tile_primitive if d not in w.dims]
        self.edims = [d for d in w.dims if d in C.tile_primitive]
        pairs: dict = {}
        for k in range(nT):
            pairs.setdefault((T.targets[k], T.child_levels[k]), []).append(k)
        self.T_ports: dict = {}  # target -> [[tensors on port 0], [port 1]] in node1_node2's order
        for pr in sorted(pairs, key=w.pair_key):
            pp = self.T_ports.setdefault(pr[0], [[], []])
            for idx in (0, 1):
                pp[idx] += [k for k in pairs[pr] if (1 if self.T_rw[k] else 0) == idx]
        self.T_levels = sorted(self.T_ports, key=w.seq)
        self.T_before = {}
        for pp in self.T_ports.values():
            for idx in (0, 1):
                for k, b in enumerate(pp[idx]):
                    self.T_before[b] = pp[idx][:k]
        self.T_ramp_lv: dict = {}
        for k in range(nT):
            if not self.T_rw[k]:
                self.T_ramp_lv.setdefault(T.targets[k], []).append(k)
        # P: per tensor
        nP = len(P.tensors)
        self.P_rw = [bool(w.is_rw(t, g)) for t, g in zip(P.tensors, P.tags)]
        self.P_tid = [tid(t) for t in P.tensors]
        self.P_proj = [w.proj(t, g) for t, g in zip(P.tensors, P.tags)]
        self.P_L = SimpleNamespace(node=P, rw=self.P_rw)
        self.P_uniq, self.P_sp = [], []
        for k in range(nP):
            pd = {d for r in self.P_proj[k] for d in r}
            u, sp = 1, 1
            for lvl in P.factors:
                for d, fs in lvl.items():
                    sp *= fs[k]
                    if d in pd:
                        u *= fs[k]
            self.P_uniq.append(u)
            self.P_sp.append(sp)
        if any(u == 0 for u in self.P_uniq):
            raise _NoFit
        seqb = w.binding_of(P) == "sequential"
        self.P_hide = [(t not in w.intermediate) if seqb else True for t in P.tensors]
        self.P_hit = [g in T.tags for g in P.tags]
        # _spatial_moves: P's slot in S per tensor (the reference's stale-index quirk included)
        self.P_child, self.P_inherit = [], []
        ci = 0
        for t, g, tg in zip(P.tensors, P.tags, P.targets):
            for j, (pt, ptag) in enumerate(zip(S.tensors, S.tags)):
                if pt == t and ptag == g:
                    ci = j
                    break
            self.P_child.append(ci)
            js = [j for j, (pt, ptag) in enumerate(zip(S.tensors, S.tags)) if pt == t and ptag == g]
            self.P_inherit.append(js[-1] if tg == S.targets[ci] and js else None)
        self.P_pairs = sorted({(P.targets[k], P.child_levels[k]) for k in range(nP) if self.P_hit[k]},
                              key=w.pair_key)
        self.P_levels_seq = {lv: w.seq(lv) for lv in set(P.targets) | set(T.targets)}
        self.shared = {c: (not a.level(c).is_compute) and a.memory(c).shared_ports for c in P.child_levels}
        self.port_use = any(self.shared.values())
        # energy walk: what _left_tids and the count maps' lookups read
        kids = w.kids[id(S)]
        left: list = []
        for c in kids:
            if c is P:
                break
            if isinstance(c, TileNode):
                for t in c.tensors:
                    if tid(t) not in left:
                        left.append(tid(t))
        self.P_left = left
        self.P_root_child = id(S) in w.top
        self.mem_cost = {}
        for X, rws in ((P, self.P_rw), (T, self.T_rw)):
            for lv in set(X.targets) | set(X.child_levels):
                if a.level(lv).is_compute:
                    continue
                m = a.memory(lv)
                for rw in (False, True):
                    for tgt in (False, True):
                        key = ("parent_write" if tgt else "child_read") if rw else ("parent_read" if tgt else "child_write")
                        self.mem_cost[(lv, rw, tgt)] = (m.energy.get(key, 0.0), m.width or 1)
        # collectives after the subtree
        self.col_info = []
        for p in self.cols:
            c = ev.nodes[p]
            k = kids.index(c)
            ops_left = [tg for x in kids[:k] if isinstance(x, TileNode) for t, tg in zip(x.tensors, x.tags)
                        if t == c.tensor_in]
            self.col_info.append((p, c, math.prod(a.level(s).count for s in c.src),
                                  math.prod(a.level(d).count for d in c.dest), w.proj(c.tensor_in, ""),
                                  w.tid.get(c.tensor_in, -1), ops_left[-1] if ops_left else None))

    def _perm(self, i: int, order: str) -> list:
        """Positions in T's last factor level of tensor i's loops, inner to outer, for `order`
        (_temporal_moves: the order's dims first, then the level's others)."""
        key = (i, order)
        hit = self._perms.get(key)
        if hit is None:
            dl = self.T_last[i]
            hit = self._perms[key] = [dl.index(d) for d in [d for d in order if d in dl] + [d for d in dl if d not in order]]
        return hit

    # ------------------------------------------------------------------ parameters per pair
    def _params(self, V: np.ndarray):
        """Factors of T (per level, dim, tensor) and C's steps / primitive / reduction factors,
        as BatchEvaluator._apply writes them (slot columns or the template's ints)."""
        T, C = self.T, self.C
        fac = []
        for li, lvl in enumerate(T.factors):
            fac.append({d: [V[:, self.t_slot[(d, m)]] if li == 0 and (d, m) in self.t_slot else fs[m]
                            for m in range(len(T.tensors))] for d, fs in lvl.items()})
        st0, prim0, red0 = self.ev._pristine[self.pC]
        cs = self.c_slot
        steps = {t: {d: (V[:, cs[d][0]] if d in cs else v) for d, v in st.items()} for t, st in st0.items()}
        prim = {d: (V[:, cs[d][0]] if d in cs else v) for d, v in prim0.items()}
        red = [V[:, cs[d][0]] if d in cs and red0[k] == cs[d][1] else red0[k]
               for k, d in enumerate(C.reduction_dims)]
        return fac, steps, prim, red

    def _loops(self, V: np.ndarray):
        """Walker._loops over C, T, P: strides, and per tile per tensor (desc, iters, rts)."""
        q = len(V)
        C = self.C
        fac, steps_c, prim, red = self._params(V)
        stride: dict = {}
        steps: dict = {}
        gemm = C.op_type.lower() == "gemm"
        for t in C.tensors:
            ts = dict(steps_c.get(t, prim))
            stride[(t, C.name)] = ts
            step = 1
            if gemm:
                for d, v in prim.items():
                    step = step * np.maximum(ts.get(d, v) // np.maximum(v, 1), 0)
            steps[(t, C.name)] = step
        loops = {}
        for X, F in ((self.T, fac), (self.P, self.P.factors)):
            desc, iters, rts = [], [], []
            temporal = X.kind == "temporal"
            for i, (t, tag) in enumerate(zip(X.tensors, X.tags)):
                key = (t, tag)
                prev = steps.get(key, 1)
                st = stride.setdefault(key, {})
                it, levels = 1, []
                for lvl in F:
                    d_ = {}
                    for d, fs in lvl.items():
                        f = fs[i]
                        s = st.get(d, 1)
                        d_[d] = (s * f, s)
                        st[d] = s * f
                        if temporal:
                            steps[key] = steps.get(key, 1) * f
                            it = it * f
                    levels.append(d_)
                desc.append(levels)
                rts.append(prev)
                iters.append(it)
            loops[id(X)] = (desc, iters, rts)
        return stride, loops, prim, red

    def exports(self, V: np.ndarray, orders: list) -> tuple:
        """((Q, k) int matrix equal between two pairs iff their exports (batched_split._exports)
        are: the strides left for the (tensor, op) pairs the chain and S hold; the loop nest,
        which `evaluate` takes for the same rows)."""
        q = len(V)
        nest = self._loops(V)
        stride = nest[0]
        cols = [np.zeros(q, dtype=_I64)]
        for k in sorted(k for k in stride if k in self.upper_pairs):
            for d in sorted(stride[k]):
                cols.append(_col(stride[k][d], q))
        return np.stack(cols, axis=1), nest

    # ------------------------------------------------------------------ the subtree
    def evaluate(self, w: Walker, V: np.ndarray, orders: list, nest=None) -> SubtreeResult:
        """All numbers of the subtree for Q pairs with the upper key of walker `w` (a walk of a
        candidate with that upper key: S's loop nest, moves and energy counts); `nest`: the loop
        nest `exports` returned for these rows."""
        q = len(V)
        P, T, C, S = self.P, self.T, self.C, self.S
        stride, loops, prim, red = nest if nest is not None else self._loops(V)
        descP = loops[id(P)][0]
        # every move time the subtree needs, once per distinct (tensor, move, size)
        LS = w.loop[id(S)]
        dmS = w.dm[id(S)]
        nP = len(P.tensors)
        patterns = []
        for i in range(nP):
            ci = self.P_child[i]
            pm = dmS[ci]
            patterns.append([not (k and pm[k].unique == 0) for k in range(LS.iters[ci])])
        reqs = []
        small = np.ones(q, dtype=bool)  # every tile size exact in int64
        for i in range(len(T.tensors)):
            ext = {d: s for d, (_, s) in loops[id(T)][0][i][-1].items()}
            sz = _col(_proj_size(self.T_proj[i], ext, q), q)
            small &= _small(_proj_size(self.T_proj[i], ext, q, np.float64))
            reqs.append((self.T_L, i, T.targets[i], T.child_levels[i], 1, 1, sz))
        for i in range(nP):
            if self.P_hit[i]:
                ext = {d: s for d, (_, s) in descP[i][0].items()}
                sz = _col(_proj_size(self.P_proj[i], ext, q), q)
                small &= _small(_proj_size(self.P_proj[i], ext, q, np.float64), 4 * max(len(patterns[i]), 1))
                for u in ((self.P_uniq[i], 0) if not all(patterns[i]) else (self.P_uniq[i],)):
                    reqs.append((self.P_L, i, P.targets[i], P.child_levels[i], u, self.P_sp[i], sz))
        if not small.all():  # a size that may have wrapped is looked up as 0, its pair walked
            reqs = [r[:6] + (np.where(small, r[6], 0),) for r in reqs]
        mts = iter(_move_times(w, reqs))
        ok = small.copy()
        # ---- T: moves (closed form of _FastWalker._temporal_moves), compute time
        descT, itersT, rtsT = loops[id(T)]
        nT = len(T.tensors)
        rw = self.T_rw
        n = _col(itersT[0], q)
        for it in itersT[1:]:
            ok &= it == n
        ok &= n >= 1
        npd = len(self.prim_dims)
        ctu, opc, prim_dims, edims = self.ctu, self.opc, self.prim_dims, self.edims

        def _unit(*row):
            red_ = dict(zip(C.reduction_dims, row[npd:]))
            t_op = units.unit_latency(ctu, list(row[:npd]), prim_dims, opc, C.reduction_dims, red_, C.rmw, C.specd)
            pm = dict(zip(prim_dims, row[:npd]))
            try:
                e = float(units.unit_energy_per_invocation(ctu, [pm[d] for d in edims], opc))
            except OverflowError:
                return -1, 0.0
            return (t_op if isinstance(t_op, int) and 0 <= t_op < 1 << 62 else -1), e

        cols = [prim[d] for d in prim_dims] + list(red)
        vary = [isinstance(x, np.ndarray) for x in cols]
        if any(vary):
            def _unit_v(*row, it=None):
                full, k = [], 0
                for x, v in zip(cols, vary):
                    if v:
                        full.append(row[k])
                        k += 1
                    else:
                        full.append(x)
                return _unit(*full)
            t_op, comp_pj = _by_value(np.stack([x for x in cols if isinstance(x, np.ndarray)], axis=1), _unit_v,
                                      _I64, np.float64)
        else:
            t0, c0 = _unit(*cols)
            t_op, comp_pj = np.full(q, t0, dtype=_I64), np.full(q, c0, dtype=np.float64)
        ok &= (t_op >= 0) & _small(t_op, n) & (t_op * n < 1 << 31) & (t_op * n != 0)
        ocodes: dict = {}
        ocode = np.fromiter((ocodes.setdefault(o, len(ocodes)) for o in orders), dtype=_I64, count=q)
        per, size_T, E = [], [], []
        for i in range(nT):
            desc = descT[i][-1]
            dl = self.T_last[i]
            pd = {d for r in self.T_proj[i] for d in r}
            # period: the product of the radices inside the innermost projected loop > 1, over
            # loop positions (the orders are a handful of permutations)
            perm = np.array([self._perm(i, o) for o in ocodes], dtype=_I64)[ocode]
            R = np.stack([_col(np.where(s != 0, e // np.maximum(s, 1), 1), q) for e, s in desc.values()], axis=1)
            Rp = np.take_along_axis(R, perm, axis=1)
            Pm = np.array([d in pd for d in dl])[perm]
            period = n.copy()
            pr = 1
            found = np.zeros(q, dtype=bool)
            for p in range(len(dl)):
                r = Rp[:, p]
                hit = (r > 1) & Pm[:, p] & ~found
                period = np.where(hit, pr, period)
                found |= hit
                pr = pr * r
            period = np.maximum(period, 1)
            ok &= n % period == 0
            per.append(period)
            e, _, isint, nonneg, sz = next(mts)
            size_T.append(sz)
            ok &= (sz >= 0) & isint & nonneg & _small(e, n, 4)
            E.append(e)
        per = [np.where(ok, p, 1) for p in per]
        n1 = np.where(ok, n, 1)
        act = [n1 // p for p in per]
        cst = []
        for i in range(nT):
            nst = rtsT[i] * t_op
            ok &= (nst >= 0) & _small(rtsT[i], t_op, n1)
            cst.append(nst * per[i])
        # ---- T: node1_node2 + node_cost_of on step functions of the iteration x (k = x // p)
        lohi = [(0, n1 - per[a]) if not rw[a] else (per[a], n1) for a in range(nT)]
        bps = [np.zeros(q, dtype=_I64), np.ones(q, dtype=_I64), n1]
        for b in range(nT):
            f = per[b]
            bps += [(1 if rw[b] else 0) * f, (act[b] - 1) * f]
            for a in self.T_before[b]:
                for B in lohi[a]:
                    c0 = B // f * f
                    bps += [_col(c0, q), c0 + f]
        X = np.sort(np.minimum(np.stack(bps, axis=1), n1[:, None]), axis=1)  # all >= 0
        seg = np.diff(X, axis=1)
        X = X[:, :-1]
        nq = n1[:, None]

        def stall_of(b):
            f = per[b][:, None]
            k = X // f
            kf = k * f
            if rw[b]:
                valid = (X >= f) & (X < nq) & (k <= act[b][:, None] - 1)
            else:
                valid = (X < nq) & (k <= act[b][:, None] - 2)
            wk = cst[b][:, None]
            for a in self.T_before[b]:
                lo, hi = lohi[a]
                ov = np.minimum(hi[:, None], kf + f) - np.maximum(_col(lo, q)[:, None], kf)
                wk = wk - (E[a] // per[a])[:, None] * np.maximum(ov, 0)
            wk = np.maximum(wk, 0)
            return np.where(valid, np.maximum((E[b] // per[b])[:, None] - wk // f, 0), 0)

        stall = None
        ru = rd = 0
        ctT = t_op * n1
        lcT = {}  # target -> per port (compute_time, ramp_up, ramp_down, cum)
        for li, tgt in enumerate(self.T_levels):
            fields = []
            for idx in (0, 1):
                ts = self.T_ports[tgt][idx]
                if not ts:
                    fields.append(_Row(0, 0, 0, 0))
                    continue
                v = stall_of(ts[0])
                for b in ts[1:]:
                    v = v + stall_of(b)
                if stall is None:
                    stall = np.where(X >= idx, v, 0) if idx else v
                else:
                    stall = np.where(X >= idx, v if li == 0 else np.maximum(stall, v), stall)
                pru = prd = cum = 0
                for b in ts:
                    if rw[b]:
                        prd = prd + E[b]
                    else:
                        pru = pru + E[b]
                    cum = cum + (act[b] - 1) * E[b]
                ru = np.maximum(ru, pru)
                rd = np.maximum(rd, prd)
                fields.append(_Row(ctT, pru, prd, cum))
            lcT[tgt] = fields
        ssum = (stall * seg).sum(axis=1)
        costT = (ctT + ru + rd + _i32(ssum)) & U32
        # T's ramp-ups as _record_rampups keeps them: the level(s) with the largest sum
        rampT = {}
        if self.T_ramp_lv:
            sums = {lv: sum(E[i] for i in ids) for lv, ids in self.T_ramp_lv.items()}
            best = None
            for s_ in sums.values():
                best = s_ if best is None else np.maximum(best, s_)
            for lv, ids in self.T_ramp_lv.items():
                keep = sums[lv] == best
                for i in ids:
                    rampT[(self.T_tid[i], T.tags[i])] = np.where(keep, E[i], 0)
        actT = {(self.T_tid[i], T.tags[i]): act[i] for i in range(nT)}
        # ---- P: moves from S (fixed by the upper key), sizes from T's extents
        itersP = [LS.iters[j] if j is not None else 1 for j in self.P_inherit]
        maxitP = max(itersP) if itersP else 1
        different = len(set(itersP)) > 1
        actP = [sum(p) for p in patterns]
        reuseP = [(itersP[i] // actP[i] if actP[i] else 0) or 1 for i in range(nP)]
        # window per P iteration: T's cost, less T's ramp-ups where P reuses a tensor T moves once
        W = costT
        vec = [W] * maxitP
        reuse_map = {}
        for i in range(nP):
            reuse_map[(self.P_tid[i], P.tags[i])] = reuseP[i]
        for key, rf in sorted(reuse_map.items()):
            if rf != 1 and key in actT:
                cond = actT[key] == 1
                r_ = rampT.get(key, 0)
                for k in range(maxitP):
                    if k % rf:
                        vec[k] = np.where(cond, (vec[k] - r_) & U32, vec[k])
        ac: dict = {}
        accP = []
        for i, (t, tag) in enumerate(zip(P.tensors, P.tags)):
            if not self.P_hit[i]:
                continue
            target, child = P.targets[i], P.child_levels[i]
            e_new, ne_new, isint, _, size = next(mts)
            nk = 4 * len(patterns[i]) + 4  # sums of transfers over P's iterations
            ok &= isint & _small(np.abs(e_new), nk)
            e_old = ne_old = None
            if not all(patterns[i]):
                e_old, ne_old, isint, _, _ = next(mts)
                ok &= isint & _small(np.abs(e_old), nk)
            pair = self._target_child(i, patterns[i], size, W, vec, reuseP[i], actP[i], different,
                                      e_new, ne_new, e_old, ne_old)
            c = pair[1 if self.P_rw[i] else 0]
            proj = self.P_uniq[i] or 1
            accP.append(Access(target, c.access, c.tile, P.precision[i], self.P_rw[i], True, False, self.P_tid[i],
                               tag, P.rmw[i], proj))
            accP.append(Access(child, c.access, c.tile, P.precision[i], self.P_rw[i], False, False, self.P_tid[i],
                               tag, P.rmw[i], proj, noc=c.noc))
            ac.setdefault((target, child), []).append(pair)
        port_use = {}
        if self.port_use:
            for lv, fields in lcT.items():
                for idx in (0, 1):
                    d = port_use.setdefault(lv, {})
                    fl = fields[idx]
                    d[1 - idx] = d.get(1 - idx, 0) + fl.cum + (fl.ramp_up if idx == 0 else fl.ramp_down)
        nlcP = self._node1_node2(ac, maxitP, port_use, q)
        costP = self._node_cost(nlcP, maxitP, q)
        # ---- energy (steady_state._energy's spatial and leaf branches) with S's count maps
        nsp, icm = w._s_counts
        nsp, icm = _copy(nsp), _copy(icm)
        pit: dict = {}
        accT = []
        max_acc = 0
        for i, tag in enumerate(T.tags):
            accT.append(Access(T.targets[i], act[i], size_T[i], T.precision[i], rw[i], True, False, self.T_tid[i],
                               tag, T.rmw[i], 1))
            max_acc = np.maximum(max_acc, act[i])
        accT.append(Access(self.unit, max_acc, compute=True, target=False, tag=T.tags[0], tid=self.T_tid[0],
                           rmw=T.rmw[0], op=opc, comp_pj=comp_pj))
        enP, nocP, cur = self._energy(w, P, self.P_tid, self.P_sp, self.P_left, accP, nsp, icm, pit, False, ok)
        for tag, pc in cur.items():
            d = icm.setdefault(tag, {})
            for tid, c in pc.items():
                d[tid] = d[tid] * c if tid in d else c
        enT, nocT, _ = self._energy(w, T, self.T_tid, None, [], accT, _copy(nsp), _copy(icm), pit, True, ok)
        # ---- per-node numbers (batched_split._node_vals)
        node_lat, node_en = {}, {}
        itsP, itsT = pit.get(id(P), 1), pit.get(id(T), 1)
        lP, lT = self._row_lat(nlcP, costP, q, leaf=False), self._row_lat(lcT, costT, q, leaf=True)
        ok &= _small(lP, itsP) & _small(lT, itsT)
        node_lat[self.pP] = lP * itsP
        node_lat[self.pT] = lT * itsT
        node_en[self.pP] = _node_energy(enP, nocP, q)
        node_en[self.pT] = _node_energy(enT, nocT, q)
        node_lat[self.pC] = np.zeros(q, dtype=_I64)
        node_en[self.pC] = np.zeros(q, dtype=np.float64)
        # ---- collectives after the subtree (their input is produced here)
        col_costs = []
        outputs = {}
        for X, (desc, _, _) in ((T, loops[id(T)]), (P, loops[id(P)])):
            for i, t in enumerate(X.tensors):
                if t in self.out_of:
                    outputs[(X.targets[i], t)] = desc[i]
        for p, c, src, dst, proj, in_tid, op_left in self.col_info:
            ext = outputs.get((c.target, c.tensor_in))
            if ext is None:
                raise _NoFit
            e_in = {d: e for d, (e, _) in ext[-1].items()}
            e_out = dict(e_in)
            if c.type in ("gather", "allgather"):
                e_out[c.dimension] = e_out.get(c.dimension, 1) * src
            elif c.type == "scatter":
                e_out[c.dimension] = np.trunc(np.asarray(e_out.get(c.dimension, 1), dtype=np.float64) / dst).astype(_I64)
            s_in, s_out = _col(_proj_size(proj, e_in, q), q), _col(_proj_size(proj, e_out, q), q)

            def _col_cost(a, b, c=c, src=src, dst=dst):
                m, nt, r_e, w_e, n_e = collective_cost(w, c, {"in": a, "out": b, "src": src, "dst": dst})
                return m + nt, r_e + w_e, n_e

            craw, ce_, cn_ = _by_value(np.stack([s_in, s_out], axis=1), _col_cost, _I64, np.float64, np.float64)
            # executions: the subtree's access count of the collective's input (after scaling)
            seen: dict = {}
            for a in accP:
                if a.target and not a.compute:
                    seen.setdefault(a.tag, {})[a.tid] = a.count
            its = seen.get(op_left, {}).get(in_tid, 0) if op_left is not None else 0
            if not isinstance(its, int):
                raise _NoFit
            ok &= _small(craw, its)
            col_costs.append(craw & U32)
            node_lat[p] = craw * its
            node_en[p] = ce_ * its + cn_ * its
        return SubtreeResult(ok, costP, col_costs, node_lat, node_en)

    # ------------------------------------------------------------------ P's walk, on arrays
    def _target_child(self, i, pattern, size, W, vec, reuse, actual, different, e_new, ne_new, e_old, ne_old):
        """Walker.target_child_cost + evaluate for P's tensor i (window W, per-iteration vec;
        transfer time and NoC energy of a new / a reused tile)."""
        rw = 1 if self.P_rw[i] else 0
        if reuse == 1:
            nsv = list(vec)
        else:
            nsv = [0] * len(vec)
            for k in range(0, len(vec), reuse):
                s = 0
                for x in vec[k:k + reuse]:
                    s = s + x
                nsv[k] = _i32(s)
        pair = [_VTC(), _VTC()]
        c = pair[rw]
        c.ctv = [W * reuse] * actual
        c.reuse, c.hide = reuse, self.P_hide[i]
        s = 0
        for x in nsv:
            s = s + x
        c.compute_time = _i32(s) & U32
        nm = len(pattern)
        pseudo = nm if different else nm // reuse
        c.stall, c.mem_net = [0] * pseudo, [0] * pseudo
        start = 1 if rw else -1
        c.tile, c.access = size, pseudo
        noc = 0.0
        for k, new in enumerate(pattern):
            eff = e_new if new else e_old
            # node1_node2 reads a tensor's per-iteration stall only when it cannot hide it
            # (then the stall is the transfer); a hidden tensor's is never read
            stall = eff if not c.hide else 0
            noc = noc + (ne_new if new else ne_old)
            if rw and k == nm - reuse:
                c.ramp_down = eff
                continue
            if k == 0 and not rw:
                c.ramp_up = eff
                continue
            if different:
                j = k + start
            elif k % reuse == 0:
                j = k // reuse + start
            else:
                continue
            if 0 <= j < pseudo:
                c.stall[j], c.mem_net[j] = stall, eff
            c.cum = c.cum + eff
        c.noc = noc
        c.n = len(c.stall)
        c.cstall = [0] * len(c.stall)
        return pair

    def _node1_node2(self, arch_cost, maxit, port_use, q):
        """Walker.node1_node2 with array values (the loops run over P's few iterations)."""
        pairs = [pr for pr in self.P_pairs if pr in arch_cost]
        win: dict = {}
        for pr in pairs:
            for idx in (0, 1):
                for per in arch_cost[pr]:
                    if len(per) > idx and per[idx].stall:
                        vec = list(per[idx].ctv)
                        if port_use and self.shared.get(pr[1]):
                            cost = port_use.get(pr[1], {}).get(idx, 0)
                            vec = [np.where(e > cost, e - cost, 0) for e in vec]
                        win.setdefault(pr[0], []).append(vec)
        out: dict = {}
        tcount: dict = {}
        z = np.zeros(q, dtype=_I64)
        for pr in pairs:
            tgt = pr[0]
            if tgt not in out:
                out[tgt] = [_VTC(maxit), _VTC(maxit)]
                for o in out[tgt]:
                    o.stall = [z] * maxit
                    o.cstall = [z] * maxit
                tcount[tgt] = 0
            for idx in (0, 1):
                for per in arch_cost[pr]:
                    tc = tcount[tgt]
                    if not (len(per) > idx and per[idx].stall):
                        continue
                    p_, o = per[idx], out[tgt][idx]
                    o.ramp_up = o.ramp_up + p_.ramp_up
                    o.ramp_down = o.ramp_down + p_.ramp_down
                    o.compute_time = np.maximum(o.compute_time, p_.compute_time)
                    if o.reuse == 0:
                        o.reuse = 1
                    if p_.reuse > 0:
                        o.reuse = min(o.reuse, p_.reuse)
                    o.cum = o.cum + p_.cum
                    f = p_.reuse or 1
                    mw = win[tgt][tc]
                    its = min(maxit, len(mw))
                    for k in range(idx, its):
                        mn = p_.mem_net[k] if k < len(p_.mem_net) else 0
                        s = np.maximum(mn // f - mw[k] // f, 0)
                        for j in range(f):
                            m = k * f + j
                            if not p_.hide and m < len(o.cstall) and k < len(p_.ctv):
                                o.cstall[m] = o.cstall[m] + (p_.stall[k] if k < len(p_.stall) else 0)
                            if m < len(o.stall):
                                o.stall[m] = o.stall[m] + s
                        if not p_.hide:
                            continue
                        kcount: dict = {}
                        for pr1 in pairs:
                            kcount.setdefault(pr1[0], 0)
                            for idx1 in (0, 1):
                                for per1 in arch_cost[pr1]:
                                    if idx1 < len(per1) and per1[idx1].stall:
                                        kt = kcount[pr1[0]]
                                        if pr1[0] == tgt and idx1 == idx and kt != tc:
                                            kf = per1[idx1].reuse or 1
                                            for j in range(f):
                                                nn = (j + k * f) // kf
                                                w1 = win[pr1[0]][kt]
                                                if nn < len(w1) and k < len(p_.mem_net):
                                                    w1[nn] = np.maximum(w1[nn] - p_.mem_net[k] // f, 0)
                                        kcount[pr1[0]] += 1
                    tcount[tgt] += 1
        return out

    def _node_cost(self, nlc, maxit, q):
        """Walker.node_cost_of + Walker.total with array values."""
        ru = rd = ct = 0
        st = [0] * maxit
        for li, level in enumerate(sorted(nlc, key=self.P_levels_seq.__getitem__)):
            for idx in (0, 1):
                c = nlc[level][idx]
                if not c.stall:
                    continue
                on = _col(c.compute_time, q) != 0
                ru = np.where(on, np.maximum(ru, c.ramp_up), ru)
                rd = np.where(on, np.maximum(rd, c.ramp_down), rd)
                ct = np.where(on, np.maximum(ct, c.compute_time), ct)
                f = c.reuse or 1
                for k in range(idx, maxit):
                    if k % f == 0:
                        s = k // f
                        v = (c.stall[s] if s < len(c.stall) else 0) + (c.cstall[s] if s < len(c.cstall) else 0)
                        st[k] = np.where(on, v if li == 0 else np.maximum(st[k], v), st[k])
        tot = 0
        for x in st:
            tot = tot + x
        return _col((ct + ru + rd + _i32(tot)) & U32, q)

    def _row_lat(self, nlc, cost, q, leaf: bool):
        """model._row's compulsory + optional (+ compute window for a leaf) of one execution."""
        cs0 = cs1 = ct = 0
        for level in sorted(nlc, key=self.P_levels_seq.__getitem__):
            pair = nlc[level]
            ct = np.maximum(ct, np.maximum(pair[0].compute_time, pair[1].compute_time))
            cs0 = np.maximum(cs0, pair[0].ramp_up + pair[0].ramp_down)
            cs1 = np.maximum(cs1, pair[1].ramp_up + pair[1].ramp_down)
        cs = cs0 + cs1
        os_ = np.maximum(cost - cs - ct, 0)
        return _col(cs + os_ + ct if leaf else cs + os_, q)

    def _energy(self, w, n, tids, sp_iters, left_sib, accs, nsp, icm, pit, leaf: bool, ok):
        """steady_state._energy's spatial / leaf branch for node n on array-valued accesses:
        (energy per level, NoC energy per link, counts it hands down)."""
        cur: dict = {}
        root_child = self.P_root_child if n is self.P else False
        arch_e: dict = {}
        noc_e: dict = {}
        left = list(left_sib) + list(tids)
        for acc in accs:
            tag, tid = acc.tag, acc.tid
            if acc.target and not acc.compute:
                cur.setdefault(tag, {})[tid] = acc.count
            if not acc.compute and not root_child:
                _, mx = _find_count(icm, left)
                acc.count = acc.count * mx
                icm.setdefault(tag, {})[tid] = mx
                pit[id(n)] = max(pit.get(id(n), 0), mx)
                if not acc.target:
                    key = f"{acc.level}<->{acc.level}"
                    noc_e[key] = noc_e.get(key, 0.0) + acc.noc * mx
            sp = 1
            if tag in nsp:
                if tid in nsp[tag]:
                    sp = nsp[tag][tid]
                else:
                    for t in tids:
                        if t in nsp[tag]:
                            sp = max(sp, nsp[tag][t])
                    nsp[tag][tid] = sp
            elif not root_child:
                _, sp = _find_count(nsp, left)
            if acc.compute:
                if tag in icm:
                    mx = max([1] + [icm[tag][t] for t in tids if t in icm[tag]])
                else:
                    found, mx = _find_count(icm, tids)
                    if not found:
                        _, mx = _find_count(icm, left_sib)
                acc.count = acc.count * mx
                ct = self.ctu
                if ct.name == "SystolicArray" or ct.kind == "simd":
                    e = sp * acc.count * acc.comp_pj
                else:
                    e = sp * acc.count * ct.energy * w.lvl(acc.level).count
            else:
                cost, block = self.mem_cost[(acc.level, bool(acc.rw), bool(acc.target))]
                ok &= _small(sp, acc.count, acc.tile, acc.proj, acc.prec)
                e = sp * acc.count * acc.tile * acc.proj * acc.prec * cost / (block * 8.0)
                if acc.rmw:
                    e = e * 2
            arch_e[acc.level] = arch_e.get(acc.level, 0.0) + e
        if not leaf:
            cnt = 0
            for acc in accs:
                if not acc.target:
                    continue
                f = sp_iters[cnt] if cnt < len(sp_iters) else 1
                per = nsp.setdefault(acc.tag, {})
                per[acc.tid] = per[acc.tid] * f if acc.tid in per else f
                cnt += 1
        return arch_e, noc_e, cur


@dataclass
class _Row:
    compute_time: object
    ramp_up: object
    ramp_down: object
    cum: object


def _node_energy(arch_e: dict, noc_e: dict, q: int) -> np.ndarray:
    """sum(energy.values()) + sum(noc.values()) per pair, with Python's sum (the single path's
    summation, whatever the interpreter's float sum does)."""
    def total(d):
        if not d:
            return [0] * q
        cols = [np.broadcast_to(np.asarray(v, dtype=np.float64), (q,)).tolist() for v in d.values()]
        return [sum(t) for t in zip(*cols)]

    return np.array([a + b for a, b in zip(total(arch_e), total(noc_e))], dtype=np.float64)


class _NoFit(Exception):
    pass
