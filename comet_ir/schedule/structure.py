"""Structural variants of a mapped program for comet-map: collective type and location, and the
spatial split of the vector ops, re-derived the way comet-insert-collectives derives them.

A row reduction (rowmax, rowsum) whose reduced dimension is spread over units needs its
partial results combined. The variants of a program are: its row-reduction collectives removed,
then put back by `insert_collectives` with each strategy the pass offers --
`dist` (reducing allreduces right after the reductions) at GB or OB, `single` (the vector ops
folded back onto one unit behind one gather of the GEMM output) at OB or GB, and `single`
with `rows=true` (the vector ops spread over rows instead of a row's columns: a spatial-split
move). The tiling space of each variant is then searched like the given mapping's.

Only programs whose collectives are all such row-reduction allreduces / gathers get variants
(a tensor-parallel collective of the workload is not ours to move).
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, MappedProgram, TileNode

# (label, strategy, level, rows)
_VARIANTS = [
    ("allreduce at GB", "dist", "GB", False),
    ("allreduce at OB", "dist", "OB", False),
    ("gather at OB", "single", "OB", False),
    ("gather at GB", "single", "GB", False),
    ("gather at OB, rows spread", "single", "OB", True),
    ("gather at GB, rows spread", "single", "GB", True),
]


def _strip_collectives(node):
    """The tree without its collectives (None for a collective)."""
    if isinstance(node, ColOpNode):
        return None
    if isinstance(node, BindingNode):
        kids = [k for k in (_strip_collectives(c) for c in node.children) if k is not None]
        if not kids:
            return None
        if len(kids) == 1 and node.kind == "sequential":
            return kids[0]
        node.children = kids
        return node
    if isinstance(node, TileNode):
        node.body = [k for k in (_strip_collectives(c) for c in node.body) if k is not None]
    return node


def _collectives(node) -> list[ColOpNode]:
    if isinstance(node, ColOpNode):
        return [node]
    kids = node.children if isinstance(node, BindingNode) else getattr(node, "body", [])
    return [c for k in kids for c in _collectives(k)]


def structural_variants(program: MappedProgram, accel) -> list[tuple[str, MappedProgram]]:
    """[(label, program)] for every collective strategy / placement that applies (the given
    program is not among them); empty when the program has no row-reduction collectives to
    move or the architecture has no GB / OB levels."""
    from comet_ir.passes.insert_collectives import insert_collectives

    cols = _collectives(program.root)
    levels = set(getattr(accel, "levels", []) or [])
    if not cols or not {"GB", "OB"} <= levels:
        return []
    if any(c.type not in ("allreduce", "gather") for c in cols):
        return []
    bare = copy.deepcopy(program)
    bare.root = _strip_collectives(bare.root)
    if bare.root is None:
        return []
    view = SimpleNamespace(gb="GB", ob="OB")
    out, seen = [], set()
    for label, strategy, level, rows in _VARIANTS:
        p = copy.deepcopy(bare)
        try:
            p = insert_collectives(p, view, strategy, level, respread=rows)
        except Exception:  # noqa: BLE001 - a strategy the structure does not allow is no variant
            continue
        if not _collectives(p.root):
            # the pass sees no reduction crossing units (e.g. an imported reference program
            # whose vector ops reduce over another dimension): removing the given collectives
            # would be wrong, so this program has no variants
            return []
        key = repr(p.root)
        if key in seen or key == repr(program.root):
            continue
        seen.add(key)
        out.append((label, p))
    return out
