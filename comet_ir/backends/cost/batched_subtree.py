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
non-negative int, an empty or 32-bit-wrapping compute window, ...) are returned as not covered
and the caller walks them one by one. tests/unit/test_cost_batched.py checks the kernel against
the subtree-only scalar walk (hypothesis) and the split plan runs it against the full walk of
each upper key's representative candidate before trusting it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from comet_ir.backends.cost import units
from comet_ir.backends.cost.steady_state import U32, Access, Mov, Walker, _copy, _find_count, collective_cost
from comet_ir.spec.mapping_tree import ColOpNode, ComputeNode, TileNode

_I64 = np.int64


def _i32(v):
    return ((v & U32) ^ 0x80000000) - 0x80000000


def _col(x, q: int) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.shape == (q,):
        return x
    return np.full(q, x, dtype=_I64)


def _proj_size(proj, ext: dict, q: int):
    out = np.ones(q, dtype=_I64)
    for rank in proj:
        s = np.zeros(q, dtype=_I64)
        for d in rank:
            if d in ext:
                s = s + ext[d]
        out = out * s
    return out


def _by_value(keys: np.ndarray, fn, *dtypes):
    """fn(*row) once per distinct row of `keys` (Q, k); fn returns a tuple of len(dtypes)
    numbers; the results as arrays over the Q pairs."""
    from comet_ir.backends.cost.batched_split import unique_rows

    keys = np.asarray(keys, dtype=_I64)
    first, inv = unique_rows(keys)
    vals = [fn(*row) for row in keys[first].tolist()]
    return [np.array([v[j] for v in vals], dtype=dt)[inv] for j, dt in enumerate(dtypes)]


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
        pos = {id(n): k for k, n in enumerate(ev.nodes)}
        self.P, self.T, self.C = P, T, C
        self.pP, self.pT, self.pC = pos[id(P)], pos[id(T)], pos[id(C)]
        self.cols = sorted(p for p, o in plan.colops.items() if o == i)
        slots = ev.space.slots
        self.sub_cols = plan.sub_cols[i]
        # where each slot lands: (tile factors: level 0, dim, tensor) or (compute: dim)
        self.t_slot: dict = {}
        self.c_slot: dict = {}
        for j, s in enumerate(slots):
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
        w = plan.loops_walker
        self.proj = {(t, g): w.proj(t, g) for X in (P, T) for t, g in zip(X.tensors, X.tags)}
        self.upper_pairs = plan.upper_pairs
        self.out_of = {o.out for o in ev.program.problem.ops}

    # ------------------------------------------------------------------ parameters per pair
    def _params(self, V: np.ndarray, orders: list):
        """Factors of T (per level, dim, tensor) and C's steps / primitive / reduction factors
        as arrays, as BatchEvaluator._apply would write them."""
        q = len(V)
        T, C = self.T, self.C
        fac = []
        for li, lvl in enumerate(T.factors):
            d_ = {}
            for d, fs in lvl.items():
                d_[d] = [V[:, self.t_slot[(d, m)]] if li == 0 and (d, m) in self.t_slot else _col(fs[m], q)
                         for m in range(len(T.tensors))]
            fac.append(d_)
        st0, prim0, red0 = self.ev._pristine[self.pC]
        steps = {t: {d: (V[:, self.c_slot[d][0]] if d in self.c_slot else _col(v, q)) for d, v in st.items()}
                 for t, st in st0.items()}
        prim = {d: (V[:, self.c_slot[d][0]] if d in self.c_slot else _col(v, q)) for d, v in prim0.items()}
        red = []
        for k, d in enumerate(C.reduction_dims):
            if d in self.c_slot and red0[k] == self.c_slot[d][1]:
                red.append(V[:, self.c_slot[d][0]])
            else:
                red.append(_col(red0[k], q))
        return fac, steps, prim, red

    def _loops(self, fac, steps_c, prim, q: int, P_fac):
        """Walker._loops over C, T, P: strides, step counts, per tensor desc/iters/rts."""
        C = self.C
        stride: dict = {}
        steps: dict = {}
        for t in C.tensors:
            ts = dict(steps_c.get(t, prim))
            stride[(t, C.name)] = ts
            if C.op_type.lower() == "gemm":
                step = np.ones(q, dtype=_I64)
                for d, v in prim.items():
                    step = step * np.maximum(ts.get(d, v) // np.maximum(v, 1), 0)
                steps[(t, C.name)] = step
            else:
                steps[(t, C.name)] = np.ones(q, dtype=_I64)
        loops = {}
        for X, F in ((self.T, fac), (self.P, P_fac)):
            desc, iters, sp_iters, rts = [], [], [], []
            for i, (t, tag) in enumerate(zip(X.tensors, X.tags)):
                key = (t, tag)
                prev = steps.get(key, 1)
                st = stride.setdefault(key, {})
                it, sp, levels = 1, 1, []
                for lvl in F:
                    d_ = {}
                    for d, fs in lvl.items():
                        f = fs[i]
                        s = st.get(d, 1)
                        d_[d] = (s * f, s)
                        st[d] = s * f
                        if X.kind == "temporal":
                            steps[key] = steps.get(key, 1) * f
                            it = it * f
                        else:
                            sp = sp * f
                    levels.append(d_)
                desc.append(levels)
                rts.append(prev)
                iters.append(it)
                sp_iters.append(sp)
            loops[id(X)] = (desc, iters, sp_iters, rts)
        return stride, loops

    def exports(self, V: np.ndarray, orders: list) -> np.ndarray:
        """(Q, k) int matrix equal between two pairs iff their exports (batched_split._exports)
        are: the strides left for the (tensor, op) pairs the chain and S hold."""
        q = len(V)
        fac, steps_c, prim, red = self._params(V, orders)
        stride, _ = self._loops(fac, steps_c, prim, q, self._P_fac(q))
        cols = [np.zeros(q, dtype=_I64)]
        for k in sorted(k for k in stride if k in self.upper_pairs):
            for d in sorted(stride[k]):
                cols.append(_col(stride[k][d], q))
        return np.stack(cols, axis=1)

    def _P_fac(self, q):
        return [{d: [_col(f, q) for f in fs] for d, fs in lvl.items()} for lvl in self.P.factors]

    # ------------------------------------------------------------------ the subtree
    def evaluate(self, w: Walker, V: np.ndarray, orders: list) -> SubtreeResult:
        """All numbers of the subtree for Q pairs with the upper key of walker `w` (a full walk of
        a candidate with that upper key: S's loop nest, moves and energy counts)."""
        q = len(V)
        ev, P, T, C = self.ev, self.P, self.T, self.C
        S = self.plan.S
        fac, steps_c, prim, red = self._params(V, orders)
        stride, loops = self._loops(fac, steps_c, prim, q, self._P_fac(q))
        ok = np.ones(q, dtype=bool)
        # ---- T: moves (closed form of _FastWalker._temporal_moves), compute time
        descT, itersT, _, rtsT = loops[id(T)]
        LT = w.loop[id(T)]  # node / rw only (fixed by the tree)
        nT = len(T.tensors)
        n = _col(itersT[0], q)
        for it in itersT:
            ok &= it == n
        ok &= n >= 1
        unit = T.child_levels[0]
        if not w.lvl(unit).is_compute:
            raise _NoFit
        prim_dims = [d for d in w.dims if d in C.tile_primitive] + [d for d in C.tile_primitive if d not in w.dims]
        pk = np.stack([_col(prim[d], q) for d in prim_dims] + [_col(r, q) for r in red], axis=1) \
            if prim_dims or red else np.zeros((q, 1), dtype=_I64)
        npd = len(prim_dims)
        ctu = w.a.compute(unit)
        opc = units.op_class(C.op_type)
        edims = [d for d in w.dims if d in C.tile_primitive]

        def _unit(*row):
            red_ = dict(zip(C.reduction_dims, row[npd:]))
            t_op = units.unit_latency(ctu, list(row[:npd]), prim_dims, opc, C.reduction_dims, red_, C.rmw, C.specd)
            pm = dict(zip(prim_dims, row[:npd]))
            return t_op, units.unit_energy_per_invocation(ctu, [pm[d] for d in edims], opc)

        t_op, comp_pj = _by_value(pk, _unit, _I64, np.float64)
        ok &= (t_op >= 0) & (t_op * n < 1 << 31) & (t_op * n != 0)
        order_codes = {}
        ocode = np.array([order_codes.setdefault(o, len(order_codes)) for o in orders], dtype=_I64)
        per, size_T, E = [], [], []
        for i, (t, tag) in enumerate(zip(T.tensors, T.tags)):
            desc = descT[i][-1]
            proj = self.proj[(t, tag)]
            pdims = {d for r in proj for d in r}
            radix = {d: np.where(s != 0, e // np.maximum(s, 1), 1) for d, (e, s) in desc.items()}
            period = n.copy()
            for o, c in order_codes.items():
                sel = ocode == c
                order = [d for d in o if d in desc] + [d for d in desc if d not in o]
                pr = np.ones(q, dtype=_I64)
                found = np.zeros(q, dtype=bool)
                for d in order:
                    r = radix[d]
                    if d in pdims:
                        hit = (r > 1) & ~found
                        period = np.where(sel & hit, pr, period)
                        found |= hit
                    pr = pr * r
            period = np.maximum(period, 1)
            ok &= n % period == 0
            per.append(period)
            sz = _proj_size(proj, {d: s for d, (_, s) in desc.items()}, q)
            size_T.append(sz)
            ok &= sz >= 0

            def _mt(s, i=i):
                try:
                    m, t_, _ = w._move_time(Mov(s, 1, 1), LT, i, T.targets[i], T.child_levels[i])
                except Exception:  # noqa: BLE001 - the scalar walk raises / prices it
                    return (-1,)
                return (m + t_ if isinstance(m, int) and isinstance(t_, int) and m >= 0 and t_ >= 0 else -1,)

            e, = _by_value(sz[:, None], _mt, _I64)
            ok &= e >= 0
            E.append(e)
            if w.mem(T.targets[i]).dma_contiguous:
                raise _NoFit
        per = [np.where(ok, p, 1) for p in per]
        n1 = np.where(ok, n, 1)
        act = [n1 // p for p in per]
        rw = [bool(x) for x in LT.rw]
        cst = []
        for i in range(nT):
            nst = _col(rtsT[i], q) * t_op
            ok &= nst >= 0
            cst.append(nst * per[i])
        # ---- T: node1_node2 + node_cost_of on step functions
        pairs: dict = {}
        for i in range(nT):
            pairs.setdefault((T.targets[i], T.child_levels[i]), []).append(i)
        seq_pairs = sorted(pairs, key=w.pair_key)
        ports: dict = {}  # target -> [[tensors on port 0], [port 1]] in merge order
        for pr in seq_pairs:
            pp = ports.setdefault(pr[0], [[], []])
            for idx in (0, 1):
                pp[idx] += [i for i in pairs[pr] if (1 if rw[i] else 0) == idx]
        # each tensor's stall as a function of the iteration x: (k = x // p)
        bps = [np.zeros(q, dtype=_I64), np.ones(q, dtype=_I64), n1]

        def lohi(a):
            return (np.zeros(q, dtype=_I64), n1 - per[a]) if not rw[a] else (per[a], n1)

        before = {}
        for tgt, pp in ports.items():
            for idx in (0, 1):
                for k, b in enumerate(pp[idx]):
                    before[b] = pp[idx][:k]
                    f = per[b]
                    bps += [idx * f, (act[b] - 1) * f]
                    for a in before[b]:
                        for B in lohi(a):
                            bps += [(B // f) * f, (B // f + 1) * f]
        X = np.sort(np.clip(np.stack(bps, axis=1), 0, n1[:, None]), axis=1)
        seg = np.diff(X, axis=1)
        X = X[:, :-1]
        nq = n1[:, None]

        def stall_of(b):
            f = per[b][:, None]
            idx = 1 if rw[b] else 0
            k = X // f
            valid = (X >= idx * f) & (X < nq)
            valid &= (k >= 1) & (k <= act[b][:, None] - 1) if rw[b] else (k <= act[b][:, None] - 2)
            dsum = np.zeros_like(X)
            for a in before[b]:
                lo, hi = lohi(a)
                ov = np.minimum(hi[:, None], (k + 1) * f) - np.maximum(lo[:, None], k * f)
                dsum = dsum + (E[a] // per[a])[:, None] * np.maximum(ov, 0)
            wk = np.maximum(cst[b][:, None] - dsum, 0)
            return np.where(valid, np.maximum((E[b] // per[b])[:, None] - wk // f, 0), 0)

        stall = np.zeros_like(X)
        ru = np.zeros(q, dtype=_I64)
        rd = np.zeros(q, dtype=_I64)
        ctT = t_op * n1
        lcT = {}  # target -> [(compute_time, ramp_up, ramp_down, cum)] per port
        for li, tgt in enumerate(sorted(ports, key=w.seq)):
            fields = []
            for idx in (0, 1):
                ts = ports[tgt][idx]
                if not ts:
                    fields.append((0, 0, 0, 0))
                    continue
                v = 0
                for b in ts:
                    v = v + stall_of(b)
                stall = np.where(X >= idx, v if li == 0 else np.maximum(stall, v), stall)
                pru = sum(E[b] for b in ts if not rw[b]) if any(not rw[b] for b in ts) else 0
                prd = sum(E[b] for b in ts if rw[b]) if any(rw[b] for b in ts) else 0
                cum = 0
                for b in ts:
                    cum = cum + (act[b] - 1) * E[b]
                ru = np.maximum(ru, pru)
                rd = np.maximum(rd, prd)
                fields.append((ctT, _col(pru, q), _col(prd, q), _col(cum, q)))
            lcT[tgt] = fields
        ssum = (stall * seg).sum(axis=1)
        costT = (ctT + ru + rd + _i32(ssum)) & U32
        # T's ramp-ups as _record_rampups keeps them: the level(s) with the largest sum
        ramp_lv: dict = {}
        for i in range(nT):
            if not rw[i]:
                ramp_lv.setdefault(T.targets[i], []).append(i)
        rampT = {}
        if ramp_lv:
            sums = {lv: sum(E[i] for i in ids) for lv, ids in ramp_lv.items()}
            best = np.max(np.stack([_col(s, q) for s in sums.values()], axis=0), axis=0)
            for lv, ids in ramp_lv.items():
                keep = sums[lv] == best
                for i in ids:
                    rampT[(LT.tids[i], T.tags[i])] = np.where(keep, E[i], 0)
        actT = {(LT.tids[i], T.tags[i]): act[i] for i in range(nT)}
        # ---- P: moves from S (fixed by the upper key), sizes from T's extents
        descP, _, spP, _ = loops[id(P)]
        LP0 = w.loop[id(P)]
        LS = w.loop[id(S)]
        itersP = list(LP0.iters)  # set from S's iterations by _spatial_moves (fixed by the upper key)
        nP = len(P.tensors)
        child_idx = 0
        patterns, sizeP, uniqP = [], [], []
        for i, (t, tag) in enumerate(zip(P.tensors, P.tags)):
            for j, (pt, ptag) in enumerate(zip(S.tensors, S.tags)):
                if pt == t and ptag == tag:
                    child_idx = j
                    break
            proj = self.proj[(t, tag)]
            pdims = {d for r in proj for d in r}
            sizeP.append(_proj_size(proj, {d: s for d, (_, s) in descP[i][0].items()}, q))
            uniq = 1
            for lvl in P.factors:
                for d, fs in lvl.items():
                    if d in pdims:
                        uniq *= fs[i]
            uniqP.append(uniq)
            pm = w.dm[id(S)][child_idx]
            patterns.append([not (k and pm[k].unique == 0) for k in range(LS.iters[child_idx])])
        if [len(p) for p in patterns] != [len(m) for m in w.dm[id(P)]] or any(u == 0 for u in uniqP):
            raise _NoFit
        maxitP = max(itersP) if itersP else 1
        different = len(set(itersP)) > 1
        actP = [sum(p) for p in patterns]
        reuseP = [(itersP[i] // actP[i] if actP[i] else 0) or 1 for i in range(nP)]
        # window per P iteration: T's cost, less T's ramp-ups where P reuses a tensor T moves once
        W = costT
        vec = [W & U32 for _ in range(maxitP)]
        reuse_map = {}
        for i in range(nP):
            reuse_map[(LP0.tids[i], P.tags[i])] = reuseP[i]
        for key, rf in sorted(reuse_map.items()):
            if rf != 1 and key in actT:
                cond = actT[key] == 1
                r_ = rampT.get(key, 0)
                for k in range(maxitP):
                    if k % rf:
                        vec[k] = np.where(cond, (vec[k] - r_) & U32, vec[k])
        seqb = w.binding_of(P) == "sequential"
        ac: dict = {}
        accP = []
        for i, (t, tag) in enumerate(zip(P.tensors, P.tags)):
            if tag not in T.tags:
                continue
            target, child = P.targets[i], P.child_levels[i]
            hide = not LP0.dependent[i] if seqb else True
            pair = self._target_child(w, LP0, i, target, child, patterns[i], sizeP[i], uniqP[i], LP0.sp_iters[i],
                                      W, hide, vec, reuseP[i], actP[i], different, ok, q)
            c = pair[1 if LP0.rw[i] else 0]
            proj = uniqP[i] or 1
            accP.append(Access(target, c.access, c.tile, P.precision[i], LP0.rw[i], True, False, LP0.tids[i], tag,
                               P.rmw[i], proj))
            accP.append(Access(child, c.access, c.tile, P.precision[i], LP0.rw[i], False, False, LP0.tids[i], tag,
                               P.rmw[i], proj, noc=c.noc))
            ac.setdefault((target, child), []).append(pair)
        port_use = {}
        if any(w.mem(c).shared_ports for c in P.child_levels if not w.lvl(c).is_compute):
            for lv, fields in lcT.items():
                for idx in (0, 1):
                    d = port_use.setdefault(lv, {})
                    d[1 - idx] = d.get(1 - idx, 0) + fields[idx][3] + (fields[idx][1] if idx == 0 else fields[idx][2])
        nlcP = self._node1_node2(w, ac, maxitP, port_use, q)
        costP = self._node_cost(w, nlcP, maxitP, q)
        # ---- energy (steady_state._energy's spatial and leaf branches) with S's count maps
        nsp, icm = w._s_counts
        nsp, icm = _copy(nsp), _copy(icm)
        pit: dict = {}
        accT = []
        max_acc = 0
        for i, (t, tag) in enumerate(zip(T.tensors, T.tags)):
            accT.append(Access(T.targets[i], act[i], size_T[i], T.precision[i], LT.rw[i], True, False, LT.tids[i],
                               tag, T.rmw[i], 1))
            max_acc = np.maximum(max_acc, act[i])
        accT.append(Access(unit, max_acc, compute=True, target=False, tag=T.tags[0], tid=LT.tids[0], rmw=T.rmw[0],
                           op=opc, comp_pj=comp_pj))
        enP, nocP, cur = self._energy(w, P, LP0, accP, nsp, icm, pit, leaf=False)
        for tag, pc in cur.items():
            d = icm.setdefault(tag, {})
            for tid, c in pc.items():
                d[tid] = d[tid] * c if tid in d else c
        enT, nocT, _ = self._energy(w, T, LT, accT, _copy(nsp), _copy(icm), pit, leaf=True)
        # ---- per-node numbers (batched_split._node_vals)
        node_lat, node_en = {}, {}
        itsP, itsT = pit.get(id(P), 1), pit.get(id(T), 1)
        node_lat[self.pP] = self._row_lat(w, nlcP, costP, q, leaf=False) * itsP
        node_lat[self.pT] = self._row_lat(w, {lv: [_Row(*f) for f in fl] for lv, fl in lcT.items()}, costT, q,
                                          leaf=True) * itsT
        node_en[self.pP] = _node_energy(enP, nocP, q)
        node_en[self.pT] = _node_energy(enT, nocT, q)
        node_lat[self.pC] = np.zeros(q, dtype=_I64)
        node_en[self.pC] = np.zeros(q, dtype=np.float64)
        # ---- collectives after the subtree (their input is produced here)
        col_costs = []
        outputs = {}
        for X, (desc, _, _, _) in ((T, loops[id(T)]), (P, loops[id(P)])):
            for i, t in enumerate(X.tensors):
                if t in self.out_of:
                    outputs[(X.targets[i], t)] = [{d: e for d, (e, _) in lv.items()} for lv in desc[i]]
        kids = w.kids[id(S)]
        for p in self.cols:
            c = ev.nodes[p]
            ext = outputs.get((c.target, c.tensor_in))
            if ext is None:
                raise _NoFit
            src = math.prod(w.lvl(s).count for s in c.src)
            dst = math.prod(w.lvl(d).count for d in c.dest)
            e_in = dict(ext[-1])
            e_out = dict(e_in)
            if c.type in ("gather", "allgather"):
                e_out[c.dimension] = e_out.get(c.dimension, 1) * src
            elif c.type == "scatter":
                e_out[c.dimension] = np.trunc(np.asarray(e_out.get(c.dimension, 1), dtype=np.float64) / dst).astype(_I64)
            proj = w.proj(c.tensor_in, "")
            s_in, s_out = _proj_size(proj, e_in, q), _proj_size(proj, e_out, q)

            def _col_cost(a, b, c=c, src=src, dst=dst):
                m, nt, r_e, w_e, n_e = collective_cost(w, c, {"in": a, "out": b, "src": src, "dst": dst})
                return m + nt, r_e + w_e, n_e

            craw, ce_, cn_ = _by_value(np.stack([s_in, s_out], axis=1), _col_cost, _I64, np.float64, np.float64)
            # executions: the subtree's access count of the collective's input (after scaling)
            k = kids.index(c)
            in_tid = w.tid.get(c.tensor_in, -1)
            ops_left = [tg for x in kids[:k] if isinstance(x, TileNode) for t, tg in zip(x.tensors, x.tags)
                        if t == c.tensor_in]
            seen: dict = {}
            for a in accP:
                if a.target and not a.compute:
                    seen.setdefault(a.tag, {})[a.tid] = a.count
            its = seen.get(ops_left[-1], {}).get(in_tid, 0) if ops_left else 0
            if not isinstance(its, int):
                raise _NoFit
            col_costs.append(craw & U32)
            node_lat[p] = craw * its
            node_en[p] = ce_ * its + cn_ * its
        return SubtreeResult(ok, costP, col_costs, node_lat, node_en)

    # ------------------------------------------------------------------ P's walk, on arrays
    def _target_child(self, w, L, i, target, child, pattern, size, uniq, count, W, hide, vec, reuse, actual,
                      different, ok, q):
        """Walker.target_child_cost + evaluate for P's tensor i (window W, per-iteration vec)."""
        rw = 1 if L.rw[i] else 0

        def mt(u):
            def f(s):
                try:
                    m, t_, e_ = w._move_time(Mov(s, u, count), L, i, target, child)
                except Exception:  # noqa: BLE001 - the scalar walk raises / prices it
                    return 0, 0.0, False
                if not (isinstance(m, int) and isinstance(t_, int)):
                    return 0, 0.0, False
                return m + t_, e_, True
            e, ne, good = _by_value(size[:, None], f, _I64, np.float64, bool)
            ok[~good] = False
            return e, ne

        e_new, ne_new = mt(uniq)
        e_old, ne_old = mt(0) if not all(pattern) else (None, None)
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
        c.reuse, c.hide = reuse, hide
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
            stall = np.where(eff == 0, 0, eff - (nsv[k] if k < len(nsv) else 0))
            if not hide:
                stall = eff
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

    def _node1_node2(self, w, arch_cost, maxit, port_use, q):
        """Walker.node1_node2 with array values (the loops run over P's few iterations)."""
        pairs = sorted(arch_cost, key=w.pair_key)
        win: dict = {}
        for pr in pairs:
            for idx in (0, 1):
                for per in arch_cost[pr]:
                    if len(per) > idx and per[idx].stall:
                        vec = list(per[idx].ctv)
                        if not w.lvl(pr[1]).is_compute and port_use and w.mem(pr[1]).shared_ports:
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
                        for j in range(f):
                            m = k * f + j
                            if not p_.hide and m < len(o.cstall) and k < len(p_.ctv):
                                o.cstall[m] = o.cstall[m] + (p_.stall[k] if k < len(p_.stall) else 0)
                            s = (p_.mem_net[k] if k < len(p_.mem_net) else 0) // f - mw[k] // f
                            if m < len(o.stall):
                                o.stall[m] = o.stall[m] + np.maximum(s, 0)
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

    def _node_cost(self, w, nlc, maxit, q):
        """Walker.node_cost_of + Walker.total with array values."""
        ru = rd = ct = np.zeros(q, dtype=_I64)
        st = [np.zeros(q, dtype=_I64) for _ in range(maxit)]
        for li, level in enumerate(sorted(nlc, key=w.seq)):
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
        tot = np.zeros(q, dtype=_I64)
        for x in st:
            tot = tot + x
        return (ct + ru + rd + _i32(tot)) & U32

    @staticmethod
    def _row_lat(w, nlc, cost, q, leaf: bool):
        """model._row's compulsory + optional (+ compute window for a leaf) of one execution."""
        cs_port = [np.zeros(q, dtype=_I64), np.zeros(q, dtype=_I64)]
        ct = np.zeros(q, dtype=_I64)
        for level in sorted(nlc, key=w.seq):
            pair = nlc[level]
            mw = np.maximum(pair[0].compute_time, pair[1].compute_time)
            for idx in (0, 1):
                cs_port[idx] = np.maximum(cs_port[idx], pair[idx].ramp_up + pair[idx].ramp_down)
            ct = np.maximum(ct, mw)
        cs = cs_port[0] + cs_port[1]
        os_ = np.maximum(cost - cs - ct, 0)
        return cs + os_ + ct if leaf else cs + os_

    @staticmethod
    def _energy(w, n, L, accs, nsp, icm, pit, leaf: bool):
        """steady_state._energy's spatial / leaf branch for node n on array-valued accesses:
        (energy per level, NoC energy per link, counts it hands down)."""
        from comet_ir.backends.cost.steady_state import _left_tids

        cur: dict = {}
        root_child = id(w.parent[id(n)]) in w.top
        arch_e: dict = {}
        noc_e: dict = {}
        left = _left_tids(w, n) + list(L.tids)
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
                    for t in L.tids:
                        if t in nsp[tag]:
                            sp = max(sp, nsp[tag][t])
                    nsp[tag][tid] = sp
            elif not root_child:
                _, sp = _find_count(nsp, left)
            if acc.compute:
                if tag in icm:
                    mx = max([1] + [icm[tag][t] for t in L.tids if t in icm[tag]])
                else:
                    found, mx = _find_count(icm, L.tids)
                    if not found:
                        _, mx = _find_count(icm, _left_tids(w, n))
                acc.count = acc.count * mx
                ct = w.a.compute(acc.level)
                if ct.name == "SystolicArray" or ct.kind == "simd":
                    e = sp * acc.count * acc.comp_pj
                else:
                    e = sp * acc.count * ct.energy * w.lvl(acc.level).count
            else:
                m = w.mem(acc.level)
                if acc.rw:
                    cost = m.energy.get("parent_write" if acc.target else "child_read", 0.0)
                else:
                    cost = m.energy.get("parent_read" if acc.target else "child_write", 0.0)
                block = m.width or 1
                e = sp * acc.count * acc.tile * acc.proj * acc.prec * cost / (block * 8.0)
                if acc.rmw:
                    e = e * 2
            arch_e[acc.level] = arch_e.get(acc.level, 0.0) + e
        if not leaf:
            cnt = 0
            for acc in accs:
                if not acc.target:
                    continue
                f = L.sp_iters[cnt] if cnt < len(L.sp_iters) else 1
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
