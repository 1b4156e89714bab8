"""Choose a cometgpu kernel's comm/compute thread-block split and tile order.

`choose(params, arch) -> (comm_blocks, tile_order, predicted_ms)` for the CUDA backend (and the
`comet-choose-split` pass). The prediction is a list schedule of the kernel's output tiles in
the given order on the compute blocks (SMs - comm blocks), using the GPU cost model's numbers
(comet_ir/backends/cost/gpu_model.py: per-tile GEMM time from `gemm_us`, transfer time from
`comm_us`, the RS reduction and the launch):

* ag_gemm: a tile can start once the shard holding its rows has arrived; the comm blocks bring
  the peers' shards one after another in the ring order (peer r-1 first, as the kernel sends);
* gemm_rs: a shard can be sent once all its tiles are done; the comm blocks send the peers'
  shards one after another in the order they complete; own rows are reduced locally;
* gemm: no communication (the split is 0 and the order only affects L2 reuse, which the model
  does not price; `natural` is kept).

Every split in 1..max_comm and every order policy of comet-reschedule (local-first, arrival,
natural) is priced and the fastest kept: the space is small enough to enumerate exactly.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from comet_ir.errors import CometError

POLICIES = ("local-first", "arrival", "natural")


@dataclass(frozen=True)
class KernelParams:
    pattern: str  # ag_gemm | gemm_rs | gemm
    m: int
    n: int
    k: int
    world: int
    tile: tuple[int, int, int] = (128, 256, 64)
    rank: int = 0

    @classmethod
    def of(cls, kernel) -> "KernelParams":
        m, n, k = kernel.shape_mnk
        bm, bn, bk = kernel.field("tile")
        cm = kernel.field("cluster")[0]
        return cls(kernel.field("pattern"), m, n, k, kernel.field("world"), (bm * cm, bn, bk))


def _arch(arch):
    from comet_ir.backends.cost.gpu_model import _arch as gpu_arch

    return gpu_arch(arch)


def predict_us(p: KernelParams, arch, comm_blocks: int, order: list[int], same_gpu: bool = False) -> float:
    """Predicted kernel time (us) for one split and one tile visiting order."""
    from comet_ir.backends.cost.gpu_model import LAUNCH_US, comm_us, gemm_us

    a = _arch(arch)
    bm, bn, _ = p.tile
    gm, gn = math.ceil(p.m / bm), math.ceil(p.n / bn)
    compute = a.sm_count - comm_blocks
    if compute <= 0:
        raise CometError(f"gpu chooser: {comm_blocks} comm blocks leave no compute block on {a.sm_count} SMs")
    t_tile = gemm_us(bm, bn, p.k, 1, a, p.tile)
    world = max(p.world, 1)
    shard_rows = max(p.m // world, 1)

    def owner(tile_id: int) -> int:
        return min((tile_id // gn) * bm // shard_rows, world - 1)

    if p.pattern == "gemm" or world == 1:
        return gemm_us(p.m, p.n, p.k, a.sm_count, a, p.tile) + LAUNCH_US
    shard_bytes = shard_rows * (p.k if p.pattern == "ag_gemm" else p.n) * 2
    t_shard = comm_us(shard_bytes, comm_blocks, a, same_gpu, 1)
    free = [0.0] * compute
    heapq.heapify(free)
    if p.pattern == "ag_gemm":
        # peer shards arrive one after another: source (rank - s) mod world at step s
        arrival = {p.rank: 0.0}
        for s in range(1, world):
            arrival[(p.rank - s) % world] = s * t_shard
        end = 0.0
        for t in order:
            start = max(heapq.heappop(free), arrival[owner(t)])
            heapq.heappush(free, start + t_tile)
            end = max(end, start + t_tile)
        return end + LAUNCH_US
    if p.pattern == "gemm_rs":
        done: dict[int, float] = {}
        end = 0.0
        for t in order:
            start = heapq.heappop(free)
            heapq.heappush(free, start + t_tile)
            o = owner(t)
            done[o] = max(done.get(o, 0.0), start + t_tile)
            end = max(end, start + t_tile)
        link = 0.0
        for o, ready in sorted(done.items(), key=lambda kv: kv[1]):
            if o == p.rank:
                continue
            link = max(link, ready) + t_shard
        reduce_us = (world + 1) * shard_rows * p.n * 2 / (a.hbm_gbps * 1e9) * 1e6
        return max(end, link) + reduce_us + LAUNCH_US
    raise CometError(f"gpu chooser: unknown kernel pattern '{p.pattern}' (ag_gemm, gemm_rs or gemm)")


def candidates(p: KernelParams, arch, max_comm: int | None = None, same_gpu: bool = False):
    """{(comm_blocks, policy): predicted us} over every split and order policy."""
    from comet_ir.passes.reschedule import order_tiles

    a = _arch(arch)
    if p.pattern == "gemm" or p.world <= 1:
        order = order_tiles(p.pattern, p.m, p.n, p.tile[0], p.tile[1], p.world, p.rank, "natural")
        return {(0, "natural"): predict_us(p, a, 0, order, same_gpu)}
    top = max_comm or max(a.sm_count // 2, 1)
    out = {}
    for pol in POLICIES:
        order = order_tiles(p.pattern, p.m, p.n, p.tile[0], p.tile[1], p.world, p.rank, pol)
        for c in range(1, top + 1):
            out[(c, pol)] = predict_us(p, a, c, order, same_gpu)
    return out


def choose(params: KernelParams, arch, max_comm: int | None = None, same_gpu: bool = False):
    """(comm_blocks, tile order policy, predicted ms) with the lowest predicted time; ties go
    to fewer comm blocks, then to the policy listed first."""
    cands = candidates(params, arch, max_comm, same_gpu)
    (c, pol), us = min(cands.items(), key=lambda kv: (kv[1], kv[0][0], POLICIES.index(kv[0][1])
                                                      if kv[0][1] in POLICIES else 0))
    return c, pol, us / 1000.0
