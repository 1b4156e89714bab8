"""Pipeline / parallel bindings inside a walk: the children of a tile are stages that share
one window per iteration (issue 5, item 4; steady_state.Walker._visit_staged).

Small programs on a tiny architecture whose numbers can be worked out by hand:

    GB (64 B/cycle to X and Y) -> X -> u1, u2     (X: Fast, or Slow = 4 B/cycle to its units)
                               -> Y -> u2         (Y: link network, link_read_bw 2 B/cycle)

Every stage is a leaf with one iteration on a 1 x 64 int8 tile (64 bytes): it reads one
tensor and writes one. On a Fast memory each of its two moves takes ceil(64 / 64) = 1 cycle
(the ramp-up of the read, the ramp-down of the write-back), on Slow ceil(64 / 4) = 16. SIMD
time = cycles per op x ceil(64 elements / 8 lanes): exp 3 x 8 = 24, add 1 x 8 = 8. So

    exp on Fast X: 24 + 1 + 1 = 26      add on Fast: 8 + 1 + 1 = 10
    exp on Slow X: 24 + 16 + 16 = 56    add on Slow X: 8 + 16 + 16 = 40

A stage's busy time on its memory is both moves (2 on Fast, 32 on Slow), on its unit its
compute (24 / 8). The spatial tile S (GB -> X/Y) runs its stages once per iteration of the
temporal tile T above it (N iterations) and moves each of their tensors once per iteration,
1 cycle each (64 B at 64 B/cycle), overlapped with the stages except the first read (ramp-up,
1 per read tensor) and the last write-back (ramp-down, 1 per written tensor).

Expected numbers below are derived by hand from these; none is copied from the model's output.
"""
import copy
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from comet_ir.backends.cost.model import estimate_program
from comet_ir.backends.cost.steady_state import walk
from comet_ir.spec.mapping_tree import (BindingNode, ColOpNode, ComputeNode, MappedProgram, Problem, ProblemOp,
                                        TensorProjection, TileNode)
from comet_ir.spec.reference import import_reference
from comet_ir.spec.refarch import load_reference_arch_text

REF = os.path.join(os.path.dirname(__file__), "..", "data", "reference")
IM = os.path.join(REF, "iterative_mapper")

ARCH = """
ComputeTiles:
  - name: VEC
    class: simd
    attributes: {computeWidth: 8, computeOpC: 8, computeLatency: 1}
MemoryTypes:
  - name: Main
    class: DRAM
    attributes: {bw: 4096}
  - name: Fast
    class: SRAM
    attributes: {width: 64, depth: 4096, ports: 1, parent_read_bw: 64, parent_write_bw: 64,
                 child_read_bw: 64, child_write_bw: 64, link_read_bw: 2, link_write_bw: 2}
  - name: Slow
    class: SRAM
    attributes: {width: 64, depth: 4096, ports: 1, parent_read_bw: 64, parent_write_bw: 64,
                 child_read_bw: 4, child_write_bw: 4}
Hierarchy:
  - name: DRAM
    type: Main
    connects:
      - name: GB
        type: Fast
        attributes: {bw: 64, hop_latency: 1}
        fills:
          - name: X
            type: %s
            attributes: {bw: 64}
            fills:
              - {name: u1, type: VEC, is_compute: true, attributes: {bw: 64}}
              - {name: u2, type: VEC, is_compute: true, attributes: {bw: 64}}
          - name: Y
            type: Fast
            attributes: {bw: 64, link_transfers: true}
            fills:
              - {name: u2, type: VEC, is_compute: true, attributes: {bw: 64}}
"""


def _arch(slow_x: bool = False):
    return load_reference_arch_text(ARCH % ("Slow" if slow_x else "Fast"), "tiny.yaml")


def _op(name, i, o, row=False):
    # row: the input is one row reused by every iteration over M (projection N only)
    return ProblemOp(name, [i], o, ["M", "N"], [TensorProjection(i, [["N"]] if row else [["M"], ["N"]]),
                                                TensorProjection(o, [["M"], ["N"]], True)])


