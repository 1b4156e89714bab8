"""Scheduling problems of a mapped program: one per execution of each `comet.binding`.

The children of a binding are the tasks. A child tile is three phases: its first fill
(memory port of the memories it reads), its body (the compute units, SIMD units and NoC links
of everything below it) and its last write-back (memory port of the memories it writes);
a collective is one phase on the NoC link and port of its level; a compute op one phase on
its unit. Durations are the cost model's per-execution numbers for those nodes (fill and
drain from the tile's `detail`), rounded to whole cycles. The span of a child tile holds
its tensors' tiles in the memories it reads and writes (bytes at the tile's targets), which the
memory capacity bounds when children overlap.

Binding semantics: `sequential` keeps the compute phases in program order without overlap
(transfers may run ahead); `pipeline` keeps the order of their starts; `parallel`/`sharing`
add no order. Data dependences (read-after-write, write-after-read, write-after-write on a
tensor, found from the compute ops' and collectives' tensors) order whole tasks.
Children of a nested binding are priced with the model's rule, so each binding's schedule is
independent of the others.
"""
from __future__ import annotations

from dataclasses import dataclass

from comet_ir.errors import CometError
from comet_ir.schedule.cpsat import Phase, Problem, Task
from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, ComputeNode, MappedProgram, TileNode

_KIND = {TileNode: "tile", BindingNode: "binding", ColOpNode: "collective", ComputeNode: "compute"}


def kids(node) -> list:
    if isinstance(node, TileNode):
        return node.body
    if isinstance(node, BindingNode):
        return node.children
    return []


def preorder(node) -> list:
    out = [node]
    for k in kids(node):
        out.extend(preorder(k))
    return out


def node_costs(program: MappedProgram, report) -> dict[int, object]:
    """id(tree node) -> the report's NodeCost for it (the model emits one per node)."""
    by_id = {n.id: n for n in report.nodes}
    out: dict[int, object] = {}

    def match(node, nc) -> None:
        if nc.kind != _KIND[type(node)]:
            raise CometError(f"comet-schedule: the cost report does not mirror the program "
                             f"({nc.kind} '{nc.label}' for a {_KIND[type(node)]})")
        out[id(node)] = nc
        ks = kids(node)
        if len(ks) != len(nc.children):
            raise CometError(f"comet-schedule: the cost report node '{nc.label}' has "
                             f"{len(nc.children)} children, the program {len(ks)}")
        for k, c in zip(ks, nc.children):
            match(k, by_id[c])

    match(program.root, by_id[report.root])
    return out


def _rw(node) -> tuple[set[str], set[str]]:
    reads, writes = set(), set()
    for n in preorder(node):
        if isinstance(n, ComputeNode):
            reads |= set(n.tensors[:-1])
            writes.add(n.tensors[-1])
        elif isinstance(n, ColOpNode):
            reads.add(n.tensor_in)
            writes.add(n.tensor_out)
    return reads, writes


def data_edges(children) -> list[tuple[int, int]]:
    """(i, j), i < j: child j reads what i writes, writes what i reads, or writes what i writes
    (RAW / WAR / WAW on a tensor), so i must stay before j."""
    rw = [_rw(c) for c in children]
    out = []
    for j in range(len(children)):
        for i in range(j):
            (ri, wi), (rj, wj) = rw[i], rw[j]
            if (wi & rj) or (ri & wj) or (wi & wj):
                out.append((i, j))
    return out


def _first_temporal(node):
    while isinstance(node, TileNode):
        if node.kind == "temporal":
            return node
        if len(node.body) != 1:
            return None
        node = node.body[0]
    return None


def _units(node) -> list[str]:
    out = []
    for n in preorder(node):
        if isinstance(n, ComputeNode) and n.unit:
            out.append("unit:" + n.unit)
        elif isinstance(n, ColOpNode):
            out.append("noc:" + n.target)
            out.append("port:" + n.target)
    return list(dict.fromkeys(out))


