"""Batched cost evaluation == the single path (estimate_program), candidate by candidate.

The oracle is the single path on the candidate's own program (FactorSpace.apply + the loop
orders): cycles must be equal, energy equal (the same walk and the same summation order).
Candidates are random valid factorizations (CP-SAT enumeration of the tiling space) with
random loop orders, of the fused GEMM-Softmax on edge and of the reference's decomposed
softmax (edge, cloud) and GEMM-Softmax example."""
import math
import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from comet_ir.backends.cost.batched import BatchEvaluator, evaluate_batch
from comet_ir.backends.cost.model import estimate_program
from comet_ir.errors import CometError
from comet_ir.schedule.factors import FactorSpace, order_choices
from comet_ir.schedule.graph import preorder
from comet_ir.spec.presets import load_arch
from comet_ir.spec.reference import import_reference

REF = os.path.join(os.path.dirname(__file__), "..", "data", "reference")
IM = os.path.join(REF, "iterative_mapper")


def _gemm_softmax_edge():
    from comet_ir.api import run_pipeline
    from comet_ir.ir_tree import ir_to_tree, single_mapping
    from comet_ir.spec import workloads as w

    m = run_pipeline(w.gemm_softmax(256, 256, 128, arch="edge"), "fused-gemm-distsm")
    return load_arch("edge"), ir_to_tree(single_mapping(m))


CASES = {
    "gemm_softmax_edge": _gemm_softmax_edge,
    "ref_example": lambda: import_reference(os.path.join(REF, "example_run"), None, None),
    "ref_edge": lambda: import_reference(IM, os.path.join(IM, "arch.yaml"),
                                         os.path.join(IM, "edge_M256N256K128_const.yaml")),
    "ref_cloud": lambda: import_reference(IM, os.path.join(IM, "arch_cloud.yaml"),
                                          os.path.join(IM, "cloud_M1024N1024K512_const.yaml")),
}
_SPACES: dict = {}


def _space(case):
    if case not in _SPACES:
        arch, prog = CASES[case]()
        sp = FactorSpace(prog, arch)
        sols = sp.enumerate_solutions(cap=400, time_limit=10)
        _SPACES[case] = (arch, prog, sp, sols, BatchEvaluator(prog, arch, space=sp))
    return _SPACES[case]


def _single(sp, arch, values, orders, tiles):
    prog = sp.apply(tuple(int(v) for v in values))
    nodes = preorder(prog.root)
    for i, o in zip(tiles, orders):
        nodes[i].order = o
    try:
        r = estimate_program(prog, arch)
    except CometError:
        return None
    return r.latency_cycles, r.energy_pj


@pytest.mark.parametrize("case", list(CASES))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batched_equals_single_path(case, data):
    arch, prog, sp, sols, ev = _space(case)
    k = data.draw(st.integers(1, 5))
    rows = [sols[data.draw(st.integers(0, len(sols) - 1))] for _ in range(k)]
    orders = []
    for v in rows:
        nodes = preorder(sp.apply(v).root)
        orders.append(tuple(data.draw(st.sampled_from(order_choices(nodes[i]))) for i in ev.tiles))
    rows.append(rows[0])  # a repeated candidate is priced once and reported twice
    orders.append(orders[0])
    res = ev.evaluate(np.array(rows), orders)
    for j, (v, o) in enumerate(zip(rows, orders)):
        want = _single(sp, arch, v, o, ev.tiles)
        if want is None:
            assert not res.valid[j] and j in res.errors
            continue
        assert res.valid[j]
        assert res.latency[j] == want[0]
        assert res.energy[j] == want[1]


def test_template_reproduces_reference_totals():
    # the reference's recorded totals (tests/data/reference/*_reference_output.txt)
    for case, cycles in (("ref_example", 3_141_418), ("ref_edge", 74_660), ("ref_cloud", 810_477)):
        arch, prog = CASES[case]()
        sp = FactorSpace(prog, arch)
        res = evaluate_batch(prog, [[s.value for s in sp.slots]], accel=arch, space=sp)
        assert res.latency[0] == cycles


