"""Whole-program check: loop factors down the tree times tile steps equal each dimension.

The rule is the reference implementation's (its mapping validator): for every
(tensor, served-op) pair held by the outermost tile, multiply that pair's factors over every
tile of the tree (temporal and both spatial axes) and the tile steps of the compute op that
serves it; each product must equal the problem's dimension — for every dimension, including
ones that do not index the tensor (they count how often it is revisited).
"""
from __future__ import annotations

from collections import defaultdict

from xdsl.utils.exceptions import VerifyException


def _walk_nodes(op):
    yield op
    for region in op.regions:
        for block in region.blocks:
            for child in block.ops:
                yield from _walk_nodes(child)


def _outer_tiles(op):
    from comet_ir.dialects.comet_mapped import BindingOp, TileOp

    if isinstance(op, TileOp):
        yield op
    elif isinstance(op, BindingOp):
        for child in op.body.block.ops:
            yield from _outer_tiles(child)


def check_factor_products(mapping) -> None:
    from comet_ir.dialects.comet_mapped import ComputeOp, TileOp

    dims = mapping.field("dims")
    root = mapping.root()
    products: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(lambda: 1))
    steps: dict[tuple[str, str], dict[str, int]] = {}
    for op in _walk_nodes(root):
        if isinstance(op, TileOp):
            tensors, serves = op.field("tensors"), op.field("serves")
            for level in op.field("factors"):
                for d, fs in level.items():
                    for t, tag, f in zip(tensors, serves, fs):
                        products[(t, tag)][d] *= f
        elif isinstance(op, ComputeOp):
            for t, st in op.field("steps").items():
                steps[(t, op.field("op"))] = st
    for tile in _outer_tiles(root):
        for t, tag in zip(tile.field("tensors"), tile.field("serves")):
            st = steps.get((t, tag))
            if st is None:
                continue  # no compute op serves this pair: nothing to check against
            for d, size in dims.items():
                got = products[(t, tag)].get(d, 1) * st.get(d, 1)
                if (d in products[(t, tag)] or d in st) and got != size:
                    raise VerifyException(
                        f"comet.mapping: factors: dimension {d} of tensor {t} (operation {tag}) "
                        f"tiles to {got}, but the problem has {d} = {size}")
