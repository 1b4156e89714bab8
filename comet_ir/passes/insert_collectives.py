"""`comet-insert-collectives{strategy=dist|single level=GB|OB}`: explicit `comet.colop`s
where a row reduction crosses spatial units.

An operation is spread over `s` units along dimension d when its loop factors (temporal) times
its tile step cover only size(d)/s: the rest is spatial. For a row reduction (rowmax, rowsum,
mean) whose reduced dimension is spread:

- `dist` (the paper's distSM / distLN): a reducing `allreduce` of the reduction's result
  right after the reduction (max for a row max, add for a row sum or mean): softmax -> two
  allreduces (max, add), layernorm -> two (mean, variance). `level=GB` places them at the
  global buffer (default), `level=OB` at the output buffer.
- `single` (the paper's SM / LN): the vector operations are taken back onto one unit (their
  spatial factors folded back into their own loops) and one `gather` of the GEMM output they
  consume is inserted before the first of them; `level=OB` gathers into the output buffer
  (src [GB, OB] -> dest [OB], the reference example), `level=GB` into the global buffer.
  With `rows=true` the vector operations stay on as many units as before but spread over
  their rows instead of a row's columns (each unit holds whole rows after the gather; an op
  whose row loop the units do not divide is folded onto one unit as above).

Collectives the workload already has (tensor-parallel `comet.collective`, mapped by
comet-tile) are kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError
from comet_ir.passes._mapping import arch_of, replace_mapping, require_mapped, walk
from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, ComputeNode, MappedProgram, TileNode

STRATEGIES = ("dist", "single")
_REDUCING = {"rowmax": "max", "rowsum": "add"}


def spread_of(program: MappedProgram, comp: ComputeNode, d: str) -> int:
    """How many spatial units share op `comp`'s dimension `d`."""
    size = program.problem.dims[d]
    out = comp.tensors[-1]
    covered = comp.tile_steps.get(out, {}).get(d, 1)
    for node, parents in walk(program.root):
        if node is comp:
            for p in parents:
                if isinstance(p, TileNode) and p.kind == "temporal":
                    for i, (t, g) in enumerate(zip(p.tensors, p.tags)):
                        if t == out and g == comp.name:
                            covered *= p.factors[0].get(d, [1] * len(p.tensors))[i]
            break
    return max(1, size // covered)


def _path(program: MappedProgram, target) -> list:
    for node, parents in walk(program.root):
        if node is target:
            return list(parents)
    return []


def _insert_after(program: MappedProgram, comp: ComputeNode, col: ColOpNode, before=False):
    path = _path(program, comp) + [comp]
    for k in range(len(path) - 1, -1, -1):
        if isinstance(path[k], BindingNode):
            b, child = path[k], path[k + 1]
            i = b.children.index(child)
            b.children.insert(i if before else i + 1, col)
            return
    program.root = BindingNode("sequential", [col, program.root] if before else [program.root, col])


def _fold_back(program: MappedProgram, comp: ComputeNode, d: str) -> None:
    """Take op `comp` off the spatial units along d: spatial factors -> 1, own core loop x s."""
    s = spread_of(program, comp, d)
    path = [p for p in _path(program, comp) if isinstance(p, TileNode)]
    for p in path:
        if p.kind == "spatial":
            for lvl in p.factors:
                for i, g in enumerate(p.tags):
                    if g == comp.name and d in lvl:
                        lvl[d][i] = 1
    core = path[-1]
    for i, g in enumerate(core.tags):
        if g == comp.name:
            core.factors[0].setdefault(d, [1] * len(core.tensors))[i] *= s


def _respread_rows(program: MappedProgram, comp: ComputeNode, d: str) -> bool:
    """Move op `comp`'s spread from d (a row's columns) to its row dimension: as many of the
    same units as the op's own row loop can feed (gcd), each now holding whole rows (the
    paper's SM: no row crosses units); the rest of the spread is folded into the op's loops.
    False (nothing changed) when not one unit's worth of rows can move."""
    s = spread_of(program, comp, d)
    out_dims = [x for o in program.problem.ops if o.name == comp.name for t in o.tensors
                if t.name == comp.tensors[-1] for r in t.projection for x in r]
    rows = [x for x in out_dims if x != d]
    if not rows:
        return False
    r = rows[-1]
    path = [p for p in _path(program, comp) if isinstance(p, TileNode)]
    core = path[-1]
    own = [i for i, g in enumerate(core.tags) if g == comp.name]
    if core.kind != "temporal" or not own:
        return False
    g = math.gcd(core.factors[0].get(r, [1] * len(core.tensors))[own[0]], s)
    if g == 1:
        return False
    # the share spread by tiles this op has pairs in; the rest (a fused cluster tile that
    # spreads the GEMM) is implicit: each of those units runs the op on its own rows
    own_total = 1
    for p in path:
        if p.kind == "spatial":
            for lvl in p.factors:
                i = next((k for k, t in enumerate(p.tags) if t == comp.name), None)
                if i is not None:
                    own_total *= lvl.get(d, [1] * len(p.tensors))[i]
    g_own = g // math.gcd(g, s // own_total)
    for p in path:
        if p.kind == "spatial":
            for lvl in p.factors:
                idx = [k for k, t in enumerate(p.tags) if t == comp.name]
                if not idx or d not in lvl:
                    continue
                take = math.gcd(lvl[d][idx[0]], g_own)
                g_own //= take
                for i in idx:
                    lvl.setdefault(r, [1] * len(p.tensors))
                    lvl[r][i], lvl[d][i] = lvl[r][i] * take, 1
    for i in own:
        core.factors[0].setdefault(d, [1] * len(core.tensors))[i] *= s
        core.factors[0][r][i] //= g
    return True


def insert_collectives(program: MappedProgram, arch, strategy: str, level: str,
                       respread: bool = False) -> MappedProgram:
    comps = [n for n, _ in walk(program.root) if isinstance(n, ComputeNode)]
    by_out = {c.tensors[-1]: c for c in comps}
    prec = {}
    for node, _ in walk(program.root):
        if isinstance(node, TileNode):
            for t, p in zip(node.tensors, node.precision):
                prec.setdefault(t, p)
    crossing = []
    for c in comps:
        if c.op_type in ("Softmax", "layernorm") and c.reduction_dims and \
                spread_of(program, c, c.reduction_dims[0]) > 1:
            raise CometError(f"comet-insert-collectives: {c.name} is a monolithic {c.op_type} "
                             "spread over several units; run comet-decompose first so its "
                             "reductions can be combined by collectives")
        if c.op_type in _REDUCING and c.reduction_dims:
            d = c.reduction_dims[0]
            if spread_of(program, c, d) > 1:
                crossing.append((c, d))
    if not crossing:
        return program
    if strategy == "dist":
        for c, d in crossing:
            out = c.tensors[-1]
            col = ColOpNode(type="allreduce", tensor_in=out, tensor_out=out, dimension=d,
                            src=[level], dest=[level], target=level, child=level,
                            precision=prec.get(out, 16), reduce_op=_REDUCING[c.op_type],
                            tag=f"allreduce_{c.name}")
            _insert_after(program, c, col)
        return program
    # single: all vector ops spread along the reduced dim go back onto one unit
    d = crossing[0][1]
    simd = [c for c in comps if c.op_type != "GEMM" and spread_of(program, c, d) > 1]
    first = simd[0]
    src_t = next((t for c in simd for t in c.tensors[:-1]
                  if t in by_out and by_out[t].op_type == "GEMM"), first.tensors[0])
    for c in simd:
        if not (respread and _respread_rows(program, c, d)):
            _fold_back(program, c, d)
    src, dest = ([arch.gb, arch.ob], [arch.ob]) if level == arch.ob else ([arch.ob], [arch.gb])
    col = ColOpNode(type="gather", tensor_in=src_t, tensor_out=src_t, dimension=d, src=src,
                    dest=dest, target=level, child=level, precision=prec.get(src_t, 16),
                    tag=f"gather_{src_t}")
    # before the first vector op's own subtree, in the binding that holds it
    _insert_after(program, first, col, before=True)
    return program


@dataclass(frozen=True)
class InsertCollectivesPass(ModulePass):
    """Insert the collectives that spread row reductions need (dist) or a gather (single)."""

    name = "comet-insert-collectives"
    strategy: str = "dist"
    level: str | None = None
    rows: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.passes._mapping import located_at

        with located_at(op):
            self._apply(ctx, op)

    def _apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.strategy not in STRATEGIES:
            raise CometError(f"comet-insert-collectives: strategy '{self.strategy}' is not one of "
                             f"{', '.join(STRATEGIES)}")
        m, prog = require_mapped(op, "comet-insert-collectives")
        arch = arch_of(op, prog)
        level = self.level or (arch.gb if self.strategy == "dist" else arch.ob)
        if level not in (arch.gb, arch.ob):
            raise CometError(f"comet-insert-collectives: level '{level}' must be the global buffer "
                             f"({arch.gb}) or the output buffer ({arch.ob}) of '{arch.name}'")
        try:
            replace_mapping(m, insert_collectives(prog, arch, self.strategy, level, self.rows))
        except CometError as e:
            e.op = m
            raise
