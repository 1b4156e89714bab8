"""`comet-schedule{objective=latency|energy time_limit=… workers=… seed=… deadline=… arch=…}`:
order and overlap the nodes of a mapped program on the units they use, with OR-Tools CP-SAT.

Each execution of each `comet.binding` is one scheduling problem (comet_ir.schedule.graph
builds it: tile fills / bodies / write-backs, compute steps and collectives as intervals on
compute units, SIMD units, NoC links and memory ports; memories as cumulative capacity; data
dependences and the binding kind as precedences), solved by comet_ir.schedule.cpsat. The
result goes back into the IR as a discardable `comet.schedule` dictionary:
`{start, dur, unit}` on every child of a binding (cycles from the start of one execution of
the binding; `dur` = span from first fill to last write-back) and `{makespan, rule, optimal}`
on the binding (`rule` = the model's unscheduled latency). The cost targets then price the
program under that schedule (comet_ir.backends.cost.scheduled).

`deadline` (cycles, 0 = none) bounds every binding execution; an impossible deadline or a
tile that cannot fit its memory is an error naming the tightest constraint. A time limit
(deterministic seconds, see cpsat.py) that expires keeps the best schedule found and says so.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import BoolAttr, DictionaryAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.passes import ModulePass

from comet_ir.errors import CometError

ATTR = "comet.schedule"


def _set(op, **kv) -> None:
    cur = dict(op.attributes[ATTR].data) if ATTR in op.attributes else {}
    for k, v in kv.items():
        if isinstance(v, bool):
            cur[k] = BoolAttr.from_bool(v)
        elif isinstance(v, int):
            cur[k] = IntegerAttr(v, i64)
        else:
            cur[k] = StringAttr(str(v))
    op.attributes[ATTR] = DictionaryAttr(cur)


def schedule_program(program, accel, objective="latency", time_limit=10.0, workers=1, seed=0,
                     deadline: int | None = None):
    """[(BindingProblem, Solution)] for every binding of `program`."""
    from comet_ir.backends.cost.model import estimate_program
    from comet_ir.schedule.cpsat import solve
    from comet_ir.schedule.graph import binding_problems

    report = estimate_program(program, accel)
    probs = binding_problems(program, accel=accel, report=report, deadline=deadline)
    share = time_limit / max(len(probs), 1)
    return [(bp, solve(bp.problem, objective, share, workers, seed)) for bp in probs]


@dataclass(frozen=True)
class SchedulePass(ModulePass):
    """Schedule every binding's children on their units with CP-SAT; annotate the IR."""

    name = "comet-schedule"
    objective: str = "latency"
    time_limit: float = 10.0
    workers: int = 1
    seed: int = 0
    deadline: int = 0
    arch: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.backends.cost_targets import resolve_arch
        from comet_ir.passes._mapping import require_mapped
        from comet_ir.schedule.graph import preorder

        if self.time_limit <= 0:
            raise CometError("comet-schedule: time_limit must be > 0 seconds")
        if self.workers < 1:
            raise CometError("comet-schedule: workers must be >= 1")
        if self.deadline < 0:
            raise CometError("comet-schedule: deadline must be >= 0 cycles (0 = none)")
        mapping, program = require_mapped(op, "comet-schedule")
        accel = resolve_arch(op, self.arch or None, program.arch)
        results = schedule_program(program, accel, self.objective, self.time_limit, self.workers,
                                   self.seed, self.deadline or None)
        nodes = preorder(program.root)
        ops = list(mapping.root().walk())
        ir = {id(n): o for n, o in zip(nodes, ops)}
        not_optimal = 0
        for bp, sol in results:
            b_op = ir[id(bp.binding)]
            _set(b_op, makespan=sol.makespan, rule=int(round(bp.rule_latency)), optimal=sol.optimal)
            for i, child in enumerate(bp.children):
                t = bp.problem.tasks[i]
                _set(ir[id(child)], start=sol.task_start(i),
                     dur=sol.task_end(bp.problem, i) - sol.task_start(i), unit=t.unit or "none")
            not_optimal += not sol.optimal
        saved = sum((bp.rule_latency - sol.makespan) * bp.executions for bp, sol in results)
        sys.stderr.write(f"comet-schedule: {len(results)} binding(s) scheduled ({self.objective}); "
                         f"scheduled minus unscheduled latency over all executions: {int(round(-saved)):+,} cycles\n")
        if not_optimal:
            sys.stderr.write(f"comet-schedule: time limit reached in {not_optimal} binding(s); the "
                             "schedule is the best feasible found, not proven optimal\n")
