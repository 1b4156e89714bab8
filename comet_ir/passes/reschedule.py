"""`comet-reschedule{order=local-first|arrival|natural|given tiles=...}`: rewrite the `tile_order`
of every cometgpu.kernel (the order its compute blocks visit output tiles).

Tile ids are linear, m_blk * grid[1] + n_blk (with `cluster = [2, 1]`, m_blk counts pairs of row
blocks: ids index the grid of cluster tiles). Orders are computed for one rank (`rank`,
default 0; the runtime computes the same policy for its own rank with `order_tiles`):

* all-gather + GEMM (rows of X arrive per source rank): `local-first` runs the row blocks whose
  rows are this rank's own shard first, then the others in the order their shards arrive (the
  comm blocks push around the ring, so rank r receives from r-1, r-2, ...); a row block that
  straddles two shards goes with the later one. `arrival` orders all row blocks by that arrival
  step alone (for AG the same as local-first: own rows arrive at step 0).
* GEMM + reduce-scatter (rows of the partial result leave per destination rank): `arrival`
  computes the row blocks in the order the comm blocks send them (to r+1, r+2, ...), own rows
  last, so sending starts as early as possible; `local-first` computes own rows first (nothing
  can be sent meanwhile; kept as an option for comparison).
* `natural`: row blocks in index order. `given`: the `tiles` list as written (must be a permutation).

Every policy but `given` then visits its row blocks in groups of 16, column by column inside
a group (L2 reuse of A and B; `grouped`).

Grids of more than 64 tiles keep `tiles` empty: the `order` policy alone defines the order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError, env_int

ORDERS = ("local-first", "arrival", "natural", "given")
# Row blocks (cluster rows) per L2 group, walked in snake order (see grouped). A wave of W cluster
# tiles covering g rows reads g A panels and W/g B panels; their sum is smallest near
# g = sqrt(W * BN / BM), i.e. 8 for 66 clusters of 256x256. Measured at 8192x7168x4096 (Nsight
# Compute, one call): DRAM reads 641 MB with 16 plain groups, 521 MB with 8 in snake order
# (cuBLAS: 517), same cycles, a 1 % higher clock (benchmarks/RESULTS.md, session 8).
GROUP_M = 8
SNAKE = 1
MAX_LISTED_TILES = 64  # grids up to this many tiles print their order explicitly


def _row_block_key(pattern: str, mb: int, bm: int, m: int, m_shard: int, world: int, rank: int,
                   policy: str) -> tuple:
    r0, r1 = mb * bm, min((mb + 1) * bm, m) - 1
    owners = range(r0 // m_shard, r1 // m_shard + 1)
    if pattern == "ag_gemm":
        # arrival step of a source s at rank `rank`: (rank - s) mod world (own rows: step 0)
        step = max((rank - s) % world for s in owners)
        return (step,)
    if pattern == "gemm_rs":
        # send step of a destination d from `rank`: (d - rank) mod world, own rows (0) last
        steps = [((d - rank) % world or world) for d in owners]
        if policy == "local-first":
            return (0 if rank in owners else 1, min(steps))
        return (min(steps),)
    return (0,)


def order_tiles(pattern: str, m: int, n: int, tile_m: int, tile_n: int, world: int, rank: int = 0,
                policy: str = "local-first", given: list[int] | None = None, group_m: int | None = None) -> list[int]:
    """The linear tile ids of an (ceil(m/tile_m) x ceil(n/tile_n)) grid in visiting order.
    `m` is the GEMM's row count (AG: gathered rows; RS: rows before the scatter)."""
    policy = policy.replace("_", "-")
    group_m = group_m or env_int("COMET_GROUP_M", GROUP_M, low=1, what="comet-reschedule")
    gm, gn = math.ceil(m / tile_m), math.ceil(n / tile_n)
    total = gm * gn
    if policy == "given":
        if sorted(given or []) != list(range(total)):
            raise CometError(f"comet-reschedule: given tiles must be a permutation of 0..{total - 1}")
        return list(given)
    if policy == "row-major":
        return list(range(total))
    if policy == "natural" or world == 1 or pattern == "gemm":
        return grouped(list(range(gm)), gn, group_m)
    if policy not in ORDERS:
        raise CometError(f"comet-reschedule: unknown order '{policy}' (one of {', '.join(ORDERS)})")
    m_shard = m // world
    keyed = sorted((_row_block_key(pattern, mb, tile_m, m, m_shard, world, rank, policy), mb) for mb in range(gm))
    out: list[int] = []
    i = 0
    while i < len(keyed):                 # group only row blocks of the same priority class
        j = i
        while j < len(keyed) and keyed[j][0] == keyed[i][0]:
            j += 1
        out += grouped([mb for _, mb in keyed[i:j]], gn, group_m)
        i = j
    return out