def test_overflowing_candidate_is_invalid_not_an_exception():
    arch, prog, sp, sols, ev = _space("gemm_softmax_edge")
    # everything of M, N and K inside the GEMM leaf tile: A, B and C tiles of the whole
    # 256x128 / 128x256 / 256x256 problem per IB/WB/OB overflow the 32 KB buffers
    v = list(ev.template_values)
    names = [(s.node_index, s.dim) for s in sp.slots]
    leaf = next(s.node_index for s in sp.slots if not s.is_compute and s.value == 16)
    for (ni, d), s in zip(names, sp.slots):
        if s.is_compute or ni >= leaf:
            continue
        j = names.index((leaf, d))
        v[j] *= v[names.index((ni, d))]
        v[names.index((ni, d))] = 1
    res = ev.evaluate(np.array([v, list(ev.template_values)]))
    assert list(res.valid) == [False, True]
    assert "needs" in res.errors[0] and math.isnan(res.latency[0])


def test_bad_shapes_are_errors():
    arch, prog, sp, sols, ev = _space("gemm_softmax_edge")
    with pytest.raises(CometError, match="slots"):
        ev.evaluate(np.ones((2, 3), dtype=int))
    with pytest.raises(CometError, match="orders"):
        ev.evaluate(np.array([ev.template_values]), [("KNM",)])


def test_random_rows_match_without_hypothesis_shrinking():
    # a fixed, larger sample (seeded) across the whole enumerated space of the fused edge case
    arch, prog, sp, sols, ev = _space("gemm_softmax_edge")
    rng = random.Random(7)
    rows = rng.sample(sols, 20)
    res = ev.evaluate(np.array(rows))
    for j, v in enumerate(rows):
        want = _single(sp, arch, v, ev.template_orders, ev.tiles)
        assert (want is None and not res.valid[j]) or (res.latency[j], res.energy[j]) == want


@pytest.mark.parametrize("case", ["gemm_softmax_edge", "ref_edge", "ref_cloud"])
def test_split_plan_equals_scalar_walk_on_a_large_batch(case):
    # the split plan (batched_split.py) shares subtree walks between candidates: a large batch
    # with many shared subtree keys is where a missed dependency would show. Oracle: the
    # scalar walk per candidate (itself == estimate_program, above) and estimate_program on a
    # sample; an overflowing row is mixed in.
    arch, prog, sp, sols, ev = _space(case)
    assert ev.split is not None  # these trees have the split shape; the test must exercise it
    rng = random.Random(11)
    rows = [list(v) for v in rng.sample(sols, min(150, len(sols)))]
    orders = []
    for v in rows:
        nodes = preorder(sp.apply(tuple(v)).root)
        orders.append(tuple(rng.choice(order_choices(nodes[i])) for i in ev.tiles))
    # compute tile steps x 2^20: every buffer below the top overflows
    big = [v << 20 if s.is_compute else v for v, s in zip(ev.template_values, sp.slots)]
    rows.append(big)
    orders.append(ev.template_orders)
    res = ev.evaluate(np.array(rows), orders)
    scalar = BatchEvaluator(prog, arch, space=sp)
    scalar.split = None
    want = scalar.evaluate(np.array(rows), orders)
    assert np.array_equal(res.valid, want.valid) and not res.valid[-1]
    assert np.array_equal(res.latency, want.latency, equal_nan=True)
    assert np.array_equal(res.energy, want.energy, equal_nan=True)
    assert res.errors == want.errors
    for k in rng.sample(range(len(rows) - 1), 10):
        single = _single(sp, arch, rows[k], orders[k], ev.tiles)
        assert (single is None and not res.valid[k]) or (res.latency[k], res.energy[k]) == single


def _leaf_state(w, n):
    from comet_ir.backends.cost.model import _row

    op = w.kids[id(n)][0]
    nlc = w.level_cost[id(n)][id(op)]
    fields = {lv: [(tc.compute_time, tc.ramp_up, tc.ramp_down, tc.cum, tc.reuse or 1) for tc in pair]
              for lv, pair in nlc.items()}
    acc = [sorted(vars(a).items()) for a in w.access[id(n)]]
    return (w.cost[id(n)], fields, _row(w, n, nlc)[:3], acc, w.rampup.get(id(n)), w.rampdown.get(id(n)),
            w.comp_time[op.name])


