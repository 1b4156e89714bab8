"""A leaf tile's steady-state walk as array code over its iterations (exact).

Steady_state.Walker._visit_leaf walks every iteration of a leaf tile (a temporal tile around one
compute) in Python: per tensor `target_child_cost`/`evaluate` build the per-iteration transfer
list, `node1_node2` merges the tensors leaving one memory (each tensor's stall is its transfer
minus its window, the window being shrunk by the transfers of the tensors merged before it on
the same port), `node_cost_of` combines memories. With leaves of tens of thousands of
iterations that is most of a batch's time. Here the same quantities are numpy expressions:

* a tensor's moves are periodic (a new tile iff k % P == 0, batched._Moves.period), so the
  transfer of iteration k is one of two values (two `_move_time` calls), plus the DMA rule (the
  network part only on the first and last iteration);
* `evaluate`'s index bookkeeping (ramp-up/ramp-down iteration, k // reuse re-indexing, the
  `different` shift) are masks over k;
* in `node1_node2` every window starts as one constant (ctv = rts x t_op x reuse, no port use
  at a leaf), and the clamped subtractions max(0, max(0, w - a) - b) = max(0, w - a - b) (all
  transfers >= 0), so a tensor's window is its constant minus the summed transfers of the
  tensors before it, scattered by (j + k f_b) // f_a (np.add.at); the merged port's reuse is
  always 1 there (min(1, reuse)), which `node_cost_of` then reads;
* `node_cost_of`'s first-memory quirk (the write port's stalls replace the read port's) is kept.

Only what the rest of the walk reads is produced: the leaf's cost, its level_cost TCs' scalar
fields (compute_time, ramp_up, ramp_down, cum, reuse -- model._row and _port_use), the access
records, ramp-ups/ramp-downs. Per-iteration lists are left empty. Anything outside the covered
case (an empty loop, a 32-bit wrap of the compute window, a non-finite or negative transfer,
moves not built by the batched walker, a DMA-contiguous target -- no test case has one) returns False and the scalar walk runs.
"""
from __future__ import annotations

import math

import numpy as np

from comet_ir.backends.cost import units
from comet_ir.backends.cost.steady_state import TC, U32, Access, _i32


