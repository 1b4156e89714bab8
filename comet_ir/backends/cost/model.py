"""COMET cost model: latency and energy of a mapped program on an accelerator.

`estimate_program(program, arch)` runs the steady-state walk (steady_state.py: per-iteration
transfers, compulsory/optional stalls, collectives, SIMD/MAC op costs, bindings) and the
energy walk, then assembles a `CostReport`. Totals follow the reference COMET definitions
(paper arXiv 2509.00599 Sec. IV; docs/cost-model.md):

* latency_cycles ("Total Cycles") = sum over every spatial tile, leaf tile and collective of
  (compulsory + optional stalls) x executions, plus every op's compute window x executions;
* root_latency_cycles = the root tile's hierarchical (overlapped) cost;
* energy_pj = access + compute energy + NoC energy (energy_pj_without_noc without the last).
"""
from __future__ import annotations

from comet_ir.backends.cost.report import CostReport, NodeCost
from comet_ir.backends.cost.steady_state import Walker, estimate_energy, walk
from comet_ir.errors import CometError
from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, ComputeNode, MappedProgram, TileNode
from comet_ir.spec.refarch import Accel


def _check_fits(program: MappedProgram, arch: Accel) -> None:
    """Every live tile must fit its (double-buffered) SRAM: the same rule as
    comet-verify-capacity, so a program that does not fit is an error, never a price."""
    from types import SimpleNamespace

    from comet_ir.passes.verify_capacity import check_capacity

    cap = {lv.name: arch.memory_types[lv.type].capacity for lv in arch.levels.values()
           if not lv.is_compute and arch.memory_types[lv.type].kind == "SRAM"}
    check_capacity(program, SimpleNamespace(capacity=cap), True)


def _check_units(program: MappedProgram, arch: Accel) -> None:
    """Every level a tile, compute or collective names must exist with the right role."""

    def visit(n, unit=None):
        if isinstance(n, TileNode):
            for lv in n.targets + n.child_levels:
                arch.level(lv)
            for t in n.targets:
                if arch.level(t).is_compute:
                    raise CometError(f"tile target '{t}' is a compute unit, not a memory")
            for c in n.body:
                visit(c, n.child_levels[0] if n.child_levels else unit)
        elif isinstance(n, ComputeNode):
            u = n.unit or unit
            if not u:
                raise CometError(f"compute '{n.name}' is not bound to a unit")
            lv = arch.level(u)
            if not lv.is_compute:
                raise CometError(f"compute '{n.name}' needs a compute unit, but '{u}' is a memory")
        elif isinstance(n, ColOpNode):
            for lv in [n.target, n.child, *n.src, *n.dest]:
                arch.level(lv)
        else:
            for c in getattr(n, "children", []):
                visit(c, unit)

    visit(program.root)


def _row(w: Walker, n, nlc: dict) -> tuple[int, int, int, dict]:
    """(compulsory, optional, compute window, per-level detail) of one execution of `n`."""
    cs_port, os_, ct, detail = [0, 0], 0, 0, {}
    for level in sorted(nlc, key=w.seq):
        pair = nlc[level]
        mw = max(pair[0].compute_time, pair[1].compute_time)
        d = {"window": mw}
        for idx in (0, 1):
            ramp = pair[idx].ramp_up + pair[idx].ramp_down
            cs_port[idx] = max(cs_port[idx], ramp)
            os_ = max(os_, pair[idx].cum)
            d[f"port{idx}"] = {"compulsory": ramp, "optional": max(pair[idx].cum - mw, 0),
                               "transfer": pair[idx].cum + ramp}
        ct = max(ct, mw)
        detail[level] = d
    cs = cs_port[0] + cs_port[1]
    if not isinstance(n, ColOpNode):
        os_ = max(w.cost[id(n)] - cs - ct, 0)
    return cs, os_, ct, detail


def binding_overlap(w: Walker, n, rows: int) -> int:
    """Cycles per execution of n that its pipeline / parallel binding takes off the row sum.

    The rows count every child's window as if the children ran in sequence. A spatial tile
    priced with staged children counts its cost minus that sequential window (negative when
    the stages overlap), instead of its own stall rows `rows`; a temporal tile or the root
    takes off the binding's saving over the sequential sum of its children."""
    info = w.staged.get(id(n))
    if info is None:
        return 0
    if "staged" in info:
        return rows - (info["cost"] - info["sequential_window"]) if info["staged"] else 0
    return info["sequential"] - info["cost"]