@pytest.mark.parametrize("case", list(CASES))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_leaf_array_walk_equals_scalar_leaf_walk(case, data):
    # batched_leaf.visit_leaf (the leaf walk as array code) against Walker._visit_leaf on the
    # leaves of random candidates: cost, merged per-memory fields, _row, accesses, ramps
    from comet_ir.backends.cost.batched import _FastWalker
    from comet_ir.backends.cost.batched_leaf import visit_leaf
    from comet_ir.backends.cost.steady_state import Walker

    arch, prog, sp, sols, ev = _space(case)
    v = sols[data.draw(st.integers(0, len(sols) - 1))]
    nodes = preorder(sp.apply(v).root)
    o = tuple(data.draw(st.sampled_from(order_choices(nodes[i]))) for i in ev.tiles)
    ev._apply(v, o)
    ref = Walker(ev.program, arch)
    ref.build_loops()
    ref.build_movement()
    ref.visit(ev.program.root)
    fast = _FastWalker(ev.program, arch, ev)
    fast.build_loops()
    fast.build_movement()
    leaves = [n for n in ev.nodes if n.__class__.__name__ == "TileNode" and ref._is_leaf(n)]
    assert leaves
    for n in leaves:
        assert visit_leaf(fast, n, fast.loop[id(n)])  # the covered case: no fallback here
        assert _leaf_state(fast, n) == _leaf_state(ref, n)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_leaf_stall_runs_equal_per_iteration_arrays(data):
    # the leaf walk's stalls as step functions (batched_leaf._steps, summed and merged across
    # memories on their breakpoints) against the per-iteration arrays they replace: each
    # contribution adds v[j] on iterations lo + j f .. lo + j f + f - 1 (clipped to [lo, hi)),
    # then node_cost_of: the first memory's ports replace (port 1 from iteration 1 on), later
    # memories take the elementwise max
    from types import SimpleNamespace

    from comet_ir.backends.cost.batched_leaf import _stall_sum_np, _stall_sum_py, _steps

    maxit = data.draw(st.integers(1, 60))
    levels = [f"m{i}" for i in range(data.draw(st.integers(1, 3)))]
    out, stalls, arrays = {}, {}, {}
    for lv in levels:
        out[lv], stalls[lv], arrays[lv] = [], [[], []], [np.zeros(maxit, dtype=np.int64) for _ in (0, 1)]
        for idx in (0, 1):
            out[lv].append(SimpleNamespace(compute_time=data.draw(st.sampled_from([0, 5]))))
            for _ in range(data.draw(st.integers(0, 2))):
                f = data.draw(st.integers(1, 5))
                v = np.array(data.draw(st.lists(st.integers(0, 9), min_size=1, max_size=20)), dtype=np.int64)
                lo = idx * f
                hi = min(lo + len(v) * f, maxit)
                if hi <= lo:
                    continue
                arrays[lv][idx][lo:hi] += np.repeat(v, f)[:hi - lo]
                stalls[lv][idx].append(_steps(v, f, lo, hi))
    w = SimpleNamespace(seq=levels.index)
    want = np.zeros(maxit, dtype=np.int64)
    for li, lv in enumerate(levels):
        for idx in (0, 1):
            if out[lv][idx].compute_time:
                want[idx:] = arrays[lv][idx][idx:] if li == 0 else np.maximum(want[idx:], arrays[lv][idx][idx:])
    assert _stall_sum_np(w, out, stalls, maxit) == int(want.sum())
    assert _stall_sum_py(w, out, stalls, maxit) == int(want.sum())


def _scaled_bandwidths(arch, scale):
    """A copy of `arch` whose memories' and links' bandwidths are all multiplied by `scale`."""
    import copy

    a = copy.deepcopy(arch)
    for m in a.memory_types.values():
        for f in ("bw", "parent_read_bw", "parent_write_bw", "child_read_bw", "child_write_bw",
                  "link_read_bw", "link_write_bw"):
            setattr(m, f, getattr(m, f) * scale)
    seen: set = set()
    for lv in a.levels.values():
        for link in list(lv.links.values()) + ([lv.self_link] if lv.self_link else []):
            if id(link) not in seen:  # a link object may be shared between levels
                seen.add(id(link))
                link.bw *= scale
    return a


