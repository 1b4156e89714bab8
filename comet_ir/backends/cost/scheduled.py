"""Price a mapped program under the schedule that `comet-schedule` wrote into its IR.

The model prices a binding execution by its rule (sequential: sum; pipeline / parallel under
a spatial tile: the stages' shared window per iteration, their step; under a temporal tile:
slowest child plus fill/drain, or the busiest resource; docs/cost-model.md). A schedule replaces that by its makespan: every
execution of a scheduled binding takes `makespan` instead of `rule` cycles, so the total and
the root latency change by sum over bindings of (makespan - rule) x executions. The stall
terms of the enclosing tiles are kept as the model priced them (first order: a schedule
changes when work runs inside a binding, not what the enclosing loops move).

A schedule is *stale* when a child now takes longer than the span the schedule gave it (the
program or architecture changed after scheduling); that is an error asking to re-run
comet-schedule, never a silently wrong price.
"""
from __future__ import annotations

from dataclasses import replace

from comet_ir.errors import CometError

ATTR = "comet.schedule"


def schedule_of(op) -> dict | None:
    a = op.attributes.get(ATTR)
    if a is None:
        return None
    out = {}
    for k, v in a.data.items():
        out[k] = v.data if hasattr(v, "data") and isinstance(v.data, str) else \
            bool(v.value.data) if k == "optimal" else v.value.data
    return out


def has_schedule(mapping) -> bool:
    return any(ATTR in o.attributes for o in mapping.walk())


def estimate_scheduled(mapping, program, accel):
    """The cost report of `program` with every scheduled binding priced by its makespan."""
    from comet_ir.backends.cost.model import estimate_program
    from comet_ir.schedule.graph import node_costs, preorder
    from comet_ir.spec.mapping_tree import BindingNode

    report = estimate_program(program, accel)
    costs = node_costs(program, report)
    ir = dict(zip((id(n) for n in preorder(program.root)), mapping.root().walk()))
    delta = 0.0
    replaced = {}
    for node in preorder(program.root):
        if not isinstance(node, BindingNode):
            continue
        sch = schedule_of(ir[id(node)])
        if sch is None or "makespan" not in sch:
            continue
        for child in node.children:
            csch = schedule_of(ir[id(child)]) or {}
            lat = costs[id(child)].latency
            if "dur" not in csch or round(lat) > csch["dur"]:
                raise CometError(f"the schedule of {node.kind} binding is stale: a child "
                                 f"('{costs[id(child)].label}') now takes {lat:,.0f} cycles, more than "
                                 f"its scheduled span {csch.get('dur', 0):,}; re-run comet-schedule")
            if csch["start"] + csch["dur"] > sch["makespan"]:
                raise CometError(f"the schedule of {node.kind} binding ends child "
                                 f"'{costs[id(child)].label}' after the binding's makespan")
        nb = costs[id(node)]
        delta += (sch["makespan"] - nb.latency) * nb.executions
        replaced[nb.id] = replace(nb, latency=float(sch["makespan"]), label=nb.label + " (scheduled)",
                                  detail={**nb.detail, "rule_latency": nb.latency,
                                          "optimal": sch.get("optimal", False)})
    if not replaced:
        return report
    nodes = [replaced.get(n.id, n) for n in report.nodes]
    return replace(report, nodes=nodes, latency_cycles=report.latency_cycles + delta,
                   root_latency_cycles=report.root_latency_cycles + delta)