def _leaf(kind, name, i, o, mem, unit, width=64):
    c = ComputeNode(kind, name, [i, o], {"M": 1, "N": width}, {i: {"M": 1, "N": width}, o: {"M": 1, "N": width}},
                    unit=unit)
    return TileNode("temporal", [mem, mem], [i, o], [8, 8], [False, False], [False, False], [name, name],
                    [{"M": [1, 1], "N": [1, 1]}], "MN", [unit, unit], [c])


def _tile(kind, leaves, body, n=1):
    """A tile at GB over the leaves' tensors: temporal with n iterations (M), or spatial x1."""
    ts = [t for lf in leaves for t in lf.tensors]
    k = len(ts)
    f = [{"M": [n] * k, "N": [1] * k}] if kind == "temporal" else [{"M": [1] * k, "N": [1] * k} for _ in range(2)]
    return TileNode(kind, ["GB"] * k, ts, [8] * k, [False] * k, [False] * k, [g for lf in leaves for g in lf.tags],
                    f, "MN", [m for lf in leaves for m in lf.targets], body)


def _gather(t):
    return ColOpNode("gather", t, t, "N", ["Y"], ["Y"], "Y", "Y", 8)


def _problem(n, ops, width=64):
    return Problem({"M": n, "N": width}, [_op(*o) for o in ops], [o[1] for o in ops], [o[2] for o in ops])


def _two_stages(kind, n, second_mem):
    """T (n iterations) -> S -> kind binding [exp A->B on X/u1, add C->D on second_mem/u2]."""
    a = _leaf("exp", "op1", "A", "B", "X", "u1")
    b = _leaf("add", "op2", "C", "D", second_mem, "u2")
    s = _tile("spatial", [a, b], [BindingNode(kind, [a, b])])
    t = _tile("temporal", [a, b], [s], n)
    prog = MappedProgram("two", "tiny", _problem(n, [("op1", "A", "B"), ("op2", "C", "D")]), t)
    return prog, s


def _costs(build, arch):
    out = {}
    for kind in ("sequential", "pipeline", "parallel"):
        prog, node = build(kind)
        out[kind] = walk(prog, arch).cost[id(node)]
    return out


# ------------------------------------------------------------------------------ by hand


def test_disjoint_stages_under_a_spatial_tile_cost_slowest_times_iterations_plus_fill():
    # stages 26 (u1, X) and 10 (u2, Y): nothing shared, so the step is the slower one, 26.
    # sequential: window 26 + 10 = 36 per iteration: 8 x 36 + ramps (A, C in: 1 + 1; B, D out:
    #   1 + 1) = 292;
    # pipeline: 8 x 26 + 4 + one run of the other stage (fill / drain) 10 = 222;
    # parallel: 8 x 26 + 4 = 212
    got = _costs(lambda k: _two_stages(k, 8, "Y"), _arch())
    assert got == {"sequential": 292, "pipeline": 222, "parallel": 212}


def test_stages_sharing_one_memory_port_are_bounded_by_its_summed_busy_time():
    # both stages on the Slow X (one port): 56 and 40 cycles, each keeps X busy 16 + 16 = 32;
    # per iteration X is busy 64 > the slower stage 56: the step is 64.
    # sequential: 8 x (56 + 40) + 4 = 772; parallel: 8 x 64 + 4 = 516; pipeline: the stages need
    # 8 x 56 + 40 (fill) = 488 <= the port's 8 x 64 = 512, so no fill shows: 516
    got = _costs(lambda k: _two_stages(k, 8, "X"), _arch(slow_x=True))
    assert got == {"sequential": 772, "pipeline": 516, "parallel": 516}
    assert got["pipeline"] >= 8 * (32 + 32)  # never below the port's busy time
    # one iteration: the port (64) hides 64 - 56 = 8 of the fill 40: pipeline 64 + 32 + 4 = 100,
    # as sequential 96 + 4; parallel 64 + 4 = 68
    got = _costs(lambda k: _two_stages(k, 1, "X"), _arch(slow_x=True))
    assert got == {"sequential": 100, "pipeline": 100, "parallel": 68}


