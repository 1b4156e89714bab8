"""comet-schedule on mapped programs: what it writes into the IR and how the cost backend
prices a scheduled program."""
import os

import pytest

from comet_ir.api import parse_module as _parse_module
from comet_ir.api import print_module, run_pipeline, verify_module
from comet_ir.backends.cost.model import estimate_program
from comet_ir.backends.cost_targets import estimate, resolve_arch
from comet_ir.errors import CometError
from comet_ir.ir_tree import ir_to_tree, single_mapping
from comet_ir.reference_io import import_reference_text

def parse_module(text, verify=True):
    return _parse_module(text, verify=verify)[0]


REF = os.path.join(os.path.dirname(__file__), "..", "data", "reference", "iterative_mapper")


def _imported():
    return parse_module(import_reference_text(REF, os.path.join(REF, "arch.yaml"),
                                              os.path.join(REF, "edge_M256N256K128_const.yaml")))


def _children_costs(module):
    """Per binding: (model report node of the binding, [latency of each child])."""
    from comet_ir.schedule.graph import node_costs, preorder
    from comet_ir.spec.mapping_tree import BindingNode

    prog = ir_to_tree(single_mapping(module))
    accel = resolve_arch(module, None, prog.arch)
    rep = estimate_program(prog, accel)
    costs = node_costs(prog, rep)
    return [(costs[id(b)], [costs[id(c)].latency for c in b.children])
            for b in preorder(prog.root) if isinstance(b, BindingNode)], rep


def _sched(op):
    a = op.attributes["comet.schedule"].data
    return {k: (v.data if hasattr(v, "data") and isinstance(v.data, str) else v.value.data) for k, v in a.items()}


def test_dependent_chain_makespan_is_the_sum_of_its_children():
    # GEMM -> rowmax -> allreduce -> sub/exp -> allreduce -> rowsum/div: every child reads what
    # the previous one wrote, so no overlap is possible: makespan = sum of (rounded) latencies
    m = _imported()
    per_binding, _ = _children_costs(m)
    run_pipeline(m, "comet-schedule")
    bindings = [o for o in m.walk() if o.name == "comet.binding"]
    assert len(bindings) == len(per_binding) == 3
    for b, (_, lats) in zip(bindings, per_binding):
        s = _sched(b)
        assert s["makespan"] == sum(round(x) for x in lats)
        assert s["optimal"]
        starts = [_sched(c)["start"] for c in b.body.block.ops]
        assert starts == sorted(starts)


def test_parallel_binding_is_priced_by_its_schedule_not_the_rule():
    # Make the outer binding `parallel`: its children may overlap as far as units allow, but
    # the data dependences chain them, so the schedule is the chain; the scheduled total is
    # the model's total plus (chain - rule latency) per execution of that binding.
    text = print_module(_imported()).replace("comet.binding sequential {", "comet.binding parallel {", 1)
    m = parse_module(text)
    verify_module(m)
    per_binding, _ = _children_costs(m)
    base = estimate(m)
    run_pipeline(m, "comet-schedule")
    # every binding of this program is a dependence chain (the nested ones too)
    want = base.latency_cycles + sum((sum(round(x) for x in lats) - nb.latency) * nb.executions
                                     for nb, lats in per_binding)
    assert estimate(m).latency_cycles == pytest.approx(want)


def test_stale_schedule_is_an_error():
    m = _imported()
    run_pipeline(m, "comet-schedule")
    # the first GEMM child's span shrinks below what it costs: the price would be wrong
    text = print_module(m)
    import re

    text = re.sub(r"start = 0 : i64, dur = \d+ : i64, unit = \"GEMMEngine\"",
                  'start = 0 : i64, dur = 1 : i64, unit = "GEMMEngine"', text, count=1)
    with pytest.raises(CometError, match="stale"):
        estimate(parse_module(text))


@pytest.mark.parametrize("bad, msg", [
    ("{start = -3 : i64}", "'start' = -3 must be >= 0 cycles"),
    ('{start = "x"}', "'start' must be an integer"),
    ("{when = 3 : i64}", "unknown key 'when'"),
])
def test_schedule_attribute_is_verified(bad, msg):
    text = print_module(_imported()).replace("comet.binding sequential {",
                                             f"comet.binding sequential attributes {{comet.schedule = {bad}}} {{", 1)
    with pytest.raises(Exception, match=msg):
        verify_module(parse_module(text, verify=False))
