"""First-order COMET cost model: latency and energy of a mapped program on an accelerator.

Pure functions of (MappedProgram, Accel). Every formula is stated where it is computed; the
sources are the COMET paper (arXiv 2509.00599, Sec. IV) and the behaviour of the reference
implementation as recorded in shared/reference/README.md. This model follows the reference's
*structure* (per-node compulsory and optional stalls, double buffering, compute per unit,
collectives = memory + NoC time, "Total Cycles" = sum of stalls and compute) but evaluates each
node in closed form instead of walking per-iteration stall vectors; docs/cost-model.md lists
where its numbers differ from the reference and by how much.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from comet_ir.backends.cost.report import CostReport, NodeCost
from comet_ir.errors import CometError
from comet_ir.spec.mapping_tree import (
    BindingNode,
    ColOpNode,
    ComputeNode,
    MappedProgram,
    Node,
    TileNode,
)
from comet_ir.spec.refarch import Accel

# SIMD per-op-class costs come from the architecture (`op_costs`, defaults in refarch).
_ROW_REDUCTIONS = {"rowmax", "rowsum", "rowmean", "reduce"}


def mesh_hops(mesh: tuple[int, int]) -> int:
    """Worst-case XY-routing hops on an X x Y mesh: (X-1)+(Y-1) (2x2 -> 2, 4x4 -> 6, 16x16 -> 30)."""
    return (mesh[0] - 1) + (mesh[1] - 1)


@dataclass
class _Ctx:
    program: MappedProgram
    arch: Accel
    nodes: list[NodeCost] = field(default_factory=list)
    energy_by_level: dict[str, float] = field(default_factory=dict)
    energy_by_tensor: dict[str, float] = field(default_factory=dict)
    noc_energy: float = 0.0
    ideal_compute: dict[str, float] = field(default_factory=dict)
    unit_busy: dict[str, float] = field(default_factory=dict)

    def proj_dims(self, tensor: str, op: str) -> set[str]:
        try:
            pop = self.program.problem.op(op)
        except KeyError:
            return set(self.program.problem.dims)
        for t in pop.tensors:
            if t.name == tensor:
                return {d for rank in t.projection for d in rank}
        return set(pop.dims)

    def add_energy(self, level: str, tensor: str, pj: float) -> None:
        self.energy_by_level[level] = self.energy_by_level.get(level, 0.0) + pj
        if tensor:
            self.energy_by_tensor[tensor] = self.energy_by_tensor.get(tensor, 0.0) + pj


# ------------------------------------------------------------------------------ tile sizes


def _below_factors(node: Node, tensor: str, tag: str, out: dict[str, int], spatial: dict[str, int]):
    """Multiply the factors of (tensor, tag) in every tile below `node` (temporal into `out`,
    spatial into `spatial`), and the tile steps of the compute op that serves it."""
    body = node.body if isinstance(node, TileNode) else getattr(node, "children", [])
    for child in body:
        if isinstance(child, TileNode):
            for i, (t, g) in enumerate(zip(child.tensors, child.tags)):
                if (t, g) == (tensor, tag):
                    dst = spatial if child.kind == "spatial" else out
                    for lvl in child.factors:
                        for d, fs in lvl.items():
                            dst[d] = dst.get(d, 1) * fs[i]
            _below_factors(child, tensor, tag, out, spatial)
        elif isinstance(child, BindingNode):
            _below_factors(child, tensor, tag, out, spatial)
        elif isinstance(child, ComputeNode) and child.name == tag and tensor in child.tile_steps:
            for d, v in child.tile_steps[tensor].items():
                out[d] = out.get(d, 1) * v


def _child_tile(ctx: _Ctx, node: TileNode, i: int) -> tuple[int, int, int]:
    """(elements per child instance, unique child instances, broadcast copies) of tensor i."""
    t, g = node.tensors[i], node.tags[i]
    dims = ctx.proj_dims(t, g)
    temporal: dict[str, int] = {}
    spatial: dict[str, int] = {}
    _below_factors(node, t, g, temporal, spatial)
    elems = math.prod(temporal.get(d, 1) for d in dims) if dims else 1
    unique = math.prod(v for d, v in spatial.items() if d in dims)
    copies = math.prod(v for d, v in spatial.items() if d not in dims)
    return max(elems, 1), max(unique, 1), max(copies, 1)


def _transfers(node: TileNode, i: int, dims: set[str]) -> tuple[int, int]:
    """(iterations, distinct tiles moved) of tensor i: inner loops over dims that do not index
    the tensor reuse the tile already in the child (loop order is inner -> outer)."""
    factors = {d: fs[i] for d, fs in node.factors[0].items()} if node.factors else {}
    iters = math.prod(factors.values()) if factors else 1
    reuse = 1
    order = [d for d in node.order if factors.get(d, 1) > 1] + \
            [d for d in factors if d not in node.order and factors[d] > 1]
    for d in order:
        if d in dims:
            break
        reuse *= factors[d]
    return iters, max(iters // reuse, 1)


# ------------------------------------------------------------------------------ transfers


def _transfer_time(ctx: _Ctx, target: str, child: str, nbytes: float, elems: int, bits: int,
                   write_back: bool, copies: int) -> tuple[float, float]:
    """(memory time, network time) of one child's tile between `target` and `child`.

    memory = bytes / min(target bw, child bw), each capped by the network port bw (the
    reference: max of the two port times); network (fills only) = hops * t_router +
    S * k * bits / channel_width * t_queue with k = hops of the child's mesh (reference
    README; 262,154 cycles for a 256K-element int8 tile on a 2x2 mesh with 32-bit channels).
    Broadcast copies cost extra memory time unless the network supports broadcast."""
    a = ctx.arch
    cl = a.level(child)
    tm = a.memory(target)
    if tm.kind == "DRAM":
        t_bw = tm.bw
    else:
        t_bw = (tm.child_write_bw if write_back else tm.child_read_bw) or tm.width
    net_bw = cl.port_bw or math.inf
    t_bw = min(t_bw, net_bw * max(tm.ports, 1))
    if cl.is_compute:
        c_bw = min(cl.port_bw or t_bw, net_bw)
    else:
        cm = a.memory(child)
        c_bw = min((cm.parent_read_bw if write_back else cm.parent_write_bw) or cm.width, net_bw)
    bw = min(t_bw, c_bw)
    if bw <= 0:
        raise CometError(f"no bandwidth between '{target}' and '{child}'")
    mem = nbytes * (1 if cl.broadcast or write_back else copies) / bw
    hops = mesh_hops(cl.mesh)
    net = 0.0
    if not write_back and hops:
        net = hops * cl.hop_latency + elems * hops * bits / (cl.channel_width or 32.0) * cl.queuing_delay
    return mem, net


# ------------------------------------------------------------------------------ compute


def _compute(ctx: _Ctx, node: ComputeNode, invocations: float, instances: int) -> NodeCost:
    a = ctx.arch
    unit = node.unit or ""
    if not unit:
        raise CometError(f"compute '{node.name}' is not bound to a unit (on ...)")
    ct = a.compute(unit)
    prim = node.tile_primitive
    out_t = node.tensors[-1]
    steps = node.tile_steps.get(out_t, prim)
    if ct.kind == "mac":
        # Array of ops_per_cycle MACs; K streams through once per M*N block
        # (reference: K + startup + M * latency per primitive; 1048 cycles for 4x64x1024).
        m, n, k = steps.get("M", 1), steps.get("N", 1), steps.get("K", 1)
        per = math.ceil(m * n / ct.ops_per_cycle) * k + ct.startup + m * ct.latency
        energy = invocations * instances * ct.energy
    else:
        dims = ctx.proj_dims(node.tensors[0], node.name)
        elems = math.prod(v for d, v in steps.items() if d in dims) or 1
        op = node.op_type.lower()
        if op in ("softmax", "layernorm"):
            per = 1  # a monolithic vector op: one cycle per vector (reference behaviour)
        else:
            c_op = ct.op_costs.get(op, ct.op_costs.get("add", 1))
            if c_op < 0 or op in _ROW_REDUCTIONS:  # a row reduction: a log2(lanes) adder tree
                c_op = math.ceil(math.log2(max(ct.ops_per_cycle, 2)))
            per = c_op * math.ceil(elems / ct.ops_per_cycle)
        energy = invocations * instances * elems * ct.energy
    cycles = per * invocations
    ctx.ideal_compute[node.name] = ctx.ideal_compute.get(node.name, 0.0) + cycles
    ctx.unit_busy[unit] = ctx.unit_busy.get(unit, 0.0) + cycles
    ctx.add_energy(f"{unit}-{node.name}", "", energy)
    nc = NodeCost(id=len(ctx.nodes), kind="compute", label=f"{node.op_type} {node.name} on {unit}",
                  level=unit, latency=per, compute_cycles=cycles, energy_pj=energy, executions=invocations)
    ctx.nodes.append(nc)
    return nc


# ------------------------------------------------------------------------------ collectives


def _collective(ctx: _Ctx, node: ColOpNode, executions: float, per_instance_elems: int) -> NodeCost:
    """T = T_col_mem + T_col_noc. Algorithms: allreduce / allgather / reducescatter = ring
    (T_noc = 2 (hops t_router + DV/W t_eng), the paper's form); broadcast / reduce = tree;
    gather / scatter = direct to/from the root; alltoall = direct pairwise."""
    a = ctx.arch
    src = [a.level(s) for s in node.src]
    dst = [a.level(d) for d in node.dest]
    at = a.level(node.target)
    p = max(math.prod(l.count for l in src), 1)
    hops = max(mesh_hops(l.mesh) for l in src + dst)
    dv_bits = per_instance_elems * node.precision
    dv = dv_bits / 8
    w = at.channel_width or 32.0
    t_r, t_eng = at.hop_latency, at.queuing_delay
    mem_t = a.memory(node.target)
    link_bw = (mem_t.link_read_bw or mem_t.child_read_bw or mem_t.width or 1.0)
    kind = node.type
    if kind in ("allreduce", "allgather", "reducescatter"):
        share = {"allreduce": 2 * (p - 1) / p, "allgather": (p - 1), "reducescatter": (p - 1) / p}[kind]
        t_mem = share * dv / link_bw
        t_noc = 2 * (hops * t_r + dv_bits / w * t_eng)
    elif kind in ("broadcast", "reduce"):
        depth = 1 if (kind == "broadcast" and at.broadcast) else math.ceil(math.log2(max(p, 2)))
        t_mem = depth * dv / link_bw
        t_noc = hops * t_r + depth * dv_bits / w * t_eng
    elif kind in ("gather", "scatter"):
        t_mem = (p - 1) * dv / link_bw
        t_noc = hops * t_r + (p - 1) * dv_bits / w * t_eng
    elif kind == "alltoall":
        t_mem = (p - 1) / p * dv / link_bw
        t_noc = hops * t_r + (p - 1) / p * dv_bits / w * t_eng
    else:
        raise CometError(f"unknown collective type '{kind}'")
    t_red = 0.0
    if node.reduce_op != "none":
        lanes = next((c.ops_per_cycle for c in a.compute_types.values() if c.kind == "simd"), 16)
        t_red = math.ceil(per_instance_elems / lanes) * (p - 1)
    per = t_mem + t_noc + t_red
    bytes_moved = dv * (p - 1) * executions * (2 if kind == "allreduce" else 1)
    e_mem = bytes_moved / (mem_t.width or 1) * (mem_t.energy.get("child_read", 0) + mem_t.energy.get("child_write", 0))
    ctx.add_energy(node.target, node.tensor_in, e_mem)
    e_noc = bytes_moved * 8 * hops * _NOC_PJ_PER_BIT_HOP
    ctx.noc_energy += e_noc
    nc = NodeCost(id=len(ctx.nodes), kind="collective",
                  label=f"{kind} {node.tensor_in} over {node.dimension} ({node.reduce_op})",
                  level=node.target, latency=per, optional_stall=per * executions,
                  energy_pj=e_mem + e_noc, executions=executions,
                  detail={"t_col_mem": t_mem, "t_col_noc": t_noc, "t_reduce": t_red, "participants": p})
    ctx.nodes.append(nc)
    return nc


# Link energy per bit per hop (pJ): an Orion-style constant for a 32-bit 1 GHz mesh link.
_NOC_PJ_PER_BIT_HOP = 0.05


# ------------------------------------------------------------------------------ tree walk


def _colop_elems(ctx: _Ctx, siblings: list[Node], node: ColOpNode) -> int:
    """Per-instance elements of the collective's tensor: the tile a preceding sibling tile
    produced for it (its per-child tile times its own temporal factors)."""
    for s in siblings:
        if isinstance(s, TileNode) and node.tensor_in in s.tensors:
            i = s.tensors.index(node.tensor_in)
            elems, unique, _ = _child_tile(ctx, s, i)
            iters, _ = _transfers(s, i, ctx.proj_dims(node.tensor_in, s.tags[i]))
            return elems * max(iters, 1) * unique
    return math.prod(ctx.program.problem.dims.values())


def _walk(ctx: _Ctx, node: Node, executions: float, instances: int, siblings: list[Node]) -> NodeCost:
    if isinstance(node, ComputeNode):
        return _compute(ctx, node, executions, instances)
    if isinstance(node, ColOpNode):
        return _collective(ctx, node, executions, _colop_elems(ctx, siblings, node))
    if isinstance(node, BindingNode):
        kids = [_walk(ctx, c, executions, instances, node.children) for c in node.children]
        lat = [k.latency for k in kids]
        if node.kind == "sequential":
            latency, cs = sum(lat), 0.0
        elif node.kind == "pipeline":
            # steady state = slowest child; fill + drain = the others once per execution
            latency, cs = max(lat), (sum(lat) - max(lat))
        else:  # parallel / sharing: concurrent, but children on one unit serialise
            per_unit: dict[str, float] = {}
            for k in kids:
                per_unit[k.level] = per_unit.get(k.level, 0.0) + k.latency
            latency, cs = max(max(lat), max(per_unit.values())), 0.0
        nc = NodeCost(id=len(ctx.nodes), kind="binding", label=f"{node.kind} binding", level="",
                      latency=latency + cs, compulsory_stall=cs * executions, executions=executions,
                      children=[k.id for k in kids])
        ctx.nodes.append(nc)
        return nc
    assert isinstance(node, TileNode)
    if node.kind == "spatial":
        n_inst = math.prod(math.prod(max(fs) for fs in lvl.values()) for lvl in node.factors)
        kids = [_walk(ctx, c, executions, instances * n_inst, node.body) for c in node.body]
        latency = max((k.latency for k in kids), default=0.0) if len(kids) <= 1 else sum(k.latency for k in kids)
        nc = NodeCost(id=len(ctx.nodes), kind="tile", label=f"spatial tile {'/'.join(dict.fromkeys(node.targets))} x{n_inst}",
                      level=node.targets[0], latency=latency, executions=executions,
                      children=[k.id for k in kids])
        ctx.nodes.append(nc)
        return nc
    # temporal tile: iterate, double-buffered transfers of each tensor's child tile
    n_iter = max(_transfers(node, i, set())[0] for i in range(len(node.tensors))) if node.tensors else 1
    kids = [_walk(ctx, c, executions * n_iter, instances, node.body) for c in node.body]
    window = sum(k.latency for k in kids)  # compute window of one iteration
    fills: dict[str, float] = {}
    drains: dict[str, float] = {}
    steady: dict[str, float] = {}
    for i, t in enumerate(node.tensors):
        target, child = node.targets[i], node.child_levels[i]
        dims = ctx.proj_dims(t, node.tags[i])
        elems, unique, copies = _child_tile(ctx, node, i)
        iters, moves = _transfers(node, i, dims)
        nbytes = elems * node.precision[i] / 8  # one child's tile
        wb = node.wb_output[i]
        mem, net = _transfer_time(ctx, target, child, nbytes, elems, node.precision[i], wb, copies)
        t_tile = mem + net
        # first fill of every read tensor and last write-back of every written one are
        # compulsory stalls (reference: summed per memory, max across memories)
        side = drains if wb else fills
        side[target] = side.get(target, 0.0) + t_tile
        nbytes *= unique
        # the moves after the first (reads) / before the last (writes) overlap with compute
        steady[target] = steady.get(target, 0.0) + t_tile * max(moves - 1, 0) / max(n_iter - 1, 1)
        total_bytes = nbytes * moves * executions * instances * (copies if not ctx.arch.level(child).broadcast else 1)
        tm = ctx.arch.memory(target)
        e_t = total_bytes / (tm.width or 1) * tm.energy.get("child_write" if wb else "child_read", 0.0)
        ctx.add_energy(target, t, e_t)
        cl = ctx.arch.level(child)
        if not cl.is_compute:
            cm = ctx.arch.memory(child)
            ctx.add_energy(child, t, total_bytes / (cm.width or 1) * cm.energy.get("parent_read" if wb else "parent_write", 0.0))
        ctx.noc_energy += total_bytes * 8 * mesh_hops(cl.mesh) * _NOC_PJ_PER_BIT_HOP
    # different memories fill in parallel; tensors from one memory share its port (sum)
    fill = max(fills.values(), default=0.0)
    drain = max(drains.values(), default=0.0)
    per_iter_stall = max(0.0, max(steady.values(), default=0.0) - window)
    os_ = per_iter_stall * max(n_iter - 1, 0)
    cs = fill + drain
    latency = n_iter * window + cs + os_
    nc = NodeCost(id=len(ctx.nodes), kind="tile",
                  label=f"temporal tile {'/'.join(dict.fromkeys(node.targets))} x{n_iter}",
                  level="/".join(dict.fromkeys(node.targets)), latency=latency,
                  compulsory_stall=cs * executions, optional_stall=os_ * executions,
                  executions=executions, children=[k.id for k in kids],
                  detail={"iterations": n_iter, "window": window, "fill": fill, "drain": drain})
    ctx.nodes.append(nc)
    return nc


def _check_fits(program: MappedProgram, arch: Accel) -> None:
    """Every live tile must fit its (double-buffered) SRAM: the same rule as
    comet-verify-capacity, so a program that does not fit is an error, never a price."""
    from types import SimpleNamespace

    from comet_ir.passes.verify_capacity import check_capacity

    cap = {lv.name: arch.memory_types[lv.type].capacity for lv in arch.levels.values()
           if not lv.is_compute and arch.memory_types[lv.type].kind == "SRAM"}
    check_capacity(program, SimpleNamespace(capacity=cap), True)


def estimate_program(program: MappedProgram, arch) -> CostReport:
    """Latency (cycles) and energy (pJ) of `program` on accelerator `arch`."""
    if not isinstance(arch, Accel):
        raise CometError(f"the accelerator cost model needs an accelerator architecture, got "
                         f"{type(arch).__name__} (GPU presets price cometgpu kernels)")
    _check_fits(program, arch)
    ctx = _Ctx(program, arch)
    root = _walk(ctx, program.root, 1, 1, [program.root])
    stalls = sum(n.compulsory_stall + n.optional_stall for n in ctx.nodes if n.kind != "compute")
    compute = sum(ctx.ideal_compute.values())
    # reference "Total Cycles": every stall row plus every op's compute time (no overlap)
    total = stalls + compute
    e_wo_noc = sum(ctx.energy_by_level.values())
    busiest = max(ctx.unit_busy.items(), key=lambda kv: kv[1], default=("", 0.0))
    stall_kinds = {"compulsory": sum(n.compulsory_stall for n in ctx.nodes),
                   "optional": sum(n.optional_stall for n in ctx.nodes)}
    bottleneck = max([("compute:" + busiest[0], busiest[1]), ("compulsory stalls", stall_kinds["compulsory"]),
                      ("optional stalls", stall_kinds["optional"])], key=lambda kv: kv[1])[0]
    for n in ctx.nodes:
        n.utilisation = n.compute_cycles / root.latency if root.latency else 0.0
    return CostReport(
        program=program.name, arch=arch.name, latency_cycles=total, root_latency_cycles=root.latency,
        energy_pj=e_wo_noc + ctx.noc_energy, energy_pj_without_noc=e_wo_noc, noc_energy_pj=ctx.noc_energy,
        nodes=ctx.nodes, root=root.id, energy_by_level=ctx.energy_by_level,
        energy_by_tensor=ctx.energy_by_tensor, ideal_compute_cycles=ctx.ideal_compute,
        utilisation=(compute / root.latency if root.latency else 0.0), bottleneck=bottleneck,
        stalls=stall_kinds)
