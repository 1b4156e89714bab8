"""CostReport: the cost backend's result, with its table, JSON and trace forms.

JSON schema (version 1, stable; docs/cost-json.md): top level `schema`, `program`, `arch`,
`latency_cycles`, `root_latency_cycles`, `energy_pj`, `energy_pj_without_noc`, `noc_energy_pj`,
`utilisation`, `bottleneck`, `stalls` {compulsory, optional}, `ideal_compute_cycles` {op: cycles},
`energy_by_level` {level: pJ}, `energy_by_tensor` {tensor: pJ}, `nodes` [ {id, kind, label,
level, latency, executions, compute_cycles, compulsory_stall, optional_stall, energy_pj,
utilisation, children, detail} ].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

SCHEMA_VERSION = 1


@dataclass
class NodeCost:
    id: int
    kind: str  # tile | binding | collective | compute
    label: str
    level: str
    latency: float  # cycles of one execution of the node
    executions: float = 1.0  # how often the node runs (product of enclosing temporal loops)
    compute_cycles: float = 0.0
    compulsory_stall: float = 0.0  # total over all executions
    optional_stall: float = 0.0
    energy_pj: float = 0.0
    utilisation: float = 0.0
    children: list[int] = field(default_factory=list)
    detail: dict = field(default_factory=dict)


@dataclass
class CostReport:
    program: str
    arch: str
    latency_cycles: float
    root_latency_cycles: float
    energy_pj: float
    energy_pj_without_noc: float
    noc_energy_pj: float
    nodes: list[NodeCost]
    root: int
    energy_by_level: dict[str, float]
    energy_by_tensor: dict[str, float]
    ideal_compute_cycles: dict[str, float]
    utilisation: float
    bottleneck: str
    stalls: dict[str, float]

    @property
    def energy_by_node(self) -> dict[int, float]:
        return {n.id: n.energy_pj for n in self.nodes}

    def to_json(self) -> dict:
        d = {"schema": SCHEMA_VERSION}
        for k, v in asdict(self).items():
            d[k] = v
        return d

    def render(self) -> str:
        return render_report(self)

    def to_chrome_trace(self) -> dict:
        return to_chrome_trace(self)


def _tree_order(r: CostReport) -> list[tuple[int, NodeCost]]:
    by_id = {n.id: n for n in r.nodes}
    out: list[tuple[int, NodeCost]] = []

    def visit(i: int, depth: int) -> None:
        n = by_id[i]
        out.append((depth, n))
        for c in n.children:
            visit(c, depth + 1)

    visit(r.root, 0)
    return out


def render_report(r: CostReport) -> str:
    lines = [f"cost report: {r.program} on {r.arch}", ""]
    head = f"{'node':44s} {'latency':>12s} {'runs':>9s} {'compulsory':>12s} {'optional':>12s} {'compute':>12s} {'energy pJ':>13s}"
    lines += [head, "-" * len(head)]
    for depth, n in _tree_order(r):
        name = ("  " * depth + n.label)[:44]
        lines.append(f"{name:44s} {n.latency:12,.0f} {n.executions:9,.0f} {n.compulsory_stall:12,.0f} "
                     f"{n.optional_stall:12,.0f} {n.compute_cycles:12,.0f} {n.energy_pj:13,.0f}")
    lines += ["", "energy by level (pJ):"]
    for k, v in sorted(r.energy_by_level.items()):
        lines.append(f"  {k:30s} {v:16,.0f}")
    lines.append(f"  {'NoC links':30s} {r.noc_energy_pj:16,.0f}")
    lines += ["", "ideal compute cycles:"]
    for k, v in r.ideal_compute_cycles.items():
        lines.append(f"  {k:30s} {v:16,.0f}")
    overlap = sum(n.detail.get("binding", {}).get("overlap_cycles", 0) for n in r.nodes)
    lines += ["",
              f"stalls: compulsory {r.stalls['compulsory']:,.0f}, optional {r.stalls['optional']:,.0f}"
              + (f"; overlapped by pipeline/parallel bindings {overlap:,.0f}" if overlap else ""),
              f"bottleneck: {r.bottleneck}",
              f"utilisation (ideal compute / root latency): {r.utilisation:.3f}",
              f"root latency (hierarchical, overlapped): {r.root_latency_cycles:,.0f} cycles",
              f"total cycles (stalls + compute, reference definition): {r.latency_cycles:,.0f}",
              f"total energy: {r.energy_pj:,.0f} pJ ({r.energy_pj_without_noc:,.0f} without NoC links)"]
    return "\n".join(lines)


def to_chrome_trace(r: CostReport) -> dict:
    """Trace-event JSON (chrome://tracing, ui.perfetto.dev): one complete event per node
    execution span, nested by the tree; times in cycles shown as microseconds."""
    by_id = {n.id: n for n in r.nodes}
    events = []

    def place(i: int, start: float, depth: int) -> None:
        n = by_id[i]
        events.append({"name": n.label, "cat": n.kind, "ph": "X", "ts": start, "dur": max(n.latency, 0.001),
                       "pid": 1, "tid": depth, "args": {"level": n.level, "executions": n.executions,
                                                        "energy_pj": n.energy_pj}})
        t = start
        for c in n.children:
            place(c, t, depth + 1)
            t += by_id[c].latency

    place(r.root, 0.0, 0)
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"program": r.program, "arch": r.arch, "latency_cycles": r.latency_cycles}}
