"""Compute-unit and network-link timing: the per-invocation latency of a tile primitive on a
MAC array / systolic array / vector SIMD unit, and the latency/energy of one transfer over a
mesh link, as the reference COMET model defines them (paper Sec. IV-B/C; the reference
source's compute classes and MeshNetwork). Pure functions of scalars so a batched evaluator
can call them on arrays later.
"""
from __future__ import annotations

import math

from comet_ir.backends.cost.noc_energy import mesh_transfer_energy
from comet_ir.spec.refarch import ComputeType, Link

# Cycles and pJ per SIMD vector instruction by op class (the reference's fixed table; the
# architecture's `op_costs` override the cycles). Row reductions use a log2(lanes) tree.
SIMD_CYCLES = {"div": 1, "exp": 3, "add": 1, "mult": 1, "max": 1, "sqrt": 1, "softmax": 1}
SIMD_PJ = {"div": 0.8, "exp": 3.86, "add": 0.11, "mult": 0.64, "max": 0.0025, "sqrt": 2.84, "softmax": 1.0,
           "rowsum": 0.11, "rowmax": 0.0025}
_OP_ALIASES = {"sub": "add", "mul": "mult", "gemm": "gemm"}
_MAC_REDUCTION_BLOCK = 256  # reduction length handled per accumulation hop of the MAC array
_MAC_REDUCTION_HOPS = {16: 16, 8: 12, 4: 8, 2: 6}
_MAC_OPS_PER_STEP = 8 * 8 * 8  # a MAC array step retires an 8x8x8 block


def op_class(op_type: str) -> str:
    o = op_type.lower()
    return _OP_ALIASES.get(o, o)