def test_disjoint_stages_under_a_temporal_tile():
    # T (8 iterations) -> kind binding [S1 -> exp stage on X, S2 -> add stage on Y]: each Si
    # runs its stage 8 times: S1 = 8 x 26 + 2 ramps = 210, S2 = 8 x 10 + 2 = 82.
    # sequential 292; pipeline = 210 + one step of S2, ceil(82 / 8) = 11 -> 221 (the only shared
    # resource, GB, is busy 16 + 16 = 32 cycles); parallel = 210
    def build(kind):
        a, b = _leaf("exp", "op1", "A", "B", "X", "u1"), _leaf("add", "op2", "C", "D", "Y", "u2")
        t = _tile("temporal", [a, b], [BindingNode(kind, [_tile("spatial", [a], [a]), _tile("spatial", [b], [b])])], 8)
        return MappedProgram("t", "tiny", _problem(8, [("op1", "A", "B"), ("op2", "C", "D")]), t), t

    assert _costs(build, _arch()) == {"sequential": 292, "pipeline": 221, "parallel": 210}


def test_collective_on_a_link_the_other_stage_does_not_use():
    # stages: exp on X (26 cycles, busy u1 24, X 2) and a gather of E on Y (produced before S by
    # an add on Y). Gather, one source: ceil(64 B / link_read_bw 2) = 32 cycles on Y, no hops.
    # Disjoint: step max(26, 32) = 32. S moves A and B: ramps 1 + 1.
    # sequential: 8 x (26 + 32) + 2 = 466; pipeline: 8 x 32 + 2 + 26 = 284; parallel: 8 x 32 + 2 = 258
    def build(kind):
        p, g, a = _leaf("add", "op2", "C", "E", "Y", "u2"), _gather("E"), _leaf("exp", "op1", "A", "B", "X", "u1")
        s = _tile("spatial", [a], [BindingNode(kind, [a, g])])
        t = _tile("temporal", [p, a], [BindingNode("sequential", [p, s])], 8)
        return MappedProgram("c", "tiny", _problem(8, [("op2", "C", "E"), ("op1", "A", "B")]), t), s

    got = _costs(build, _arch())
    assert got == {"sequential": 466, "pipeline": 284, "parallel": 258}
    prog, s = build("pipeline")
    w = walk(prog, _arch())
    assert w._busy(w.kids[id(s)][1]) == {"Y": 32}


def test_collective_on_the_level_its_producer_stage_uses():
    # stages: add C->E on Y (10 cycles, busy Y 2) and the gather of E on Y (32): Y is busy
    # 2 + 32 = 34 per iteration > 32, so the step is 34. S moves C and E: ramps 1 + 1.
    # sequential: 8 x (10 + 32) + 2 = 338; parallel: 8 x 34 + 2 = 274; pipeline: the stages
    # need 8 x 32 + 10 = 266 <= Y's 8 x 34 = 272: 274 too
    def build(kind):
        p, g = _leaf("add", "op2", "C", "E", "Y", "u2"), _gather("E")
        s = _tile("spatial", [p], [BindingNode(kind, [p, g])])
        return MappedProgram("c", "tiny", _problem(8, [("op2", "C", "E")]), _tile("temporal", [p], [s], 8)), s

    assert _costs(build, _arch()) == {"sequential": 338, "pipeline": 274, "parallel": 274}


def test_collective_under_a_temporal_binding_runs_once_per_iteration():
    # T (8 iterations) -> kind binding [S1 -> add C->E on Y, gather of E on Y]: S1 = 8 x 10 + 2
    # = 82 (busy GB 8 + 8, u2 8 x 8 = 64, Y 8 x 2 = 16); the gather runs once per iteration of
    # T: 8 x 32 = 256 cycles, all on Y. sequential 82 + 256 = 338; pipeline = max(256 + one
    # step of S1 ceil(82 / 8) = 11, Y busy 16 + 256 = 272) = 272; parallel max(256, 272) = 272
    def build(kind):
        p, g = _leaf("add", "op2", "C", "E", "Y", "u2"), _gather("E")
        t = _tile("temporal", [p], [BindingNode(kind, [_tile("spatial", [p], [p]), g])], 8)
        return MappedProgram("c", "tiny", _problem(8, [("op2", "C", "E")]), t), t

    assert _costs(build, _arch()) == {"sequential": 338, "pipeline": 272, "parallel": 272}
    r = estimate_program(build("pipeline")[0], _arch())
    assert r.latency_cycles == r.root_latency_cycles == 272  # the overlap 338 - 272 comes off the rows


