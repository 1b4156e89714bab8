"""`comet-verify-capacity{double_buffer=true}`: every live tile fits its buffer.

For every temporal tile T and every (tensor, op) pair it moves, the data resident in T's child
level is the pair's extent below T: over the dimensions that index the tensor, the product of
the pair's factors in every tile nested inside T (spatial tiles that spread the instances of
T's own level excluded: each instance holds one share) times the op's tile steps, times the
tensor's precision. A tensor listed for several ops counts once (its largest tile). The sum per
child level, doubled for double buffering (the reference always double-buffers), must not
exceed that level's capacity; otherwise a located error names the tensor, the level, the bytes
needed and the bytes available. Compute units (engines) have no capacity and are skipped.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError
from comet_ir.passes._mapping import ArchView, arch_of, require_mapped, walk
from comet_ir.spec.mapping_tree import ComputeNode, MappedProgram, TileNode


def _index_dims(program: MappedProgram) -> dict[str, list[str]]:
    out = {}
    for o in program.problem.ops:
        for t in o.tensors:
            out[t.name] = [d for rank in t.projection for d in rank]
    return out


def resident_bytes(program: MappedProgram, tile: TileNode) -> list[tuple[str, str, str, int]]:
    """(tensor, op, child level, bytes) for every pair of `tile`."""
    idx = _index_dims(program)
    steps = {c.name: c.tile_steps for c, _ in ((n, p) for n, p in walk(program.root))
             if isinstance(c, ComputeNode)}
    # tiles at the same level as `tile` (its spatial spread, a private loop) iterate over
    # child tiles without adding to one child tile: excluded
    inner = [n for n, _ in walk(tile) if isinstance(n, TileNode) and n is not tile]
    out = []
    for i, (t, g) in enumerate(zip(tile.tensors, tile.tags)):
        ext = {d: 1 for d in idx.get(t, [])}
        for n in inner:
            for j, (t2, g2) in enumerate(zip(n.tensors, n.tags)):
                if t2 == t and g2 == g and n.targets[j] != tile.targets[i]:
                    for lvl in n.factors:
                        for d in ext:
                            ext[d] *= lvl.get(d, [1] * len(n.tensors))[j]
        st = steps.get(g, {}).get(t, {})
        elems = 1
        for d in ext:
            elems *= ext[d] * st.get(d, 1)
        out.append((t, g, tile.child_levels[i], max(1, elems * tile.precision[i] // 8)))
    return out


def check_capacity(program: MappedProgram, arch: ArchView, double_buffer: bool = True):
    """Raise CometError (with `.node`) for the first tile whose child level overflows."""
    k = 2 if double_buffer else 1
    for node, _ in walk(program.root):
        if not (isinstance(node, TileNode) and node.kind == "temporal"):
            continue
        per_level: dict[str, dict[str, tuple[int, str]]] = {}
        for t, g, lvl, b in resident_bytes(program, node):
            cur = per_level.setdefault(lvl, {}).get(t)
            if cur is None or b > cur[0]:
                per_level[lvl][t] = (b, g)
        for lvl, tensors in per_level.items():
            cap = arch.capacity.get(lvl)
            if cap is None:
                continue
            total = k * sum(b for b, _ in tensors.values())
            if total > cap:
                t, (b, g) = max(tensors.items(), key=lambda kv: kv[1][0])
                others = ", ".join(f"{x} {k * y} B" for x, (y, _) in tensors.items() if x != t)
                e = CometError(
                    f"comet-verify-capacity: tensor {t} (operation {g}) needs {k * b} bytes in {lvl}"
                    f"{' (double buffered)' if double_buffer else ''}"
                    f"{'; with ' + others if others else ''}: {total} bytes needed, "
                    f"{cap} available")
                e.node = node
                raise e


def _ir_op_for(mapping_op, program: MappedProgram, target) -> object:
    """The IR op at the same pre-order position as tree node `target` (ir_tree is 1:1)."""
    nodes = [n for n, _ in walk(program.root)]
    ops = list(mapping_op.root().walk())
    try:
        return ops[nodes.index(target)]
    except (ValueError, IndexError):
        return mapping_op


@dataclass(frozen=True)
class VerifyCapacityPass(ModulePass):
    """Check that every tile fits its memory level (double buffering counted)."""

    name = "comet-verify-capacity"
    double_buffer: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.passes._mapping import located_at

        with located_at(op):
            self._apply(ctx, op)

    def _apply(self, ctx: Context, op: ModuleOp) -> None:
        m, prog = require_mapped(op, "comet-verify-capacity")
        try:
            check_capacity(prog, arch_of(op, prog), self.double_buffer)
        except CometError as e:
            e.op = _ir_op_for(m, prog, getattr(e, "node", None))
            raise