def latency_rows(w: Walker, n, with_detail: bool = True) -> tuple[int, int, int, int, dict]:
    """What node n adds to `latency_cycles` over all its executions: (compulsory stalls,
    optional stalls, compute, binding overlap to take off, per-level detail of one execution).
    The reference's row sum counts spatial tiles, leaves and collectives; a pipeline's fill /
    drain is a compulsory stall (it sits in the cost above the window and ramps, where `_row`
    reads optional stalls). estimate_program and the batched totals both sum these; the
    batched path, on its hot path, skips the detail (and the ordering it needs)."""
    its = w.parent_iters.get(id(n), 1)
    leaf = isinstance(n, TileNode) and w._is_leaf(n)
    cs_t = os_t = ct_t = rows = 0
    detail: dict = {}
    if isinstance(n, ColOpNode) or (isinstance(n, TileNode) and (n.kind == "spatial" or leaf)):
        lc = w.level_cost.get(id(n), {})
        keys = sorted(lc, key=w._child_key) if with_detail else lc
        for key in keys:
            cs, os_, ct, det = _row(w, n, lc[key])
            cs_t += cs * its
            os_t += os_ * its
            rows += cs + os_
            if leaf:
                ct_t += ct * its
            if with_detail:
                detail.update(det)
        moved = min(w.staged.get(id(n), {}).get("fill", 0) * its, os_t)
        cs_t += moved
        os_t -= moved
    ov = 0
    if id(n) in w.staged:
        # a root container of independent programs runs once
        ov = binding_overlap(w, n, rows) * (overlap_executions(w, n) if isinstance(n, TileNode) else 1)
    return cs_t, os_t, ct_t, ov, detail


def overlap_executions(w: Walker, n) -> int:
    """How often a node with a binding runs, for its overlap: a spatial tile's own count; a
    temporal tile's children carry its runs (spatial children inherit its iterations into
    their cost, leaves run once per iteration); the root runs once."""
    if isinstance(n, TileNode) and n.kind == "spatial":
        return w.parent_iters.get(id(n), 1)
    return max([w.parent_iters.get(id(c), 1) for c in w.kids.get(id(n), []) if isinstance(c, TileNode)], default=1)


def _label(w: Walker, n) -> str:
    if isinstance(n, ColOpNode):
        red = f" ({n.reduce_op})" if n.reduce_op != "none" else ""
        return f"{n.type} {n.tensor_in} over {n.dimension} at {n.target}{red}"
    if isinstance(n, ComputeNode):
        return f"{n.op_type} {n.name}"
    if isinstance(n, BindingNode):
        return f"{n.kind} binding"
    lv = "/".join(dict.fromkeys(n.targets))
    return f"{n.kind} tile {lv} [{','.join(n.tensors)}]"