def test_report_totals_take_the_overlap_off_the_row_sum():
    # the disjoint two-stage program: rows = leaves 8 x 26 + 8 x 10 = 288 plus S's ramps 4 = 292
    # (= the hierarchical cost, nothing above S); pipelined, the stages overlap 8 x 10 = 80 of
    # those leaf windows and the fill 10 comes back: 292 - 80 + 10 = 222, reported as overlap 80
    # and a compulsory fill of 10
    seq = estimate_program(_two_stages("sequential", 8, "Y")[0], _arch())
    pipe = estimate_program(_two_stages("pipeline", 8, "Y")[0], _arch())
    assert (seq.latency_cycles, pipe.latency_cycles, pipe.root_latency_cycles) == (292, 222, 222)
    s_node = next(n for n in pipe.nodes if n.label.startswith("spatial"))
    assert s_node.detail["binding"]["overlap_cycles"] == 80
    assert pipe.stalls["compulsory"] == seq.stalls["compulsory"] + 10
    assert not any("binding" in n.detail for n in seq.nodes)
    assert "overlapped by pipeline/parallel bindings 80" in pipe.render()


def test_a_stage_running_one_iteration_gains_nothing_but_costs_no_more():
    # one iteration of S: pipeline = 26 + ramps 4 + fill 10 = 40 = sequential 26 + 10 + 4:
    # a pipeline of one item is a sequence; parallel 26 + 4 = 30
    assert _costs(lambda k: _two_stages(k, 1, "Y"), _arch()) == {"sequential": 40, "pipeline": 40, "parallel": 30}


# ------------------------------------------------------------------------------ the reference example


def _all_bindings(prog, kind):
    q = copy.deepcopy(prog)

    def visit(n):
        if isinstance(n, BindingNode):
            n.kind = kind
        for c in getattr(n, "body", []) + getattr(n, "children", []):
            visit(c)

    visit(q.root)
    return q


REF_CASES = {
    "example_run": (os.path.join(REF, "example_run"), None, None),
    "edge": (IM, os.path.join(IM, "arch.yaml"), os.path.join(IM, "edge_M256N256K128_const.yaml")),
    "cloud": (IM, os.path.join(IM, "arch_cloud.yaml"), os.path.join(IM, "cloud_M1024N1024K512_const.yaml")),
}


@pytest.mark.parametrize("case", list(REF_CASES))
def test_reference_programs_staged_never_cost_more_than_sequential(case):
    arch, prog = import_reference(*REF_CASES[case])
    r = {k: estimate_program(_all_bindings(prog, k), arch) for k in ("sequential", "pipeline", "parallel")}
    for f in ("latency_cycles", "root_latency_cycles"):
        assert getattr(r["parallel"], f) <= getattr(r["pipeline"], f) <= getattr(r["sequential"], f), f
    # the example's recorded sequential total (reference output: Total Cycles = 3141418)
    if case == "example_run":
        assert r["sequential"].latency_cycles == 3_141_418
        assert r["pipeline"].latency_cycles < 3_141_418
    for k in r:
        assert r[k].energy_pj == pytest.approx(sum(r[k].energy_by_level.values()), rel=1e-9)
        assert r[k].energy_pj == r["sequential"].energy_pj  # the same moves, scheduled differently


# ------------------------------------------------------------------------------ generated programs

_OPS = ["exp", "add", "max", "div"]


