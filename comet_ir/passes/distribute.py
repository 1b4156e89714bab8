"""`comet-distribute{dims=… simd_dims=… mesh=all|clusters|cores}`: spatial tiles.

- clusters: a `comet.tile spatial` at DRAM (child GB) directly inside every DRAM temporal
  tile spreads `dims` over the architecture's cluster mesh (X inner, Y outer);
- cores: every core-level tile (at IB/WB/OB, child an engine) is wrapped in a
  `comet.tile spatial` at GB spreading `dims` over the cores of a cluster.

GEMM (MAC) operations are spread along the first of `dims` (default N) whose loop factor the
mesh divides, vector operations along the first of `simd_dims` (default: `dims`). The spread factor is taken out of the operation's own
core-level temporal factor (or, for dimensions tiled only at DRAM such as batch/heads, out of
the DRAM factor); a factor that the mesh does not divide is a located error. Spreading a
row reduction's reduced dimension makes the reduction cross units: comet-insert-collectives
then adds the collectives.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError
from comet_ir.passes._mapping import (
    ArchView,
    arch_of,
    children,
    replace_mapping,
    require_mapped,
    set_children,
    walk,
)
from comet_ir.spec.mapping_tree import BindingNode, ComputeNode, MappedProgram, TileNode

MESH = ("all", "clusters", "cores")


def core_tile_of(program: MappedProgram, op_name: str) -> TileNode:
    for node, parents in walk(program.root):
        if isinstance(node, ComputeNode) and node.name == op_name:
            return parents[-1]
    raise KeyError(op_name)


def _path_tiles(program: MappedProgram, op_name: str) -> list[TileNode]:
    for node, parents in walk(program.root):
        if isinstance(node, ComputeNode) and node.name == op_name:
            return [p for p in parents if isinstance(p, TileNode)]
    return []


def _take(program: MappedProgram, comp: ComputeNode, d: str, parts: int, prefer_dram: bool,
          done: set | None = None) -> bool:
    """Divide op `comp`'s temporal factors of `d` by `parts` in total, innermost tile first
    (a tile shared with other ops is divided for all of them, which are then spread too);
    False when the op does not iterate `d` at all."""
    tiles = [t for t in _path_tiles(program, comp.name) if t.kind == "temporal"]
    own = [(t, [i for i, g in enumerate(t.tags) if g == comp.name]) for t in tiles]
    iterated = [(t, idx) for t, idx in own
                if idx and t.factors[0].get(d, [1] * len(t.tensors))[idx[0]] > 1]
    if not iterated:
        return False
    plan, left = [], parts
    for t, idx in reversed(iterated):  # innermost first
        g = math.gcd(t.factors[0][d][idx[0]], left)
        if g > 1:
            plan.append((t, idx, g))
            left //= g
        if left == 1:
            break
    if left != 1:
        total = math.prod(t.factors[0][d][idx[0]] for t, idx in iterated)
        raise CometError(f"comet-distribute: dimension {d} of {comp.name} (loop factors "
                         f"{total}) is not divisible by the {parts} spatial units")
    for t, idx, g in plan:
        if set(t.tags) != {comp.name}:
            for i in range(len(t.tensors)):
                t.factors[0][d][i] //= g
            if done is not None:
                done.update(t.tags)
        else:
            for i in idx:
                t.factors[0][d][i] //= g
    return True


def _take_first(program, comp, dims, parts, done=None) -> str | None:
    """Spread `comp` along the first of `dims` whose loop factor the mesh divides."""
    first_err = None
    for d in dims:
        try:
            if _take(program, comp, d, parts, False, done):
                return d
        except CometError as e:
            first_err = first_err or e
    if first_err is not None:
        raise first_err
    return None


def distribute(program: MappedProgram, arch: ArchView, dims: tuple[str, ...],
               simd_dims: tuple[str, ...], mesh: str) -> MappedProgram:
    for d in tuple(dims) + tuple(simd_dims):
        if d not in program.problem.dims:
            raise CometError(f"comet-distribute: unknown dimension '{d}' (the mapping has "
                             f"{', '.join(program.problem.dims)})")
    for node, _ in walk(program.root):
        if isinstance(node, TileNode) and node.kind == "spatial":
            raise CometError("comet-distribute: the mapping is already distributed")
    comps = [n for n, _ in walk(program.root) if isinstance(n, ComputeNode)]

    def dims_for(c: ComputeNode):
        return dims if c.op_type == "GEMM" else (simd_dims or dims)

    def spatial(template: TileNode, at, child, spread: dict[str, dict[int, tuple[int, int]]]):
        n = len(template.tensors)
        x = {d: [spread.get(d, {}).get(i, (1, 1))[0] for i in range(n)] for d in program.problem.dims}
        y = {d: [spread.get(d, {}).get(i, (1, 1))[1] for i in range(n)] for d in program.problem.dims}
        return TileNode("spatial", at, list(template.tensors), list(template.precision),
                        list(template.rmw), list(template.wb_output), list(template.tags), [x, y],
                        template.order, child, [])

    if mesh in ("all", "clusters"):
        cx, cy = arch.clusters
        spread_ops: dict[str, set[str]] = {}
        shared_done: set[str] = set()
        for c in comps:
            if c.name in shared_done:
                continue
            before = set(shared_done)
            d = _take_first(program, c, dims_for(c), cx * cy, shared_done)
            if d:
                spread_ops.setdefault(c.name, set()).add(d)
                for other in shared_done - before:
                    spread_ops.setdefault(other, set()).add(d)
        for node, _ in list(walk(program.root)):
            if isinstance(node, TileNode) and node.kind == "temporal" and \
                    all(a == arch.dram for a in node.targets):
                sp = {}
                for i, tag in enumerate(node.tags):
                    for d in spread_ops.get(tag, ()):
                        sp.setdefault(d, {})[i] = (cx, cy)
                s = spatial(node, list(node.targets), list(node.child_levels), sp)
                s.body = node.body
                node.body = [s]
    if mesh in ("all", "cores"):
        px, py = arch.cores

        def wrap(node):
            kids = children(node)
            new = []
            for k in kids:
                if isinstance(k, TileNode) and k.kind == "temporal" and k.body and \
                        all(isinstance(b, ComputeNode) for b in k.body):
                    comp = k.body[0]
                    sp = {}
                    d = _take_first(program, comp, dims_for(comp), px * py)
                    if d:
                        sp[d] = {i: (px, py) for i in range(len(k.tensors))}
                    s = spatial(k, [arch.gb] * len(k.tensors), list(k.targets), sp)
                    s.body = [k]
                    new.append(s)
                else:
                    wrap(k)
                    new.append(k)
            set_children(node, new)

        holder = BindingNode("sequential", [program.root])
        wrap(holder)
        program.root = holder.children[0]
    return program


@dataclass(frozen=True)
class DistributePass(ModulePass):
    """Spread loops over the cluster mesh and the cores of each cluster (spatial tiles)."""

    name = "comet-distribute"
    dims: tuple[str, ...] = ("N",)
    simd_dims: tuple[str, ...] = ()
    mesh: str = "all"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.mesh not in MESH:
            raise CometError(f"comet-distribute: mesh '{self.mesh}' is not one of {', '.join(MESH)}")
        m, prog = require_mapped(op, "comet-distribute")
        try:
            replace_mapping(m, distribute(prog, arch_of(op, prog), tuple(self.dims),
                                          tuple(self.simd_dims), self.mesh))
        except CometError as e:
            e.op = m
            raise