def _tile_bytes(program: MappedProgram, tile: TileNode) -> dict[str, int]:
    """Bytes of each tensor's tile held at the tile's targets (per memory, per tensor the
    largest): the child tile (comet-verify-capacity's rule) times this tile's own factors."""
    from comet_ir.passes.verify_capacity import resident_bytes

    idx = {t.name: {d for r in t.projection for d in r} for o in program.problem.ops for t in o.tensors}
    per: dict[str, dict[str, int]] = {}
    for i, (t, _, _, b) in enumerate(resident_bytes(program, tile)):
        mult = 1
        for lvl in tile.factors:
            for d, fs in lvl.items():
                if d in idx.get(t, ()):
                    mult *= fs[i]
        lv = per.setdefault(tile.targets[i], {})
        lv[t] = max(lv.get(t, 0), b * mult)
    return {lv: sum(v.values()) for lv, v in per.items()}


@dataclass
class BindingProblem:
    binding: BindingNode
    children: list
    problem: Problem
    rule_latency: float  # the model's latency of one execution of the binding
    executions: float


def binding_problems(program: MappedProgram, report, accel, deadline: int | None = None) -> list[BindingProblem]:
    costs = node_costs(program, report)
    sram = {lv.name for lv in accel.levels.values()
            if not lv.is_compute and accel.memory_types[lv.type].kind == "SRAM"}
    out = []
    for bi, node in enumerate(n for n in preorder(program.root) if isinstance(n, BindingNode)):
        tasks, cap, bufcap = [], {}, {}
        for ci, child in enumerate(node.children):
            nc = costs[id(child)]
            lat = float(nc.latency)
            tile = _first_temporal(child)
            fill = drain = 0.0
            fill_res: list[str] = []
            drain_res: list[str] = []
            buffers: dict[str, int] = {}
            if tile is not None:
                tnc = costs[id(tile)]
                fill = float(tnc.detail.get("fill", 0.0))
                drain = float(tnc.detail.get("drain", 0.0))
                fill_res = list(dict.fromkeys("port:" + t for t, wb in zip(tile.targets, tile.wb_output) if not wb))
                drain_res = list(dict.fromkeys("port:" + t for t, wb in zip(tile.targets, tile.wb_output) if wb))
                buffers = {b: v for b, v in _tile_bytes(program, tile).items() if b in sram}
            f, d = round(fill), round(drain)
            body = max(round(lat) - f - d, 0)
            units = _units(child)
            label = _label(child, ci)
            tasks.append(Task(label, [Phase("fill", f, tuple(fill_res)), Phase("body", body, tuple(units)),
                                      Phase("drain", d, tuple(drain_res))],
                              main=1, buffers=buffers, unit=_unit_name(units)))
            for r in fill_res + drain_res + units:
                if r.startswith("port:"):
                    cap[r] = max(accel.memory(r[5:]).ports, 1)
            for b in buffers:
                bufcap[b] = accel.memory(b).capacity
        edges = [(i, j, "data") for i, j in data_edges(node.children)]
        for i in range(len(node.children) - 1):
            if node.kind == "sequential":
                edges.append((i, i + 1, "main"))
            elif node.kind == "pipeline":
                edges.append((i, i + 1, "start"))
        nb = costs[id(node)]
        prob = Problem(tasks, edges, cap, bufcap, deadline, label=f"comet-schedule: {node.kind} binding #{bi}")
        out.append(BindingProblem(node, list(node.children), prob, float(nb.latency), float(nb.executions)))
    return out


def _unit_name(units: list[str]) -> str:
    for prefix in ("unit:", "noc:", "port:"):
        for u in units:
            if u.startswith(prefix):
                return u[len(prefix):]
    return ""


def _label(node, i: int) -> str:
    if isinstance(node, ComputeNode):
        return f"{i}:{node.op_type} {node.name}"
    if isinstance(node, ColOpNode):
        return f"{i}:{node.type} {node.tensor_in}"
    if isinstance(node, BindingNode):
        return f"{i}:{node.kind} binding"
    ops = [n.name for n in preorder(node) if isinstance(n, ComputeNode)]
    return f"{i}:tile of {'/'.join(dict.fromkeys(ops)) or 'nothing'}"
