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
then adds the collectives. `idle=true` accepts a spread over fewer units than the mesh has
when the operation's loops run out (e.g. 8 heads on 16 clusters: half the clusters idle)
instead of the error; the spread always divides the mesh.
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


def _iterations(t: TileNode, d: str) -> int:
    """How often tile `t` iterates `d` (its largest pair factor)."""
    return max(t.factors[0].get(d, [1] * len(t.tensors)))


def _spread_op(program: MappedProgram, comp: ComputeNode, dims: tuple[str, ...], parts: int,
               divided: dict[int, dict[str, int]], dram: str | None,
               shared_ok: bool, idle: bool = False) -> dict[str, int]:
    """Spread op `comp` over `parts` units: returns {dim: units} with product `parts`.

    Shares already taken out of a tile that `comp` runs inside (a fused tile divided for an
    earlier op: `divided`) count first, then the op's own temporal loops give the rest,
    along `dims` in order, innermost tile first. `dram` (the DRAM level name) excludes tiles
    at that level (the core mesh lives inside a cluster: its share must come from the
    cluster's loops). A tile shared with other ops is divided for all of them (and recorded
    in `divided`) only when `shared_ok`. Raises a CometError when `parts` cannot be covered.
    """
    path = [t for t in _path_tiles(program, comp.name) if t.kind == "temporal"]
    got: dict[str, int] = {}
    left = parts
    for t in path:
        for d, g in divided.get(id(t), {}).items():
            got[d] = got.get(d, 1) * g
            left //= g
    if parts % math.prod(got.values() or [1]):
        raise CometError(f"comet-distribute: {comp.name} is already spread over "
                         f"{math.prod(got.values())} units, which does not divide {parts}")
    own = []
    for t in path:
        idx = [i for i, g in enumerate(t.tags) if g == comp.name]
        if not idx or (dram is not None and t.targets[idx[0]] == dram):
            continue
        if set(t.tags) != {comp.name} and not shared_ok:
            continue
        own.append((t, idx))
    for d in dims:
        if left == 1:
            break
        for t, idx in reversed(own):  # innermost first
            f = t.factors[0].get(d, [1] * len(t.tensors))[idx[0]]
            g = math.gcd(f, left)
            if g == 1:
                continue
            if set(t.tags) != {comp.name}:
                for i in range(len(t.tensors)):
                    t.factors[0][d][i] //= g
                divided.setdefault(id(t), {})[d] = divided.get(id(t), {}).get(d, 1) * g
            else:
                for i in idx:
                    t.factors[0][d][i] //= g
            got[d] = got.get(d, 1) * g
            left //= g
            if left == 1:
                break
    indexed = {x for o in program.problem.ops if o.name == comp.name
               for t in o.tensors for r in t.projection for x in r}
    if left == parts and not indexed & set(dims):
        return {}  # indexes none of `dims` (a per-row scalar op): every unit runs it whole
    if left != 1 and idle:
        return got  # the loops are used up: the remaining units stay idle
    if left != 1:
        loops = {d: math.prod(t.factors[0].get(d, [1] * len(t.tensors))[i[0]] for t, i in own)
                 for d in dims}
        have = ", ".join(f"{d}: {loops[d]}" for d in dims)
        raise CometError(f"comet-distribute: {comp.name} cannot be spread over {parts} "
                         f"spatial units along {', '.join(dims)} (its loop factors {have}"
                         f"{'; already spread ' + str(got) if got else ''})")
    return got


def _mesh_split(spread: dict[str, int], mesh: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Assign each dimension's share of the mesh to (X, Y): X (inner) filled first."""
    xl, yl = mesh
    out = {}
    for d, g in spread.items():
        x = math.gcd(g, xl)
        y = g // x
        xl //= x
        yl //= y
        out[d] = (x, y)
    return out


def distribute(program: MappedProgram, arch: ArchView, dims: tuple[str, ...],
               simd_dims: tuple[str, ...], mesh: str, idle: bool = False) -> MappedProgram:
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
        spread_ops: dict[str, dict[str, tuple[int, int]]] = {}
        divided: dict[int, dict[str, int]] = {}
        for c in comps:
            spread_ops[c.name] = _mesh_split(
                _spread_op(program, c, dims_for(c), cx * cy, divided, None, True, idle), (cx, cy))
        for node, parents in list(walk(program.root)):
            # one cluster spread per path: at the outermost DRAM loop (a private DRAM loop
            # nested in a fused one runs inside each cluster)
            if isinstance(node, TileNode) and node.kind == "temporal" and \
                    all(a == arch.dram for a in node.targets) and \
                    not any(isinstance(p, TileNode) and arch.dram in p.targets for p in parents):
                sp = {}
                for i, tag in enumerate(node.tags):
                    for d, xy in spread_ops.get(tag, {}).items():
                        sp.setdefault(d, {})[i] = xy
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
                    got = _spread_op(program, comp, dims_for(comp), px * py, {}, arch.dram, False,
                                     idle)
                    sp = {d: {i: xy for i in range(len(k.tensors))}
                          for d, xy in _mesh_split(got, (px, py)).items()}
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
    idle: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.passes._mapping import located_at

        with located_at(op):
            self._apply(ctx, op)

    def _apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.mesh not in MESH:
            raise CometError(f"comet-distribute: mesh '{self.mesh}' is not one of {', '.join(MESH)}")
        m, prog = require_mapped(op, "comet-distribute")
        try:
            replace_mapping(m, distribute(prog, arch_of(op, prog), tuple(self.dims),
                                          tuple(self.simd_dims), self.mesh, self.idle))
        except CometError as e:
            e.op = m
            raise