def estimate_program(program: MappedProgram, arch) -> CostReport:
    """Latency (cycles) and energy (pJ) of `program` on accelerator `arch`."""
    if not isinstance(arch, Accel):
        raise CometError(f"the accelerator cost model needs an accelerator architecture, got "
                         f"{type(arch).__name__} (GPU presets price cometgpu kernels)")
    _check_units(program, arch)
    _check_fits(program, arch)
    w = walk(program, arch)
    estimate_energy(w)
    nodes: list[NodeCost] = []
    ids: dict[int, int] = {}
    total = 0
    stalls = {"compulsory": 0.0, "optional": 0.0}
    by_level: dict[str, float] = {}
    by_tensor: dict[str, float] = {}
    noc_total = 0.0

    def visit(n) -> int:
        nonlocal total, noc_total
        its = w.parent_iters.get(id(n), 1)
        nc = NodeCost(id=len(nodes), kind="tile", label=_label(w, n), level="", latency=0.0, executions=its)
        nodes.append(nc)
        ids[id(n)] = nc.id
        if isinstance(n, ComputeNode):
            nc.kind, nc.level = "compute", n.unit
            return nc.id
        if isinstance(n, BindingNode):
            # mirrors the program tree (comet-schedule matches report nodes to tree nodes)
            nc.kind, nc.label = "binding", f"{n.kind} binding"
            nc.children = [visit(c) for c in n.children]
            lats = [nodes[c].latency for c in nc.children]
            nc.executions = nodes[nc.children[0]].executions if nc.children else 1
            nc.latency = float(sum(lats) if n.kind == "sequential" else max(lats, default=0.0))
            owner = w.parent.get(id(n.children[0])) if n.children and id(n.children[0]) in w.parent else None
            info = w.staged.get(id(owner)) if owner is not None else None
            if info is not None and n.kind != "sequential":
                # the rule's price of one execution: a staged tile's window per iteration (its
                # step), or the children in sequence where that schedule won; a temporal
                # tile's binding its whole-run price
                if "staged" in info:
                    nc.latency = float(info["step"] if info["staged"] else sum(lats))
                else:
                    nc.latency = float(info["cost"])
            if id(n) in w.staged:  # the root container: independent programs
                ov = latency_rows(w, n)[3]
                total -= ov
                nc.detail["binding"] = {"kind": w.staged[id(n)]["kind"], "sequential": w.staged[id(n)]["sequential"],
                                        "overlap_cycles": ov}
            return nc.id
        nc.latency = float(w.cost.get(id(n), 0))
        leaf = isinstance(n, TileNode) and w._is_leaf(n)
        counted = isinstance(n, ColOpNode) or (isinstance(n, TileNode) and (n.kind == "spatial" or leaf))
        if isinstance(n, ColOpNode):
            nc.kind, nc.level = "collective", n.target
            nc.detail = {k: w.col[id(n)][k] for k in ("memory", "network", "in", "out", "src", "dst")}
            nc.detail["algorithm"] = _ALGORITHM[n.type]
        else:
            nc.level = "/".join(dict.fromkeys(n.targets))
        cs, os_, ct, ov, det = latency_rows(w, n)
        if counted:
            nc.compulsory_stall, nc.optional_stall, nc.compute_cycles = float(cs), float(os_), float(ct)
            if w.level_cost.get(id(n)):
                nc.detail.setdefault("levels", {}).update(det)
            stalls["compulsory"] += nc.compulsory_stall
            stalls["optional"] += nc.optional_stall
        total += cs + os_ + ct - ov
        if id(n) in w.staged:
            info = w.staged[id(n)]
            nc.detail["binding"] = {k: info[k] for k in ("kind", "sequential", "step", "fill", "staged") if k in info}
            nc.detail["binding"]["overlap_cycles"] = ov
        e = w.energy.get(id(n), {})
        noc = w.noc.get(id(n), {})
        op = w.kids[id(n)][0] if leaf else None
        for lv, v in e.items():
            key = f"{lv}-{op.name}" if op is not None and arch.level(lv).is_compute else lv
            by_level[key] = by_level.get(key, 0.0) + v
        for k, v in noc.items():
            key = f"{k}-{n.type.upper()}" if isinstance(n, ColOpNode) else k
            by_level[key] = by_level.get(key, 0.0) + v
            noc_total += v
        for k, v in w.energy_t.get(id(n), {}).items():
            by_tensor[k] = by_tensor.get(k, 0.0) + v
        nc.energy_pj = sum(e.values()) + sum(noc.values())
        if isinstance(n, TileNode):
            nc.children = [visit(c) for c in n.body]
        return nc.id

    root = visit(program.root)
    root_lat = float(w.cost.get(id(program.root), 0))
    energy = sum(n.energy_pj for n in nodes)
    # ideal compute (reference definition: the op's whole iteration space in tile primitives,
    # spread over all its unit instances); capped by the op's actual compute windows, since a
    # primitive that omits a dimension of the op's space would otherwise count it as work
    tmw: dict[str, float] = {}
    for n in nodes:
        if n.compute_cycles and n.children and nodes[n.children[0]].kind == "compute":
            op = nodes[n.children[0]].label.split(" ", 1)[1]
            tmw[op] = tmw.get(op, 0.0) + n.compute_cycles
    ideal = {k: float(min(v, tmw.get(k, v))) for k, v in w.comp_time.items()}
    for n in nodes:
        n.utilisation = n.compute_cycles / total if total else 0.0
    busiest = max(ideal.items(), key=lambda kv: kv[1], default=("", 0.0))
    bottleneck = max([("compute:" + busiest[0], sum(ideal.values())), ("compulsory stalls", stalls["compulsory"]),
                      ("optional stalls", stalls["optional"])], key=lambda kv: kv[1])[0]
    return CostReport(
        program=program.name, arch=arch.name, latency_cycles=float(total), root_latency_cycles=root_lat,
        energy_pj=energy, energy_pj_without_noc=energy - noc_total, noc_energy_pj=noc_total,
        nodes=nodes, root=root, energy_by_level=by_level, energy_by_tensor=by_tensor,
        ideal_compute_cycles=ideal, utilisation=(sum(ideal.values()) / root_lat if root_lat else 0.0),
        bottleneck=bottleneck, stalls=stalls)


_ALGORITHM = {"gather": "direct (all sources to the root)", "scatter": "direct (root to all)",
              "broadcast": "tree (network broadcast when supported)", "reduce": "tree to the root",
              "allreduce": "reduce + broadcast (tree)", "allgather": "gather + broadcast (tree)",
              "reducescatter": "reduce + scatter", "alltoall": "direct pairwise"}
