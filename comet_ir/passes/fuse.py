"""`comet-fuse{level=none|partial|full}`: merge the per-operation loop nests of `comet-tile`.

- `none`: unfused, every operation's nest starts at DRAM (each intermediate round-trips DRAM).
- `partial`: one shared DRAM tile over the group's external tensors (inputs read by the
  group, outputs used after it); each operation keeps its own GB tile, so an intermediate is
  written back to the global buffer by its producer and read again by its consumer.
- `full`: additionally one shared GB tile (the loop factors all operations agree on, e.g.
  the row block); what an operation iterates on its own (a GEMM's K loop) stays in a private
  GB tile; intermediates (the GEMM output) stay in the output buffer and are consumed on chip.

Fusion needs equal DRAM-level factors (and, for `full`, the shared GB factors) across the
group, except a DRAM loop over a dimension only some operations index (a GEMM's K split at
DRAM by comet-tile): it becomes those operations' private DRAM tile inside the shared one, and
`full` then fuses like `partial` (the GEMM output accumulates in the global buffer over the K
chunks, so it cannot stay in the output buffer); otherwise a located error names the two operations. Run after comet-tile and before
comet-distribute.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError
from comet_ir.passes._mapping import replace_mapping, require_mapped, walk
from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, MappedProgram, TileNode

LEVELS = ("none", "partial", "full")


def _op_nest(node) -> str | None:
    """The op served by a per-op DRAM nest (all pairs serve one op), else None."""
    if isinstance(node, TileNode) and node.kind == "temporal" and len(set(node.tags)) == 1:
        return node.tags[0]
    return None


def _factor(t: TileNode, i: int, d: str) -> int:
    return t.factors[0].get(d, [1] * len(t.tensors))[i]


def _external_pairs(group: list[TileNode], program: MappedProgram, later_uses: set[str]):
    produced = {}
    for n in group:
        for t, w in zip(n.tensors, n.wb_output):
            if w:
                produced[t] = n.tags[0]
    pairs = []  # (nest, index)
    seen = set()
    for n in group:
        for i, t in enumerate(n.tensors):
            if t in seen:
                continue
            if t not in produced:  # read by the group, produced outside
                pairs.append((n, i))
                seen.add(t)
            elif n.wb_output[i] and (t in program.problem.outs or t in later_uses):
                pairs.append((n, i))
                seen.add(t)
    return pairs


def _shared_tile(pairs, level_nodes, dims, at_of, child_of, wb_of) -> TileNode:
    tensors = [n.tensors[i] for n, i in pairs]
    factors = {d: [] for d in dims}
    for (n, i), lvl in zip(pairs, level_nodes):
        for d in dims:
            factors[d].append(_factor(lvl, i if lvl is n else lvl.tensors.index(n.tensors[i]), d))
    first = level_nodes[0]
    return TileNode("temporal", [at_of(n, i) for n, i in pairs], tensors,
                    [n.precision[i] for n, i in pairs], [False] * len(pairs),
                    [wb_of(n, i) for n, i in pairs], [n.tags[i] for n, i in pairs],
                    [factors], first.order, [child_of(n, i) for n, i in pairs], [])


def fuse_program(program: MappedProgram, level: str) -> MappedProgram:
    if level == "none":
        return program
    root = program.root
    for node, _ in walk(root):
        if isinstance(node, TileNode) and node.kind == "spatial":
            raise CometError("comet-fuse: the mapping already has spatial tiles; run comet-fuse "
                             "before comet-distribute")
    items = root.children if isinstance(root, BindingNode) else [root]
    if not all(_op_nest(n) or isinstance(n, ColOpNode) for n in items):
        raise CometError("comet-fuse: expects the per-operation nests of comet-tile "
                         "(the mapping is already fused or hand-written)")
    dims = list(program.problem.dims)
    # groups: maximal runs of op nests (collectives split them)
    groups, cur = [], []
    for n in items:
        if isinstance(n, ColOpNode):
            if cur:
                groups.append(cur)
            groups.append(n)
            cur = []
        else:
            cur.append(n)
    if cur:
        groups.append(cur)
    out = []
    for gi, g in enumerate(groups):
        if isinstance(g, ColOpNode) or len(g) == 1:
            out.extend([g] if isinstance(g, ColOpNode) else g)
            continue
        # DRAM-level factors must agree, except a loop that only some ops iterate over a
        # dimension the others never index (a GEMM's K split at DRAM): it becomes a private
        # DRAM tile of those ops inside the shared one
        indexed = {o.name: {d for t in o.tensors for r in t.projection for d in r}
                   for o in program.problem.ops}
        private: dict[str, dict[str, int]] = {}
        for d in dims:
            vals = {(n.tags[0], _factor(n, 0, d)) for n in g}
            if len({v for _, v in vals}) > 1:
                own = {t for t, v in vals if v != 1}
                if not any(d in indexed.get(t, ()) for t, v in vals if v == 1):
                    for t, v in vals:
                        if v != 1:
                            private.setdefault(t, {})[d] = v
                    continue
                a, b = sorted(vals, key=lambda x: x[1])[:1][0], sorted(vals, key=lambda x: -x[1])[0]
                raise CometError(f"comet-fuse: cannot fuse {a[0]} and {b[0]}: their DRAM-level "
                                 f"factors of {d} differ ({a[1]} vs {b[1]})")
        later = set()
        for h in groups[gi + 1:]:
            for n in ([h] if isinstance(h, ColOpNode) else h):
                later |= set(n.tensors) if isinstance(n, TileNode) else {n.tensor_in}
        pairs = _external_pairs(g, program, later)
        gbs = [n.body[0] for n in g]
        for gb in gbs:
            if not (isinstance(gb, TileNode) and len(gb.body) == 1):
                raise CometError("comet-fuse: expects DRAM -> GB -> core nests from comet-tile")
        dram = _shared_tile(pairs, [n for n, _ in pairs], dims, lambda n, i: n.targets[i],
                            lambda n, i: n.child_levels[i], lambda n, i: n.wb_output[i])
        for fs in private.values():
            for d in fs:
                dram.factors[0][d] = [1] * len(pairs)
        if private:
            # the op's own DRAM loop (its chunks stream through GB) wraps its GB tile
            for k, n in enumerate(g):
                fs = private.get(n.tags[0])
                if fs:
                    gbs[k] = TileNode("temporal", list(n.targets), list(n.tensors),
                                      list(n.precision), list(n.rmw), list(n.wb_output),
                                      list(n.tags), [{d: [fs.get(d, 1)] * len(n.tensors)
                                                      for d in dims}],
                                      n.order, list(n.child_levels), [gbs[k]])
        if level == "partial" or private:
            # full fusion would need the rows loop at GB outside the K loop at DRAM; with a
            # K split the GEMM output is accumulated in the global buffer instead (partial)
            dram.body = [BindingNode("sequential", gbs)]
        else:
            gb_of = {n.tags[0]: gb for n, gb in zip(g, gbs)}
            shared_f = {}
            reduced = {d for gb in gbs for c, _ in walk(gb) if hasattr(c, "reduction_dims")
                       and c.op_type in ("rowmax", "rowsum") for d in c.reduction_dims}
            for d in dims:
                vals = {gb.factors[0].get(d, [1])[0] for gb in gbs}
                shared_f[d] = vals.pop() if len(vals) == 1 else 1
                if d in reduced and shared_f[d] > 1:
                    # a shared loop over a row-reduced dim would use partial row statistics
                    raise CometError(f"comet-fuse: cannot fully fuse: {d} is tiled at GB "
                                     f"({shared_f[d]} iterations) and a row reduction sums over "
                                     "it; keep rows whole (comet-tile without col_split) or "
                                     "use comet-online-softmax on the flash form")
            gb_nodes = [gb_of[n.tags[i]] for n, i in pairs]
            shared = _shared_tile(pairs, gb_nodes, dims, lambda n, i: gb_of[n.tags[i]].targets[0],
                                  lambda n, i: gb_of[n.tags[i]].child_levels[gb_of[n.tags[i]].tensors.index(n.tensors[i])],
                                  lambda n, i: n.wb_output[i])
            for d in dims:
                shared.factors[0][d] = [shared_f[d]] * len(pairs)
            kids = []
            for gb in gbs:
                private = {d: [f // shared_f[d] for f in fs] for d, fs in gb.factors[0].items()}
                if any(f != 1 for fs in private.values() for f in fs):
                    gb.factors = [private]
                    kids.append(gb)
                else:
                    kids.append(gb.body[0])
            shared.body = [BindingNode("sequential", kids)]
            dram.body = [shared]
        out.append(dram)
    program.root = out[0] if len(out) == 1 else BindingNode("sequential", out)
    return program


@dataclass(frozen=True)
class FusePass(ModulePass):
    """Fuse the per-operation nests: none | partial (share DRAM tile) | full (share GB tile)."""

    name = "comet-fuse"
    level: str = "full"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.passes._mapping import located_at

        with located_at(op):
            self._apply(ctx, op)

    def _apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.level not in LEVELS:
            raise CometError(f"comet-fuse: level '{self.level}' is not one of {', '.join(LEVELS)}")
        m, prog = require_mapped(op, "comet-fuse")
        if self.level == "none":
            return
        try:
            replace_mapping(m, fuse_program(prog, self.level))
        except CometError as e:
            e.op = m
            raise