def _tensor(w, L, i, target, child, moves, t_op, maxit, different):
    """The TC fields of tensor i (target_child_cost + evaluate), with mem_net as an array."""
    period = getattr(moves, "period", None)
    n = len(moves)
    if period is None or n != L.iters[i] or n == 0:
        return None
    rw = bool(L.rw[i])
    actual = (n - 1) // period + 1
    f = (n // actual) or 1
    nst = L.rts[i] * t_op
    if nst < 0:
        return None
    mv_new, mv_old = moves[0], (moves[1] if n > 1 else moves[0])
    m_new, t_new, _ = w._move_time(mv_new, L, i, target, child)
    m_old, t_old, _ = w._move_time(mv_old, L, i, target, child)
    for v in (m_new, t_new, m_old, t_old):
        if not isinstance(v, int) or v < 0:
            return None
    dma = w.mem(target).dma_contiguous
    if dma:
        return None  # no preset has a DMA-contiguous leaf target: untested, so the scalar walk
    pseudo = n if different else n // f
    its = min(maxit, actual)
    kneed = min(its, pseudo)  # node1_node2 reads mem_net[k] for k < its only

    e_new, e_old = m_new + t_new, m_old + t_old

    def eff(k):
        # the transfer of iterations k: a new tile or a reused one
        return np.where(k % period == 0, e_new, e_old)

    kskip = n - f if rw else 0  # the ramp-down (write) or ramp-up (read) iteration
    e_skip = e_new if kskip % period == 0 else e_old
    ramp_up, ramp_down = (0, e_skip) if rw else (e_skip, 0)
    start = 1 if rw else -1
    if different:
        # every iteration but the ramp one: counted, not listed
        nnew = (n - 1) // period + 1
        cum = nnew * e_new + (n - nnew) * e_old - e_skip
        step = 1
        brk = None
    else:
        # iterations 0, f, 2f, ...: j f is a new tile iff j is a multiple of period / gcd(f, period)
        nq = -(-n // f)
        g = period // math.gcd(f, period)
        nnew = (nq - 1) // g + 1
        cum = nnew * e_new + (nq - nnew) * e_old - (e_skip if kskip % f == 0 else 0)
        step = f
        # mem_net's change points when every listed iteration is a new tile: where k = (j - start) f
        # enters [0, n), leaves it, hits the ramp iteration, and where the listed part ends
        brk = None
        if f % period == 0:
            brk = [start, start + nq, kneed]
            if kskip % f == 0:
                brk += [kskip // f + start, kskip // f + start + 1]

    def mem_net(j):
        # evaluate's mem_net[j] for indices j (0 from kneed on: node1_node2 reads no further)
        k = (j - start) * step
        ok = (k >= 0) & (k < n) & (k != kskip) & (j < kneed)
        return np.where(ok, eff(k), 0).astype(np.int64)

    def mem_net1(j: int) -> int:
        k = (j - start) * step
        if k < 0 or k >= n or k == kskip or j >= kneed:
            return 0
        return e_new if k % period == 0 else e_old

    tc = TC(pseudo, t_op * maxit, [], [], [], [], f, True, int(cum), 0, ramp_up, ramp_down, pseudo,
            moves[0].size, 0.0)
    return tc, (mem_net, mem_net1), nst * f, actual, kneed, brk


def _steps(v, f, lo, hi):
    """v[j] on positions lo + j f .. lo + j f + f - 1, clipped to [lo, hi), 0 elsewhere, as a
    step function (breakpoints from 0, the value from each breakpoint on): one entry per run
    of equal values, not per iteration."""
    st = np.flatnonzero(v[1:] != v[:-1]) + 1
    st = np.concatenate(([0], st))
    pos = lo + st * f
    keep = pos < hi
    bp = np.concatenate(([0], pos[keep], [hi]))
    val = np.concatenate(([0], v[st[keep]], [0]))
    return bp, val


def _stall_sum_np(w, out, stalls, maxit) -> int:
    """node_cost_of's summed stall, on the union of the step functions' breakpoints."""
    bps = [np.array([0, min(1, maxit), maxit], dtype=np.int64)]
    bps += [np.asarray(bp, dtype=np.int64) for per in stalls.values() for fs in per for bp, _ in fs]
    B = np.unique(np.concatenate(bps))
    B = B[B <= maxit]
    X = B[:-1]
    stall = np.zeros(len(X), dtype=np.int64)
    for li, level in enumerate(sorted(out, key=w.seq)):
        for idx in (0, 1):
            if maxit and out[level][idx].compute_time != 0:
                v = np.zeros(len(X), dtype=np.int64)
                for bp, val in stalls[level][idx]:
                    v += np.asarray(val, dtype=np.int64)[np.searchsorted(np.asarray(bp), X, side="right") - 1]
                # the first memory's write port replaces its read port's stalls (from k = 1)
                stall = np.where(X >= idx, v if li == 0 else np.maximum(stall, v), stall)
    return int((stall * np.diff(B)).sum())


def _stall_sum_py(w, out, stalls, maxit) -> int:
    """_stall_sum_np in plain Python, for the usual handful of breakpoints (numpy's per-call
    cost dominates there)."""
    allb = {0, min(1, maxit), maxit}
    for per in stalls.values():
        for fs in per:
            for bp, _ in fs:
                allb.update(int(x) for x in bp)
    B = sorted(x for x in allb if x <= maxit)
    X = B[:-1]
    stall = [0] * len(X)
    for li, level in enumerate(sorted(out, key=w.seq)):
        for idx in (0, 1):
            if maxit and out[level][idx].compute_time != 0:
                v = [0] * len(X)
                for bp, val in stalls[level][idx]:
                    p, nb = 0, len(bp)
                    for xi, x in enumerate(X):
                        while p + 1 < nb and bp[p + 1] <= x:
                            p += 1
                        v[xi] += int(val[p])
                stall = [(vv if li == 0 else max(s, vv)) if x >= idx else s for x, s, vv in zip(X, stall, v)]
    return sum(s * (B[i + 1] - B[i]) for i, s in enumerate(stall))


def visit_leaf(w, n, L) -> bool:
    """Walker._visit_leaf for leaf tile n (loop L) in array form; False: not covered, nothing set."""
    op = w.kids[id(n)][0]
    unit = n.child_levels[0]
    if not w.lvl(unit).is_compute:
        return False  # the scalar walk raises the located error
    t_op = w.unit_time(op, unit)
    maxit = max(L.iters) if L.iters else 1
    if not L.iters or min(L.iters) <= 0 or t_op < 0 or t_op * maxit >= 1 << 31:
        return False
    different = len(set(L.iters)) > 1
    dm = w.dm[id(n)]
    ents = []
    for i in range(len(n.tensors)):
        r = _tensor(w, L, i, n.targets[i], n.child_levels[i], dm[i], t_op, maxit, different)
        if r is None:
            return False
        ents.append(r)
    # node1_node2: entries in (pair_key, port) order; each tensor has one entry, on its port
    pairs: dict = {}
    for i in range(len(n.tensors)):
        pairs.setdefault((n.targets[i], n.child_levels[i]), []).append(i)
    order = sorted(pairs, key=w.pair_key)
    out: dict[str, list] = {}
    stalls: dict[str, list] = {}
    done: dict[tuple, list] = {}  # (target, port) -> [(mem_net, f, K)] of entries merged so far
    for pr in order:
        tgt = pr[0]
        if tgt not in out:
            out[tgt] = [TC(maxit), TC(maxit)]
            stalls[tgt] = [[], []]
        for idx in (0, 1):
            for i in pairs[pr]:
                tc, (mn, mn1), c, actual, kneed, brk = ents[i]
                if (1 if L.rw[i] else 0) != idx or tc.n == 0:
                    continue
                o = out[tgt][idx]
                o.ramp_up += tc.ramp_up
                o.ramp_down += tc.ramp_down
                o.compute_time = max(o.compute_time, tc.compute_time)
                o.reuse = 1
                o.cum += tc.cum
                f = tc.reuse
                its = min(maxit, actual)
                lo, hi = idx * f, min(its * f, maxit)
                before = [d for d in done.get((tgt, idx), []) if d[2] > idx]
                kb = min(its, kneed)
                done.setdefault((tgt, idx), []).append((mn, f, kb))
                if idx >= its:
                    continue
                if not before and brk is not None:
                    # a constant window and a mem_net constant between its change points: the
                    # stall's runs from a few evaluations
                    if hi > lo:
                        cw = max(c, 0) // f
                        bp, val = [0], [0]
                        for j in sorted({idx, *(x for x in brk if idx < x < its)}):
                            if j * f < hi:
                                bp.append(j * f)
                                val.append(max(mn1(j) // f - cw, 0))
                        stalls[tgt][idx].append((bp + [hi], val + [0]))
                    continue
                # the window: its constant less what the tensors merged before it moved
                # (clamped step by step in the scalar walk; all transfers are >= 0)
                dsum = np.zeros(its, dtype=np.int64)
                for mb, fb, kb2 in before:
                    # iteration k of b, sub-step j lands on window (j + k fb) // f of this one
                    vals = np.repeat(mb(np.arange(idx, kb2, dtype=np.int64)) // fb, fb)
                    nn = (idx * fb + np.arange(len(vals), dtype=np.int64)) // f
                    starts = np.concatenate(([0], np.flatnonzero(np.diff(nn)) + 1))
                    sums = np.add.reduceat(vals, starts)
                    at = nn[starts]
                    keep = at < its
                    dsum[at[keep]] += sums[keep]
                wk = np.maximum(c - dsum, 0)
                kk = np.arange(idx, its, dtype=np.int64)
                s = mn(kk) // f - wk[idx:its] // f
                # iteration k's stall is added at k f .. k f + f - 1: one contiguous run
                if hi > lo:
                    stalls[tgt][idx].append(_steps(np.maximum(s, 0), f, lo, hi))
    # node_cost_of, on the union of the step functions' breakpoints (each value holds up to the
    # next breakpoint): the per-iteration arrays are a few runs (one value per period class)
    fns = [f_ for per in stalls.values() for fs in per for f_ in fs]
    if sum(len(bp) for bp, _ in fns) <= 256:
        stall_sum = _stall_sum_py(w, out, stalls, maxit)
    else:
        stall_sum = _stall_sum_np(w, out, stalls, maxit)
    ru = rd = ct = 0
    for level in out:
        for c in out[level]:
            if maxit and c.compute_time != 0:
                ru, rd, ct = max(ru, c.ramp_up), max(rd, c.ramp_down), max(ct, c.compute_time)
    cost = (ct + ru + rd + _i32(stall_sum)) & U32
    # the bookkeeping of Walker._visit_leaf
    acc = w.access.setdefault(id(n), [])
    ac: dict = {}
    ramp: dict = {}
    max_acc = 0
    for i, (t, tag) in enumerate(zip(n.tensors, n.tags)):
        tc = ents[i][0]
        target = n.targets[i]
        acc.append(Access(target, tc.access, tc.tile, n.precision[i], L.rw[i], True, False, L.tids[i], tag,
                          n.rmw[i], dm[i][0].unique or 1))
        max_acc = max(max_acc, tc.access)
        if not L.rw[i]:
            ramp.setdefault(target, {})[(L.tids[i], tag)] = tc.ramp_up
        else:
            w.rampdown.setdefault(id(n), {})[(L.tids[i], tag)] = tc.ramp_down
        pair = [TC(), TC()]
        pair[1 if L.rw[i] else 0] = tc
        ac.setdefault((target, n.child_levels[i]), []).append(pair)
    ctu = w.a.compute(unit)
    prim = [op.tile_primitive[d] for d in w.dims if d in op.tile_primitive]
    acc.append(Access(unit, max_acc, compute=True, target=False, tag=n.tags[0], tid=L.tids[0],
                      rmw=n.rmw[0], op=units.op_class(op.op_type),
                      comp_pj=units.unit_energy_per_invocation(ctu, prim, units.op_class(op.op_type))))
    w.arch_cost[id(n)] = {id(op): ac}
    w.level_cost[id(n)] = {id(op): out}
    w.cost[id(n)] = cost
    w._record_rampups(n, L, ramp)
    psize = math.prod(w.p.problem.dims[d] for d in w.p.problem.op(op.name).dims) \
        if op.name in {o.name for o in w.p.problem.ops} else 0
    w.comp_time[op.name] = (psize // max(math.prod(prim), 1)) * t_op // w._total_instances(unit)
    return True
