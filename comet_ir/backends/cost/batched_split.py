"""Split evaluation of a batch: price each part of the tree once per distinct input, then add.

For trees of the shape

    tile (chain: each tile has one tile child) ... -> S (temporal) -> sequential binding of
    [subtree_1, colop?, subtree_2, colop?, ...]

(the fused pipelines: DRAM tile -> spread -> GB tile -> sequence of spread+leaf stages and
collectives) a candidate's latency and energy are sums over nodes (model.estimate_program
adds per-node stalls x executions and per-node energy in pre-order). Which inputs each node's
numbers depend on is known from the walk:

* the *upper key* of a candidate: the slots and loop orders of the chain and S, plus what every
  subtree exports upwards (the strides and tile-step counts its loop nest leaves for the
  tensors above it, steady_state.Walker._loops) -- the chain's and S's loop nests, moves and
  energy multipliers are functions of it;
* a subtree's nodes depend on (upper key, the subtree's own slots and orders); a collective on
  (upper key, the subtree just before it): that subtree produces its input (its sizes) and its
  access counts set the collective's executions;
* the chain's latency depends on (upper key, W), W = cost(S) = sum of the children's costs
  (sequential), as long as no spatial chain tile has per-tensor reuse != 1 (no ramp-up
  subtraction of descendants) nor children on shared-port memories (no port-use term) --
  checked per upper key, else the candidate goes to the exact scalar path.

So the walk runs once per distinct upper key (S's state and the chain); each subtree's pairs
of that key are priced at once as array code (batched_subtree.SubtreeKernel, for its shape) or
by a subtree-only walk per pair in that walker; the chain tiles are re-visited once per
distinct (upper key, W), and the per-candidate totals are numpy gathers and sums (energy folded
in the same pre-order as the single path, so the floats are identical). The capacity check
(verify_capacity.resident_bytes) is evaluated as products of slot columns over the batch.
Shapes that do not match return None (BatchEvaluator then runs the scalar walk per candidate).
"""
from __future__ import annotations

import numpy as np

from comet_ir.backends.cost.batched import _FastWalker
from comet_ir.backends.cost import steady_state as ss
from comet_ir.backends.cost.steady_state import U32, Walker, estimate_energy
from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, ComputeNode, TileNode