def unit_latency(ct: ComputeType, prim: list[int], prim_dims: list[str], op: str,
                 red_dims: list[str], red_factors: dict[str, int], rmw: bool, specd: bool) -> int:
    """Cycles of one tile primitive (`prim`, in problem-dimension order) on unit type `ct`."""
    if ct.name == "SystolicArray" or (ct.kind == "mac" and ct.name != "GEMM" and ct.array != (32, 32, 1, 1)):
        rows, cols, nsr, nsc = ct.array
        t = red_factors.get(red_dims[-1], 1) if red_dims else 1
        base = 2 * rows + cols + t - 2  # fill + drain of the array plus the reduction length (ScaleSim)
        rest = list(prim)
        if t in rest:
            rest.remove(t)
        # the last two non-reduction dims map onto the array's rows and columns; dims before them
        # (batch, heads: only batched primitives have any, the reference's GEMMs never do) run
        # one after another — without this a batched primitive's N would ride along for free
        scale = math.prod(rest[:-2]) if len(rest) > 2 else 1
        for i, v in enumerate(rest[-2:]):
            scale *= math.ceil(v / (rows * nsr if i == 0 else cols * nsc))
        return scale * base
    if ct.kind == "mac":
        if len(prim) != 3:
            return ct.latency
        lat = ct.startup
        if specd and rmw and red_dims:
            lat += _MAC_REDUCTION_HOPS.get(red_factors.get(red_dims[0], 0) // _MAC_REDUCTION_BLOCK, 0)
        return lat + (math.prod(prim) // _MAC_OPS_PER_STEP) * ct.latency
    # vector SIMD: one instruction per (lanes x reduction length) elements
    if op in ("rowsum", "rowmax"):
        c = math.ceil(math.log2(ct.compute_width))
    else:
        c = ct.op_costs.get(op, SIMD_CYCLES.get(op, 1)) if op in ct.op_costs and ct.op_costs[op] > 0 \
            else SIMD_CYCLES.get(op, 1)
    t = math.prod(red_factors.get(d, 1) for d in red_dims) if red_dims else 1
    return c * math.ceil(math.prod(prim) / (ct.compute_width * t))


def unit_energy_per_invocation(ct: ComputeType, prim: list[int], op: str) -> float:
    """pJ of one invocation on one unit instance (before multiplying by instances)."""
    if ct.name == "SystolicArray":
        return math.prod(prim) * 0.2296  # pJ per MAC of a 45 nm systolic PE
    if ct.kind == "simd":
        e = SIMD_PJ.get(op, ct.energy)
        if op in ("rowsum", "rowmax"):
            e *= math.ceil(math.log2(ct.compute_width))
        return e * ct.compute_width
    return ct.energy


# ------------------------------------------------------------------------------ mesh links


def mesh_shape(link: Link, spatial: int) -> tuple[int, int]:
    """The sub-mesh a transfer to `spatial` destinations occupies (smallest square that fits,
    clipped to the link's mesh)."""
    if not link.has_mesh:
        s = math.ceil(math.sqrt(spatial))
        return s, s
    mx, my = link.mesh
    s = math.ceil(math.sqrt(spatial))
    if mx >= s and my >= s:
        return s, s
    if mx >= s > my:
        return (spatial + my - 1) // my, my
    if mx < s <= my:
        return my, (spatial + my - 1) // my
    return mx, my


def _hops(shape: tuple[int, int]) -> int:
    # XY routing from a corner: (X-1)+(Y-1) hops; the same count of tile-sized hops of data
    return max(shape[0] - 1, 0) + max(shape[1] - 1, 0)


_RED_CYCLES = {"add": 1.0, "max": 1.0, "mul": 1.0}
_RED_PJ = {"add": 0.11, "max": 0.0025, "mul": 0.64}


def link_latency(link: Link, kind: str, tile_elems: int, unique: int, spatial: int, prec_bytes: float,
                 reduce_op: str = "none") -> int:
    """Cycles of a link transfer of the given collective pattern: router hops x t_router plus
    the queuing of the payload (elements x bits / channel width x t_queue); allreduce =
    reduce then broadcast, allgather = gather then broadcast (tree over the mesh)."""
    if unique == 0 or spatial == 1:
        return 0
    shape = mesh_shape(link, spatial)
    hops = _hops(shape)
    bits = prec_bytes * 8
    phases = {"allreduce": ("reduce", "broadcast"), "allgather": ("gather", "broadcast")}.get(kind, (kind,))
    t = 0.0
    for ph in phases:
        q = tile_elems * hops
        if ph == "reduce" and reduce_op != "none":
            t += q * spatial * _RED_CYCLES.get(reduce_op, 1.0) / 16.0  # 16-lane reduction engine
        if ph == "scatter" and unique == 1:
            q = int(q / spatial)
        t += hops * link.hop_latency + (q * bits) / link.channel_width * link.queuing_delay
    return int(t)


def link_energy(link: Link, kind: str, tile_elems: int, unique: int, spatial: int, prec_bytes: float,
                reduce_op: str = "none") -> float:
    if unique == 0 or spatial == 1:
        return 0.0
    shape = mesh_shape(link, spatial)
    hops = _hops(shape)
    phases = {"allreduce": ("reduce", "broadcast"), "allgather": ("gather", "broadcast")}.get(kind, (kind,))
    total_hops, q, red = 0, 0, 0.0
    for ph in phases:
        total_hops += hops
        qq = tile_elems * hops
        if ph == "reduce" and reduce_op != "none" and kind == "reduce":
            red = qq * spatial * _RED_PJ.get(reduce_op, 0.0)
        if kind == "allreduce" and ph == "reduce" and reduce_op != "none":
            red = qq * spatial * _RED_PJ.get(reduce_op, 0.0)
        if ph == "scatter" and unique == 1:
            qq = int(qq / spatial)
        q += qq
    q_bits = int(q * prec_bytes * 8) & 0xFFFFFFFF  # the reference keeps Q in 32 bits
    return mesh_transfer_energy(link.channel_width, total_hops, link.queuing_delay, q_bits, shape[0]) + red