def _walk_numbers(program, arch, sub_pos, owned):
    """Oracle: the plain steady-state walk (steady_state.walk + estimate_energy) of a
    candidate's program: (subtree cost, its collectives' costs, per owned node (stalls x
    executions [+ compute window for a leaf], energy + NoC energy)) as _totals adds them."""
    from comet_ir.backends.cost.model import _row
    from comet_ir.backends.cost.steady_state import estimate_energy, walk
    from comet_ir.spec.mapping_tree import ColOpNode, TileNode

    nodes = preorder(program.root)
    w = walk(program, arch)
    estimate_energy(w)
    vals = []
    for p in owned:
        n = nodes[p]
        e = sum(w.energy.get(id(n), {}).values()) + sum(w.noc.get(id(n), {}).values())
        leaf = isinstance(n, TileNode) and w._is_leaf(n)
        lat = 0
        if isinstance(n, ColOpNode) or (isinstance(n, TileNode) and (n.kind == "spatial" or leaf)):
            its = w.parent_iters.get(id(n), 1)
            for nlc in w.level_cost.get(id(n), {}).values():
                cs, os_, ct, _ = _row(w, n, nlc)
                lat += (cs + os_) * its + (ct * its if leaf else 0)
        vals.append((lat, e))
    cols = [w.cost[id(nodes[p])] for p in owned if isinstance(nodes[p], ColOpNode)]
    return w.cost[id(nodes[sub_pos])], cols, vals


# subtrees of the split shape "spatial tile -> leaf tile -> compute" (+ collectives after them)
KERNEL_SUBTREES = {"gemm_softmax_edge": [0, 1, 2, 3, 4, 5], "ref_edge": [0, 1], "ref_cloud": [0, 1]}


@pytest.mark.parametrize("case", list(KERNEL_SUBTREES))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_subtree_kernel_equals_scalar_walk(case, data):
    # batched_subtree.SubtreeKernel prices a subtree for many candidates sharing an upper key
    # at once; oracle: the plain walk of each candidate's program (every owned node's cycles
    # and pJ, the subtree's and its collectives' costs, exactly). To reach the kernel's
    # branches: bandwidths scaled (transfers hidden behind compute or stalling), read-modify-
    # write tensors, and leaves whose loops run over one dimension only (the others folded into
    # the compute primitive: a tensor the leaf moves once, which the spatial tile above reuses).
    import copy

    arch, prog, sp, sols, _ = _space(case)
    a = _scaled_bandwidths(arch, data.draw(st.sampled_from([1, 1 / 8, 8])))
    ev = BatchEvaluator(prog, a, space=sp)
    plan = ev.split
    kern = [i for i, k in enumerate(plan.kernels) if k is not None]
    assert kern == KERNEL_SUBTREES[case]  # built, and reproduced the template's walk
    if data.draw(st.booleans()):
        for i in kern:
            plan.kernels[i].T.rmw = [True] * len(plan.kernels[i].T.rmw)
            plan.kernels[i].P.rmw = [True] * len(plan.kernels[i].P.rmw)
    rows = []
    for _ in range(data.draw(st.integers(1, 3))):
        v = list(sols[data.draw(st.integers(0, len(sols) - 1))])
        for i in kern:
            K = plan.kernels[i]
            keep = data.draw(st.sampled_from([None] + list(K.T.factors[0])))
            for d in K.T.factors[0]:  # fold the leaf's other loops into the primitive
                tj, cj = K.t_slot.get((d, 0)), K.c_slot.get(d)
                if keep is not None and d != keep and tj is not None and cj is not None:
                    v[cj[0]], v[tj] = v[cj[0]] * v[tj], 1
        nodes = preorder(sp.apply(tuple(v)).root)
        for _ in range(data.draw(st.integers(1, 3))):
            rows.append((tuple(v), tuple(data.draw(st.sampled_from(order_choices(nodes[i]))) for i in ev.tiles)))
    groups: dict = {}  # candidates with one upper key (upper slots and orders, subtree exports)
    for v, o in rows:
        key = (tuple(v[c] for c in plan.upper_cols), tuple(o[t] for t in plan.upper_tiles),
               tuple(plan._exports(i, v, o) for i in range(len(plan.subs))))
        groups.setdefault(key, []).append((v, o))
    for members in groups.values():
        w = plan._walk(members[0][0], members[0][1], skip=kern)  # S's state; kernel subtrees skipped
        progs = []
        for v, o in members:  # each candidate's own program (the evaluator's template, applied)
            ev._apply(v, o)
            progs.append(copy.deepcopy(ev.program))
        for i in kern:
            K = plan.kernels[i]
            owned = list(plan.sub_nodes[i]) + [p for p, o in sorted(plan.colops.items()) if o == i]
            res = K.evaluate(w, np.array([m[0] for m in members]), [m[1][K.tile_k[0]] for m in members])
            assert res.ok.all()  # the covered case: no candidate falls back here
            for j, pr in enumerate(progs):
                got = (int(res.cost[j]), [int(c[j]) for c in res.col_costs],
                       [(int(res.node_lat[p][j]), float(res.node_en[p][j])) for p in owned])
                assert got == _walk_numbers(pr, a, plan.sub_nodes[i][0], owned)