def unique_codes(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a row of each distinct value, row -> distinct id, ids in increasing value) of an int
    vector; values spanning a small range are counted in place, others sorted (np.unique)."""
    code = np.asarray(code, dtype=np.int64).reshape(-1)
    n = len(code)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lo, hi = int(code.min()), int(code.max())
    if hi - lo < 8 * n + 64:
        c = code - lo
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[c] = True
        ids = np.cumsum(present) - 1
        inv = ids[c]
        first = np.empty(int(ids[-1]) + 1, dtype=np.int64)
        first[inv] = np.arange(n, dtype=np.int64)  # one row per value (which one does not matter)
        return first, inv
    _, first, inv = np.unique(code, return_index=True, return_inverse=True)
    return first, inv.reshape(-1)


def unique_rows(m) -> tuple[np.ndarray, np.ndarray]:
    """(a row of each distinct row, row -> distinct id) of an int matrix; rows are coded as one
    int64, column by column in mixed radix over each column's range (np.unique(axis=0) sorts
    void rows, ~20x slower on these batches); a column whose range would overflow the code is
    ranked first."""
    m = np.asarray(m, dtype=np.int64)
    if m.ndim != 2 or m.shape[1] == 0 or len(m) == 0:
        return np.zeros(min(len(m), 1), dtype=np.int64), np.zeros(len(m), dtype=np.int64)
    lo, hi = m.min(axis=0).tolist(), m.max(axis=0).tolist()
    code = None
    radix = 1
    for c in range(m.shape[1]):
        a, b = lo[c], hi[c]
        if a == b:
            continue
        k = b - a + 1
        col = m[:, c] - a if a else m[:, c]
        if k >= 1 << 31:
            _, col = unique_codes(col)
            k = int(col.max()) + 1
        if code is None:
            code, radix = col, k
            continue
        if radix * k >= 1 << 62:
            _, code = unique_codes(code)
            radix = int(code.max()) + 1
        code = code * k + col
        radix *= k
    if code is None:
        return np.zeros(1, dtype=np.int64), np.zeros(len(m), dtype=np.int64)
    return unique_codes(code)


def _sub_preorder(n) -> list:
    from comet_ir.schedule.graph import preorder

    return preorder(n)


class _Capacity:
    """check_capacity as array products: per temporal tile, per pair, the resident bytes."""

    def __init__(self, ev):
        from comet_ir.passes._mapping import walk
        from comet_ir.passes.verify_capacity import _index_dims

        prog, accel, slots = ev.program, ev.accel, ev.space.slots
        pos = {id(n): i for i, n in enumerate(ev.nodes)}
        self.cap = {lv.name: accel.memory_types[lv.type].capacity for lv in accel.levels.values()
                    if not lv.is_compute and accel.memory_types[lv.type].kind == "SRAM"}
        idx = _index_dims(prog)
        tile_slot = {}
        comp_slot = {}
        for j, s in enumerate(slots):
            if s.is_compute:
                comp_slot[(s.node_index, s.dim)] = j
            else:
                for m in s.members:
                    tile_slot[(s.node_index, s.dim, m)] = j
        comps = {c.name: c for c, _ in walk(prog.root) if isinstance(c, ComputeNode)}
        # per temporal tile: per level: [(tensor, [(const, cols, prec)] per op tag)]
        self.checks = []
        for node, _ in walk(prog.root):
            if not (isinstance(node, TileNode) and node.kind == "temporal"):
                continue
            inner = [n for n, _ in walk(node) if isinstance(n, TileNode) and n is not node]
            per_level: dict[str, dict[str, list]] = {}
            for i, (t, g) in enumerate(zip(node.tensors, node.tags)):
                const, cols = 1, []
                dims = idx.get(t, [])
                for n in inner:
                    for j, (t2, g2) in enumerate(zip(n.tensors, n.tags)):
                        if t2 == t and g2 == g and n.targets[j] != node.targets[i]:
                            for k, lvl in enumerate(n.factors):
                                for d in dims:
                                    col = tile_slot.get((pos[id(n)], d, j)) if k == 0 else None
                                    if col is not None:
                                        cols.append(col)
                                    else:
                                        const *= lvl.get(d, [1] * len(n.tensors))[j]
                c = comps.get(g)
                st = c.tile_steps.get(t, {}) if c is not None else {}
                for d in dims:
                    col = comp_slot.get((pos[id(c)], d)) if c is not None and d in st else None
                    if col is not None:
                        cols.append(col)
                    else:
                        const *= st.get(d, 1)
                per_level.setdefault(node.child_levels[i], {}).setdefault(t, []).append(
                    (const, cols, node.precision[i]))
            for lvl, tensors in per_level.items():
                if self.cap.get(lvl) is not None:
                    self.checks.append((self.cap[lvl], list(tensors.values())))

    def ok(self, vals: np.ndarray) -> np.ndarray:
        good = np.ones(len(vals), dtype=bool)
        for cap, tensors in self.checks:
            total = np.zeros(len(vals), dtype=np.int64)
            for terms in tensors:
                best = None
                for const, cols, prec in terms:
                    e = np.full(len(vals), const, dtype=np.int64)
                    for c in cols:
                        e = e * vals[:, c]
                    b = np.maximum(1, e * prec // 8)
                    best = b if best is None else np.maximum(best, b)
                total += best
            good &= 2 * total <= cap
        return good


class SplitPlan:
    """Built once per BatchEvaluator; `evaluate` prices unique candidate rows."""

    @staticmethod
    def build(ev) -> "SplitPlan | None":
        try:
            return SplitPlan(ev)
        except Exception:  # noqa: BLE001 - an optimisation only: a tree it cannot analyse
            return None  # is priced by the scalar walk

    def __init__(self, ev):
        self.ev = ev
        nodes = ev.nodes
        pos = {id(n): i for i, n in enumerate(nodes)}
        root = ev.program.root
        if not isinstance(root, TileNode):
            raise _NoFit
        chain = []
        n = root
        while isinstance(n, TileNode) and len(n.body) == 1 and isinstance(n.body[0], TileNode):
            chain.append(n)
            n = n.body[0]
        S = n
        if not (isinstance(S, TileNode) and S.kind == "temporal" and len(S.body) == 1
                and isinstance(S.body[0], BindingNode) and S.body[0].kind == "sequential"):
            raise _NoFit
        kids = S.body[0].children
        if not kids or not isinstance(kids[0], TileNode):
            raise _NoFit
        if any(isinstance(x, BindingNode) and x.kind != "sequential" for x in nodes):
            raise _NoFit  # staged bindings (Walker._visit_staged) are priced by the scalar walk
        subs, owner = [], {}  # subtrees; colop position -> subtree index before it
        for c in kids:
            if isinstance(c, TileNode):
                if any(isinstance(x, ColOpNode) for x in _sub_preorder(c)):
                    raise _NoFit
                subs.append(c)
            elif isinstance(c, ColOpNode):
                if c.wb_output or not self._produces(subs[-1], c):
                    raise _NoFit
                owner[pos[id(c)]] = len(subs) - 1
            else:
                raise _NoFit
        seen: set = set()
        for sub in subs:  # a (tensor, op) pair's strides must come from one subtree only
            pairs = {(t, g) for x in _sub_preorder(sub) if isinstance(x, TileNode) for t, g in zip(x.tensors, x.tags)}
            if pairs & seen:
                raise _NoFit
            seen |= pairs
        for t in chain:
            if t.kind == "spatial" and any(not ev.accel.level(c).is_compute and ev.accel.memory(c).shared_ports
                                           for c in t.child_levels):
                raise _NoFit
        self.chain, self.S, self.subs = chain, S, subs
        self.upper_pairs = {(t, g) for x in chain + [S] for t, g in zip(x.tensors, x.tags)}
        self.chain_pos = [pos[id(t)] for t in chain]
        self.s_pos = pos[id(S)]
        self.colops = owner
        self.sub_nodes = [[pos[id(x)] for x in _sub_preorder(s)] for s in subs]
        upper_nodes = set(self.chain_pos) | {self.s_pos}
        slots = ev.space.slots
        self.upper_cols = [j for j, s in enumerate(slots) if s.node_index in upper_nodes]
        self.sub_sets = [set(sn) for sn in self.sub_nodes]
        self.sub_cols = [[j for j, s in enumerate(slots) if s.node_index in set(sn)] for sn in self.sub_nodes]
        self.upper_tiles = [k for k, i in enumerate(ev.tiles) if i in upper_nodes]
        self.sub_tiles = [[k for k, i in enumerate(ev.tiles) if i in set(sn)] for sn in self.sub_nodes]
        covered = upper_nodes | {p for sn in self.sub_nodes for p in sn} | set(owner) | {pos[id(S.body[0])]}
        if covered != set(range(len(nodes))):
            raise _NoFit
        self.capacity = _Capacity(ev)
        self.loops_walker = Walker(ev.program, ev.accel)
        # pre-order positions whose energy the single path adds (TileNode / ColOpNode)
        self.energy_nodes = [i for i, x in enumerate(nodes) if isinstance(x, (TileNode, ColOpNode))]
        from comet_ir.backends.cost.batched_subtree import SubtreeKernel

        # subtrees priced as array code over all their pairs (None: the subtree-only walk)
        self.kernels = [SubtreeKernel.build(self, i) for i in range(len(subs))]
        if any(k is not None for k in self.kernels):
            self._verify_kernels()

    @staticmethod
    def _produces(sub, col: ColOpNode) -> bool:
        for x in _sub_preorder(sub):
            if isinstance(x, TileNode):
                for t, tg in zip(x.tensors, x.targets):
                    if t == col.tensor_in and tg == col.target:
                        return True
        return False

    # -------------------------------------------------------------- per-node records of a walk
    def _walk(self, values, order, skip=()) -> Walker:
        """The walk of one candidate; subtrees in `skip` are not priced (their numbers are
        known): they get cost 0 and no accesses, so S and the chain are wrong in such a walk,
        but no other subtree is affected (siblings only meet in S's cost and the chain)."""
        ev = self.ev
        ev._apply(values, order)
        w = _SkipWalker(ev.program, ev.accel, ev, {id(self.subs[i]) for i in skip})
        w.build_loops()
        w.build_movement()
        w.visit(ev.program.root)
        # the energy walk, noting what S hands its children (every child gets a copy of the
        # same two count maps): a later subtree-only walk continues from there
        first = self.subs[0]
        orig = ss._energy

        def note(w_, n, nsp, icm):
            if n is first:
                w_._s_counts = (ss._copy(nsp), ss._copy(icm))
            return orig(w_, n, nsp, icm)

        ss._energy = note
        try:
            estimate_energy(w)
        finally:
            ss._energy = orig
        return w

    def _subtree_walk(self, w: Walker, i: int) -> None:
        """Re-price subtree i (and the collectives after it) in the walker of a candidate with
        the same upper key, for the program as applied now: the subtree's loop nest, moves,
        steady-state walk and energy, from S's state (its loop nest, moves, the counts it
        hands its children), which the upper key fixes."""
        sub = self.subs[i]
        cols = [self.ev.nodes[p] for p, o in sorted(self.colops.items()) if o == i]
        ids = [id(x) for x in _sub_preorder(sub)] + [id(c) for c in cols]
        for d in (w.loop, w.dm, w.reuse, w.actual, w.rampup, w.rampdown, w.cost, w.arch_cost, w.level_cost,
                  w.windows, w.access, w.col, w.energy, w.noc, w.energy_t, w.parent_iters):
            for x in ids:
                d.pop(x, None)
        w.stride, w.steps, w.outputs = {}, {}, {}
        w._loops(sub)
        for c in cols:
            w._loops(c)
        w.build_movement(sub)
        w.visit(sub)
        for c in cols:
            w.visit(c)
        nsp, icm = w._s_counts
        ss._energy(w, sub, ss._copy(nsp), ss._copy(icm))
        kids = w.kids[id(self.S)]
        for c in cols:  # steady_state._energy's collective branch under a temporal S
            k = kids.index(c)
            in_tid = w.tid.get(c.tensor_in, -1)
            ops_left = [tg for x in kids[:k] if isinstance(x, TileNode)
                        for t, tg in zip(x.tensors, x.tags) if t == c.tensor_in]
            ss.scale_collective_by_producer(w, c, ops_left, in_tid, sub)

    def _node_vals(self, w: Walker, p: int) -> tuple[int, float]:
        from comet_ir.backends.cost.model import _row

        n = self.ev.nodes[p]
        e = sum(w.energy.get(id(n), {}).values()) + sum(w.noc.get(id(n), {}).values())
        leaf = isinstance(n, TileNode) and w._is_leaf(n)
        lat = 0
        if isinstance(n, ColOpNode) or (isinstance(n, TileNode) and (n.kind == "spatial" or leaf)):
            its = w.parent_iters.get(id(n), 1)
            for nlc in w.level_cost.get(id(n), {}).values():
                cs, os_, ct, _ = _row(w, n, nlc)
                lat += (cs + os_) * its
                if leaf:
                    lat += ct * its
        return lat, e

    def _chain_ok(self, w: Walker) -> bool:
        return all(all(v == 1 for v in w.reuse.get(id(t), {}).values()) for t in self.chain if t.kind == "spatial")

    def _revisit_chain(self, w: Walker, W: int) -> int:
        from comet_ir.backends.cost.model import _row

        w.cost[id(self.S)] = W
        lat = 0
        w.visit = lambda c: None  # children are priced already: visit only the chain tile itself
        try:
            for t in reversed(self.chain):
                for d in (w.windows, w.arch_cost, w.level_cost, w.access):
                    d.pop(id(t), None)
                Walker.visit(w, t)
                if t.kind == "spatial":
                    its = w.parent_iters.get(id(t), 1)
                    for nlc in w.level_cost.get(id(t), {}).values():
                        cs, os_, _, _ = _row(w, t, nlc)
                        lat += (cs + os_) * its
        finally:
            del w.visit
        return lat

    def _chain_vec(self, w: Walker, Ws: np.ndarray) -> np.ndarray | None:
        """Chain latency for every child cost in `Ws` at once (numpy), or None where a chain
        tile is outside what this covers. With one child, no binding, reuse 1 and private
        ports, a spatial tile's walk depends on its child cost W only through the window
        (W per iteration): each stall is max(0, transfer - window), windows shrink by earlier
        tensors' transfers on the same port (node1_node2), compute window = W x iterations."""
        lat = np.zeros(len(Ws), dtype=np.int64)
        Wc = Ws.astype(np.int64)
        for t in reversed(self.chain):
            if t.kind != "spatial":
                continue  # one child, no binding: cost of the child, not counted
            r = self._spatial_vec(w, t, Wc)
            if r is None:
                return None
            lt, Wc = r
            lat += lt
        return lat

    def _spatial_vec(self, w: Walker, t: TileNode, W: np.ndarray):
        L = w.loop[id(t)]
        maxit = max(L.iters) if L.iters else 1
        child = w.kids[id(t)][-1]
        ac_all = w.arch_cost.get(id(t), {})
        if (w.bindings[id(t)] or w.binding_of(t) != "none" or list(ac_all) != [id(child)]
                or not isinstance(child, TileNode) or w._is_leaf(child)):
            return None
        if any(len(w.dm[id(t)][i]) > maxit for i in range(len(t.tensors))):
            return None
        ac = ac_all[id(child)]
        if sum(len(v) for v in ac.values()) != sum(1 for g in t.tags if g in child.tags):
            return None  # an untouched child (no matching tensor) is not covered
        G = len(W)
        ct_in = (W * maxit) & U32
        pairs = sorted(ac, key=w.pair_key)
        entries = [(pr[0], idx, per[idx]) for pr in pairs for idx in (0, 1) for per in ac[pr]
                   if len(per) > idx and per[idx].stall]
        if any(p_.reuse != 1 or not p_.hide or any(v for v in p_.cstall) for _, _, p_ in entries):
            return None
        win: dict[str, list[np.ndarray]] = {}
        for tgt, _, p_ in entries:
            win.setdefault(tgt, []).append(np.repeat(W[None, :], len(p_.ctv), axis=0))
        out: dict[str, list[dict]] = {}
        tcount: dict[str, int] = {}
        by_tgt: dict[str, list[int]] = {}
        for tgt, idx, _ in entries:
            by_tgt.setdefault(tgt, []).append(idx)
        for tgt, idx, p_ in entries:
            if tgt not in out:
                out[tgt] = [dict(ru=0, rd=0, ct=np.zeros(G, dtype=np.int64), cum=0,
                                 stall=np.zeros((maxit, G), dtype=np.int64)) for _ in (0, 1)]
                tcount[tgt] = 0
            tc = tcount[tgt]
            o = out[tgt][idx]
            o["ru"] += p_.ramp_up
            o["rd"] += p_.ramp_down
            o["ct"] = np.maximum(o["ct"], ct_in)
            o["cum"] += p_.cum
            mw = win[tgt][tc]
            for k in range(idx, min(maxit, len(mw))):
                mn = p_.mem_net[k] if k < len(p_.mem_net) else 0
                o["stall"][k] += np.maximum(mn - mw[k], 0)
                for kt, idx1 in enumerate(by_tgt[tgt]):
                    if idx1 == idx and kt != tc:
                        w1 = win[tgt][kt]
                        if k < len(w1) and k < len(p_.mem_net):
                            w1[k] = np.maximum(w1[k] - p_.mem_net[k], 0)
            tcount[tgt] += 1
        # node_cost_of + total
        ru = np.zeros(G, dtype=np.int64)
        rd = np.zeros(G, dtype=np.int64)
        ct = np.zeros(G, dtype=np.int64)
        st = np.zeros((maxit, G), dtype=np.int64)
        for li, level in enumerate(sorted(out, key=w.seq)):
            for idx in (0, 1):
                c = out[level][idx]
                on = c["ct"] != 0
                ru = np.where(on, np.maximum(ru, c["ru"]), ru)
                rd = np.where(on, np.maximum(rd, c["rd"]), rd)
                ct = np.where(on, np.maximum(ct, c["ct"]), ct)
                for k in range(idx, maxit):
                    v = c["stall"][k]
                    st[k] = np.where(on, v if li == 0 else np.maximum(st[k], v), st[k])
        s = st.sum(axis=0)
        s = ((s & U32) ^ 0x80000000) - 0x80000000
        cost = (ct + ru + rd + s) & U32
        # model._row
        cs_port = [0, 0]
        cwin = np.zeros(G, dtype=np.int64)
        for level in sorted(out, key=w.seq):
            pair = out[level]
            cwin = np.maximum(cwin, np.maximum(pair[0]["ct"], pair[1]["ct"]))
            for idx in (0, 1):
                cs_port[idx] = max(cs_port[idx], pair[idx]["ru"] + pair[idx]["rd"])
        cs = cs_port[0] + cs_port[1]
        os_ = np.maximum(cost - cs - cwin, 0)
        return (cs + os_) * w.parent_iters.get(id(t), 1), cost

    def _exports(self, i: int, values, order) -> tuple:
        ev, w = self.ev, self.loops_walker
        ev._apply(values, order, only=self.sub_sets[i])
        w.stride, w.steps, w.outputs = {}, {}, {}
        w._loops(self.subs[i])
        # only the strides of pairs the chain and S hold reach them (tile-step counts feed
        # L.rts, which only leaves read)
        return tuple(sorted((k, tuple(sorted(v.items()))) for k, v in w.stride.items() if k in self.upper_pairs))

    # -------------------------------------------------------------- the batch
    def evaluate(self, vals: np.ndarray, oidx: np.ndarray, table: list):
        """(latency, energy, priced) for unique rows; rows not priced go to the scalar path."""
        b = len(vals)
        lat = np.zeros(b, dtype=np.int64)
        en_out = np.full(b, np.nan)
        priced = self.capacity.ok(vals)
        rows = np.flatnonzero(priced)
        if len(rows) == 0:
            return np.full(b, np.nan), en_out, priced
        V = vals[rows]
        ntiles = len(self.ev.tiles)
        T = np.zeros((len(table), ntiles), dtype=np.int64)
        for k, col in enumerate(zip(*table)):
            cd = {o: j for j, o in enumerate(dict.fromkeys(col))}
            T[:, k] = np.fromiter(map(cd.__getitem__, col), dtype=np.int64, count=len(col))
        oi = oidx[rows]
        O = T[oi]

        def order_of(r: int):
            return table[int(oi[r])]

        def key(cols, tiles, extra=()):
            m = np.concatenate([V[:, cols], O[:, tiles], *extra], axis=1) if (cols or tiles or extra) \
                else np.zeros((len(V), 1), dtype=np.int64)
            return unique_rows(m)

        # what each subtree exports upwards, per distinct subtree key
        sub_first, sub_inv, exp_ids, nests = [], [], [], []
        for i in range(len(self.subs)):
            first, inv = key(self.sub_cols[i], self.sub_tiles[i])
            kern = self.kernels[i]
            nests.append(None)
            if kern is not None:
                sub_orders = [order_of(int(r))[kern.tile_k[0]] for r in first]
                mat, nests[i] = kern.exports(V[first], sub_orders)
                _, ids = unique_rows(mat)
            else:
                fp: dict = {}
                ids = np.array([fp.setdefault(self._exports(i, V[r], order_of(int(r))), len(fp)) for r in first],
                               dtype=np.int64)
            sub_first.append(first)
            sub_inv.append(inv)
            exp_ids.append(ids[inv][:, None])
        _, up = key(self.upper_cols, self.upper_tiles, exp_ids)
        # (upper key, subtree key) pairs
        pair_first, pair_inv = [], []
        for i in range(len(self.subs)):
            first, inv = unique_codes(up * (int(sub_inv[i].max()) + 1) + sub_inv[i])
            pair_first.append(first)
            pair_inv.append(inv)
        owned = [list(sn) + [p for p, o in self.colops.items() if o == i] for i, sn in enumerate(self.sub_nodes)]
        ncol = [sum(1 for o in self.colops.values() if o == i) for i in range(len(self.subs))]
        nq = [len(f) for f in pair_first]
        # per pair: subtree cost, its collectives' costs, per owned node (latency, energy)
        s_cost = [np.zeros(nq[i], dtype=np.int64) for i in range(len(self.subs))]
        s_col = [[np.zeros(nq[i], dtype=np.int64) for _ in range(ncol[i])] for i in range(len(self.subs))]
        s_lat = [{p: np.zeros(nq[i], dtype=np.int64) for p in owned[i]} for i in range(len(self.subs))]
        s_en = [{p: np.zeros(nq[i], dtype=np.float64) for p in owned[i]} for i in range(len(self.subs))]

        def record(w, i, q):
            for p in owned[i]:
                s_lat[i][p][q], s_en[i][p][q] = self._node_vals(w, p)
            s_cost[i][q] = w.cost[id(self.subs[i])]
            for k, (p, _) in enumerate(sorted((p, o) for p, o in self.colops.items() if o == i)):
                s_col[i][k][q] = w.cost[id(self.ev.nodes[p])]

        upper_rec: dict[int, tuple] = {}  # upper key -> (walker, chain ok, {pos: energy}, maxit of S)
        nU = int(up.max()) + 1
        rep_of = np.full(nU, -1, dtype=np.int64)
        rep_of[up[::-1]] = np.arange(len(up))[::-1]  # first row of each upper key
        pair_up = [up[pf] for pf in pair_first]
        kern_subs = {i for i, k in enumerate(self.kernels) if k is not None}
        for u in range(nU):
            r = int(rep_of[u])
            # one walk per upper key for S's state and the chain; the subtrees the kernels price
            # are skipped in it, the others are priced by it on this row's pair
            w = self._walk(V[r], order_of(r), skip=kern_subs)
            L = w.loop[id(self.S)]
            upper_rec[u] = (w, self._chain_ok(w),
                            {p: self._node_vals(w, p)[1] for p in self.chain_pos + [self.s_pos]},
                            max(L.iters) if L.iters else 1)
            for i in range(len(self.subs)):
                qs = np.flatnonzero(pair_up[i] == u)
                kern = self.kernels[i]
                if kern is None:
                    q0 = int(pair_inv[i][r])
                    record(w, i, q0)
                    todo = qs[qs != q0]
                else:
                    prow = pair_first[i][qs]
                    # one upper key: pair q is subtree key q, whose loop nest the exports hold
                    nest = nests[i] if nU == 1 and len(qs) == len(sub_first[i]) else None
                    res = kern.evaluate(w, V[prow], [order_of(int(x))[kern.tile_k[0]] for x in prow], nest)
                    good = res.ok
                    gq = qs[good]
                    s_cost[i][gq] = res.cost[good]
                    for k in range(ncol[i]):
                        s_col[i][k][gq] = res.col_costs[k][good]
                    for p in owned[i]:
                        s_lat[i][p][gq] = res.node_lat[p][good]
                        s_en[i][p][gq] = res.node_en[p][good]
                    todo = qs[~good]
                    if len(todo):
                        w._skip.discard(id(self.subs[i]))
                for q in todo.tolist():
                    # a subtree-only walk reads only the subtree's nodes (and S's stored state)
                    rr = int(pair_first[i][q])
                    self.ev._apply(V[rr], order_of(rr), only=self.sub_sets[i])
                    self._subtree_walk(w, i)
                    record(w, i, q)
        # cost of S per candidate (sequential: children's costs, a collective once per iteration)
        maxit = np.array([upper_rec[u][3] for u in range(nU)], dtype=np.int64)[up]
        W = np.zeros(len(V), dtype=np.int64)
        node_lat: dict[int, np.ndarray] = {}
        node_en: dict[int, np.ndarray] = {}
        for i in range(len(self.subs)):
            inv = pair_inv[i]
            W += s_cost[i][inv]
            for k in range(ncol[i]):
                W += maxit * s_col[i][k][inv]
            for p in owned[i]:
                node_lat[p] = s_lat[i][p][inv]
                node_en[p] = s_en[i][p][inv]
        W &= U32
        for p in self.chain_pos + [self.s_pos]:
            node_en[p] = np.array([upper_rec[u][2][p] for u in range(nU)], dtype=np.float64)[up]
        # chain tiles: one re-visit per distinct (upper key, W)
        chain_ok = np.array([upper_rec[u][1] for u in range(nU)], dtype=bool)[up]
        gm = np.stack([up, W], axis=1)
        gfirst, ginv = unique_rows(gm)
        g = gm[gfirst]
        glat = np.zeros(len(g), dtype=np.int64)
        for u in sorted(set(g[:, 0].tolist())):
            if not upper_rec[u][1]:
                continue
            sel = np.flatnonzero(g[:, 0] == u)
            w = upper_rec[u][0]
            vec = self._chain_vec(w, g[sel, 1])
            # the array form is checked against the scalar re-visit on this key's first W
            if vec is not None and int(vec[0]) == self._revisit_chain(w, int(g[sel[0], 1])):
                glat[sel] = vec
            else:
                for k in sel.tolist():
                    glat[k] = self._revisit_chain(w, int(g[k, 1]))
        total = glat[ginv.reshape(-1)]
        for arr in node_lat.values():
            total = total + arr
        energy = np.zeros(len(V), dtype=np.float64)
        for p in self.energy_nodes:
            energy = energy + node_en[p]
        lat[rows] = total
        en_out[rows] = energy
        priced[rows] = chain_ok
        out = lat.astype(np.float64)
        out[~priced] = np.nan
        en_out[~priced] = np.nan
        return out, en_out, priced

    def _verify_kernels(self) -> None:
        """Each subtree kernel against the walk of the template candidate (the program's own
        factors and orders), once per evaluator: a kernel that does not reproduce the walk's
        numbers exactly (cycles and pJ of every node it prices) is not used. The walk's caches
        are emptied afterwards (a new evaluator starts cold)."""
        ev = self.ev
        row = np.array([ev.template_values], dtype=np.int64)
        order = ev.template_orders
        try:
            w = self._walk(row[0], order)
            for i, kern in enumerate(self.kernels):
                if kern is None:
                    continue
                res = kern.evaluate(w, row, [order[kern.tile_k[0]]])
                cols = [w.cost[id(self.ev.nodes[p])] for p, o in sorted(self.colops.items()) if o == i]
                owned = list(self.sub_nodes[i]) + [p for p, o in self.colops.items() if o == i]
                same = bool(res.ok[0]) and int(res.cost[0]) == w.cost[id(self.subs[i])] \
                    and [int(c[0]) for c in res.col_costs] == cols \
                    and all((int(res.node_lat[p][0]), float(res.node_en[p][0])) == self._node_vals(w, p)
                            for p in owned)
                if not same:
                    self.kernels[i] = None
        except Exception:  # noqa: BLE001 - an optimisation only: unverified kernels are not used
            self.kernels = [None] * len(self.subs)
        finally:
            ev._moves.clear()
            ev._mt.clear()
            ev._leaves.clear()


class _SkipWalker(_FastWalker):
    def __init__(self, program, arch, ev, skip):
        super().__init__(program, arch, ev)
        self._skip = skip

    def visit(self, n) -> None:
        if id(n) in self._skip:
            self.cost[id(n)] = 0
            return
        super().visit(n)

    def build_movement(self, n=None) -> None:
        if n is not None and id(n) in self._skip:
            return
        super().build_movement(n)


class _NoFit(Exception):
    pass