@st.composite
def _programs(draw):
    """A tree T (n iterations) over 2-3 stages (leaves on X or Y, op, width, an input that is
    one row reused over T's iterations or a new tile each iteration; independent, or a chain
    through intermediate tensors), optionally
    followed by a gather on Y of a stage's output there, bound either under a spatial S below
    T or directly at T (each stage wrapped in its own spatial tile). Returns a builder
    kind -> program."""
    n = draw(st.integers(1, 10))
    k = draw(st.integers(2, 3))
    specs = []
    for i in range(k):
        mem = draw(st.sampled_from(["X", "Y"]))
        unit = draw(st.sampled_from(["u1", "u2"])) if mem == "X" else "u2"
        specs.append((draw(st.sampled_from(_OPS)), mem, unit, draw(st.sampled_from([8, 64, 128])), draw(st.booleans())))
    chain = draw(st.booleans())  # stage i + 1 reads stage i's output (an intermediate tensor)
    colop = draw(st.booleans()) and any(s[1] == "Y" for s in specs)
    at_temporal = draw(st.booleans())
    width = max(s[3] for s in specs)

    def build(kind):
        ins = [f"O{i - 1}" if chain and i else f"I{i}" for i in range(len(specs))]
        leaves = [_leaf(o, f"op{i}", ins[i], f"O{i}", mem, unit, w) for i, (o, mem, unit, w, _) in enumerate(specs)]
        kids: list = list(leaves)
        if colop:
            j = max(i for i, s in enumerate(specs) if s[1] == "Y")
            kids.insert(j + 1, _gather(f"O{j}"))
        if at_temporal:
            kids = [_tile("spatial", [c], [c]) if isinstance(c, TileNode) else c for c in kids]
            root = _tile("temporal", leaves, [BindingNode(kind, kids)], n)
        else:
            root = _tile("temporal", leaves, [_tile("spatial", leaves, [BindingNode(kind, kids)])], n)
        prob = _problem(n, [(f"op{i}", ins[i], f"O{i}", s[4] and not (chain and i)) for i, s in enumerate(specs)],
                        width)
        prob.ins = [t for t in prob.ins if t.startswith("I")]
        prob.outs = [t for t in prob.outs if t not in ins]
        return MappedProgram("gen", "tiny", prob, root)

    return build


def _faster(arch, mem_type, f):
    a = copy.deepcopy(arch)
    m = a.memory_types[mem_type]
    for k in ("bw", "parent_read_bw", "parent_write_bw", "child_read_bw", "child_write_bw", "link_read_bw",
              "link_write_bw"):
        if getattr(m, k):
            setattr(m, k, getattr(m, k) * f)
    return a


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(build=_programs(), slow=st.booleans(), faster=st.sampled_from(["Fast", "Slow"]), f=st.sampled_from([2, 4, 16]))
def test_generated_programs_parallel_le_pipeline_le_sequential(build, slow, faster, f):
    arch = _arch(slow)
    r = {k: estimate_program(build(k), arch) for k in ("sequential", "pipeline", "parallel")}
    for fld in ("latency_cycles", "root_latency_cycles"):
        assert getattr(r["parallel"], fld) <= getattr(r["pipeline"], fld) <= getattr(r["sequential"], fld), fld
    for k, rep in r.items():
        assert rep.energy_pj == pytest.approx(sum(rep.energy_by_level.values()), rel=1e-9)
        assert rep.energy_pj == pytest.approx(sum(rep.energy_by_tensor.values()), rel=1e-9)
        assert rep.energy_pj == pytest.approx(sum(n.energy_pj for n in rep.nodes), rel=1e-9)
        # more bandwidth on one memory type never makes any binding kind slower
        quick = estimate_program(build(k), _faster(arch, faster, f))
        assert quick.latency_cycles <= rep.latency_cycles, k
        assert quick.root_latency_cycles <= rep.root_latency_cycles, k


@settings(max_examples=8, deadline=None)
@given(level=st.sampled_from(["DRAM", "GB", "IB", "WB", "OB"]), f=st.sampled_from([2, 16]),
       kind=st.sampled_from(["pipeline", "parallel"]))
def test_staged_edge_softmax_more_bandwidth_never_slower(level, f, kind):
    arch, prog = import_reference(*REF_CASES["edge"])
    prog = _all_bindings(prog, kind)
    base = estimate_program(prog, arch)
    fast = copy.deepcopy(arch)
    m = fast.memory(level)
    for k in ("bw", "parent_read_bw", "parent_write_bw", "child_read_bw", "child_write_bw", "link_read_bw",
              "link_write_bw"):
        setattr(m, k, getattr(m, k) * f)
    quick = estimate_program(prog, fast)
    assert quick.latency_cycles <= base.latency_cycles
    assert quick.root_latency_cycles <= base.root_latency_cycles