def grouped(blocks: list[int], gn: int, group_m: int = GROUP_M, snake: bool | None = None,
            group_n: int | None = None) -> list[int]:
    """Visit row blocks (already in priority order) in groups of `group_m`, column by column
    inside a group: the tiles in flight at once then share a few A row blocks and B column
    blocks, which stay in L2 (row-major over a wide N re-reads all of B every wave). `snake`
    (default: $COMET_SNAKE, else on) walks every other group's columns right to left, so the B blocks
    read last are read again first. `group_n` (default $COMET_GROUP_N, else 0 = off; an experiment)
    walks a group in chunks of that many columns, row by row inside a chunk: tiles next to each other
    in the order then share their A row block instead of their B column block. With the dynamic
    schedule L2 then coalesces neighbours' A loads (4-7 % fewer L2 reads at 8192x7168x4096, near
    nvjet's), but it measured no faster at the power cap and reads more DRAM (benchmarks/RESULTS.md,
    session 9)."""
    if snake is None:
        snake = env_int("COMET_SNAKE", SNAKE, low=0, what="comet-reschedule") > 0
    if group_n is None:
        group_n = env_int("COMET_GROUP_N", 0, low=0, what="comet-reschedule")
    out = []
    for i, g in enumerate(range(0, len(blocks), group_m)):
        grp = blocks[g:g + group_m]
        cols = list(range(gn - 1, -1, -1) if snake and i % 2 else range(gn))
        if group_n:
            for c in range(0, gn, group_n):
                out += [mb * gn + nb for mb in grp for nb in cols[c:c + group_n]]
        else:
            out += [mb * gn + nb for nb in cols for mb in grp]
    return out


def kernel_order(kernel, policy: str, rank: int = 0, given: list[int] | None = None) -> list[int]:
    m, n, _ = kernel.shape_mnk
    bm, bn, _ = kernel.field("tile")
    cm = kernel.field("cluster")[0]        # ids over the grid of cluster tiles
    return order_tiles(kernel.field("pattern"), m, n, bm * cm, bn, kernel.field("world"), rank, policy, given)


def set_order(kernel, policy: str, rank: int = 0, given: list[int] | None = None) -> None:
    from comet_ir.dialects.cometgpu import KernelOp, Order  # noqa: F401
    from comet_ir.dialects.syntax import ints_attr
    from comet_ir.dialects.cometgpu import OrderAttr

    tiles = kernel_order(kernel, policy, rank, given)
    if policy != "given" and len(tiles) > MAX_LISTED_TILES:
        tiles = []   # large grids: the policy alone defines the order (order_tiles)
    kernel.properties["order"] = OrderAttr(Order(policy.replace("-", "_")))
    kernel.properties["tiles"] = ints_attr(tiles)


@dataclass(frozen=True)
class RescheduleTiles(ModulePass):
    name = "comet-reschedule"

    order: str = "local-first"
    tiles: str = ""        # for order=given: comma-separated linear tile ids
    rank: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.dialects.cometgpu import KernelOp

        if self.order.replace("_", "-") not in ORDERS:
            raise CometError(f"comet-reschedule: order must be one of {', '.join(ORDERS)}, got '{self.order}'")
        given = None
        if self.order == "given":
            try:
                given = [int(t) for t in str(self.tiles).replace(" ", ",").split(",") if t != ""]
            except ValueError:
                raise CometError(f"comet-reschedule: tiles must be integers, got '{self.tiles}'") from None
        for k in op.walk():
            if isinstance(k, KernelOp):
                set_order(k, self.order.replace("_", "-"), self.rank, given)
