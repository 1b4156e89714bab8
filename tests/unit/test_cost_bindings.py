"""Pipeline / parallel binding costs (issue 5, item 4).

sequential = sum of the children; pipeline = slowest child + one step of every other stage
(fill/drain), or the busiest shared resource if that is longer; parallel = max(slowest child,
busiest shared resource). Expected numbers are worked out by hand in the comments, or come
from the reference's recorded output (the GEMM's ideal compute cycles)."""
import copy
import math
import os

from hypothesis import given, settings, strategies as st

from comet_ir.backends.cost.steady_state import binding_cost, walk
from comet_ir.spec.mapping_tree import BindingNode
from comet_ir.spec.reference import import_reference

REF = os.path.join(os.path.dirname(__file__), "..", "data", "reference")


# ------------------------------------------------------------------------------ the arithmetic


def test_no_shared_resource_pipeline_is_slowest_plus_fill_parallel_is_max():
    # stage A: 100 cycles over 4 iterations on memory A; stage B: 41 cycles over 5 on memory B.
    # pipeline = 100 + ceil(41 / 5) = 109 (B's one step fills / drains around A);
    # parallel = max(100, 41) = 100; both below the sequential 141
    costs, iters, busy = [100, 41], [4, 5], [{"A": 60}, {"B": 30}]
    assert binding_cost("pipeline", costs, iters, busy) == 109
    assert binding_cost("parallel", costs, iters, busy) == 100
    assert binding_cost("sharing", costs, iters, busy) == 100


def test_one_shared_memory_conflict_shows_when_its_busy_sum_dominates():
    # both stages move data through GB: 80 + 50 = 130 busy cycles there, more than the
    # pipeline's 100 + ceil(60 / 10) = 106 and the parallel 100 -> both are 130
    costs, iters = [100, 60], [10, 10]
    busy = [{"GB": 80, "PE": 20}, {"GB": 50}]
    assert binding_cost("pipeline", costs, iters, busy) == 130
    assert binding_cost("parallel", costs, iters, busy) == 130
    # a light share (30 + 20 = 50 on GB) does not show: 106 and 100
    light = [{"GB": 30}, {"GB": 20}]
    assert binding_cost("pipeline", costs, iters, light) == 106
    assert binding_cost("parallel", costs, iters, light) == 100


def test_two_collectives_on_one_link_serialise():
    # two 70-cycle collectives (one iteration each) on GB's link: 70 + 70 either way; on
    # different levels' links in parallel: 70
    assert binding_cost("parallel", [70, 70], [1, 1], [{"GB": 70}, {"GB": 70}]) == 140
    assert binding_cost("pipeline", [70, 70], [1, 1], [{"GB": 70}, {"GB": 70}]) == 140
    assert binding_cost("parallel", [70, 70], [1, 1], [{"GB": 70}, {"DRAM": 70}]) == 70


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10_000), st.integers(1, 64),
                          st.dictionaries(st.sampled_from(["DRAM", "GB", "OB", "PE"]), st.floats(0, 1), max_size=4)),
                min_size=1, max_size=5))
def test_binding_invariants(kids):
    costs = [c for c, _, _ in kids]
    iters = [i for _, i, _ in kids]
    busy = [{r: int(f * c) for r, f in b.items()} for c, _, b in kids]  # each <= its child's cost
    par = binding_cost("parallel", costs, iters, busy)
    pipe = binding_cost("pipeline", costs, iters, busy)
    assert max(costs) <= par <= pipe <= sum(costs)
    if len(costs) == 1:
        assert par == pipe == costs[0]


# ------------------------------------------------------------------------------ in the walker


def _example():
    return import_reference(os.path.join(REF, "example_run"), None, None)


def _two_copies(prog, kind):
    q = copy.deepcopy(prog)
    q.root = BindingNode(kind, [copy.deepcopy(prog.root), copy.deepcopy(prog.root)])
    return q


def test_busy_time_on_the_mac_engine_is_the_reference_ideal_gemm_compute():
    # the reference records the GEMM's ideal compute as 256 primitive calls x 1,048 cycles =
    # 268,288 cycles on one macengine; that is how long one copy of the program keeps it busy
    arch, prog = _example()
    q = _two_copies(prog, "parallel")
    w = walk(q, arch)
    for c in w.kids[id(q.root)]:
        assert w._busy(c)["macengine"] == 256 * 1048


def test_root_bindings_of_two_copies_lie_between_max_and_sum():
    arch, prog = _example()
    one = walk(prog, arch).cost[id(prog.root)]
    got = {}
    for kind in ("sequential", "pipeline", "parallel"):
        q = _two_copies(prog, kind)
        got[kind] = walk(q, arch).cost[id(q.root)]
    assert got["sequential"] == 2 * one
    # the top tile loops 4 times (M: 4): a pipeline pays at least one copy plus a quarter
    assert one + math.ceil(one / 4) <= got["pipeline"] <= 2 * one
    assert one <= got["parallel"] <= got["pipeline"]
    # both copies hold the macengine for 268,288 cycles each: parallel cannot beat that sum
    assert got["parallel"] >= 2 * 256 * 1048


def test_pipeline_is_cheaper_than_sequential_when_nothing_saturates():
    # edge decomposed softmax, SUB and EXP1 under one spatial tile: SE and OB are shared but
    # neither is busy for the two stages' whole sum, so a pipeline beats their sum
    from comet_ir.spec.mapping_tree import TileNode
    im = os.path.join(REF, "iterative_mapper")
    arch, prog = import_reference(im, os.path.join(im, "arch.yaml"), os.path.join(im, "edge_M256N256K128_const.yaml"))

    def find(n):
        if isinstance(n, TileNode) and n.tags == ["SUB", "EXP1"]:
            return n
        for c in getattr(n, "body", []) + getattr(n, "children", []):
            r = find(c)
            if r is not None:
                return r

    seq = walk(prog, arch).cost[id(find(prog.root))]
    sp = find(prog.root)
    sp.body[0].kind = "pipeline"
    w = walk(prog, arch)
    stages = [w.cost[id(c)] for c in w.kids[id(sp)]]
    assert len(stages) == 2
    # the spatial tile runs both stages once per iteration: at least the slower stage each time
    its = max(w.loop[id(sp)].iters)
    assert its * max(stages) <= w.cost[id(sp)] < seq