@settings(max_examples=200, deadline=None)
@given(m=st.lists(st.lists(st.sampled_from([0, 1, 2, 7, 2**20, 2**40, -3]), min_size=3, max_size=3),
                  min_size=1, max_size=40),
       wide=st.booleans())
def test_unique_rows_partitions_like_np_unique(m, wide):
    # unique_rows codes rows as one int (mixed radix over column ranges, counting when the
    # range is small): same partition of the rows as np.unique(axis=0), and `first` names a
    # row of each class
    from comet_ir.backends.cost.batched_split import unique_rows

    a = np.array(m, dtype=np.int64)
    if wide:
        a = np.concatenate([a] * 8, axis=1) * np.arange(1, 25)  # several radix overflows
    first, inv = unique_rows(a)
    _, want = np.unique(a, axis=0, return_inverse=True)
    want = want.reshape(-1)
    assert len(first) == len(set(want.tolist()))
    assert all((inv[x] == inv[y]) == (want[x] == want[y]) for x in range(len(a)) for y in range(len(a)))
    assert all(inv[first[k]] == k for k in range(len(first)))


@pytest.mark.parametrize("shift", [10, 20, 31, 40])
def test_subtree_kernel_declines_or_matches_on_huge_rows(shift):
    # int64 arrays vs the scalar walk's unbounded ints: compute tile steps x 2^shift (tile sizes
    # up to ~2^100, compute windows past 32 bits) -- each pair is either declined (walked by the
    # caller) or priced exactly as the plain walk prices it
    import copy

    arch, prog, sp, sols, ev = _space("gemm_softmax_edge")
    plan = ev.split
    kern = [i for i, k in enumerate(plan.kernels) if k is not None]
    v = list(sols[0])
    o = ev.template_orders
    for i in kern:
        for d, (j, _) in plan.kernels[i].c_slot.items():
            v[j] <<= shift
    w = plan._walk(v, o, skip=kern)
    ev._apply(v, o)
    program = copy.deepcopy(ev.program)
    for i in kern:
        K = plan.kernels[i]
        owned = list(plan.sub_nodes[i]) + [p for p, oo in sorted(plan.colops.items()) if oo == i]
        res = K.evaluate(w, np.array([v], dtype=np.int64), [o[K.tile_k[0]]])
        if res.ok[0]:
            got = (int(res.cost[0]), [int(c[0]) for c in res.col_costs],
                   [(int(res.node_lat[p][0]), float(res.node_en[p][0])) for p in owned])
            assert got == _walk_numbers(program, arch, plan.sub_nodes[i][0], owned)


@pytest.mark.parametrize("case", ["gemm_softmax_edge", "ref_edge"])
@pytest.mark.parametrize("kind", ["pipeline", "parallel"])
def test_staged_bindings_batched_equals_single_path(case, kind):
    # every binding switched to pipeline / parallel: the split plan declines the tree (its
    # per-part sums do not know the bindings' overlap), the scalar walk prices each row
    from comet_ir.spec.mapping_tree import BindingNode

    arch, prog, sp, sols, _ = _space(case)
    q = FactorSpace(prog, arch).program
    for n in preorder(q.root):
        if isinstance(n, BindingNode):
            n.kind = kind
    sp2 = FactorSpace(q, arch)
    assert [(s.node_index, s.dim) for s in sp2.slots] == [(s.node_index, s.dim) for s in sp.slots]
    ev = BatchEvaluator(q, arch, space=sp2)
    assert ev.split is None
    rng = random.Random(5)
    rows = rng.sample(sols, min(6, len(sols)))
    orders = [tuple(rng.choice(order_choices(preorder(sp2.apply(v).root)[i])) for i in ev.tiles) for v in rows]
    res = ev.evaluate(np.array(rows), orders)
    for j, (v, o) in enumerate(zip(rows, orders)):
        want = _single(sp2, arch, v, o, ev.tiles)
        assert want is not None and res.valid[j]
        assert (res.latency[j], res.energy[j]) == want
