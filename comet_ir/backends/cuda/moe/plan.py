"""MoE routing and index math, framework-neutral (numpy here, the same formulas in torch in
`module.py`). Everything a kernel needs besides the GEMMs is an index computation:

* route:       top-k experts and gate weights per token (Mixtral: softmax over the E logits,
               keep the k largest, renormalise them to sum 1);
* permute:     the T*k (token, slot) pairs sorted stably by expert -> `perm` (row r of the
               expert-grouped buffer holds token `perm[r] // k`), per-expert `counts`, `offsets`;
* dispatch:    with expert parallelism `ep`, experts are split in contiguous groups of
               E/ep; rank r owns experts [r*E/ep, (r+1)*E/ep).  Each rank sends to rank d the
               rows routed to d's experts, in expert order (the all-to-all send layout);
* tile plan:   layer0 (dispatch + GEMM1 + SwiGLU) splits the shared tensor along M (tokens):
               row tiles of BM rows per expert; a tile is ready when every source segment
               that overlaps it has arrived. Rescheduling = local tiles first, then remote
               ones in arrival order (source ranks in ring order self+1, self+2, ...).
               layer1 (GEMM2 + combine) splits along N (hidden): column tiles of BN columns;
               column tile j can be sent back as soon as all row tiles of column j finished,
               so compute runs N-major and the sender trails it by one column tile.

All functions validate their inputs and raise `CometError` on bad input.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from comet_ir.errors import CometError

MAX_EXPERTS = 256
MAX_TOPK = 8


def check_config(tokens: int, hidden: int, ffn: int, experts: int, topk: int,
                 ep: int = 1, tp: int = 1) -> None:
    """Raise CometError for configurations the MoE layer does not support."""
    for name, v in (("hidden", hidden), ("ffn", ffn), ("experts", experts), ("topk", topk),
                    ("ep", ep), ("tp", tp)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise CometError(f"moe: {name} must be a positive integer, got {v!r}")
    if not isinstance(tokens, (int, np.integer)) or tokens < 0:
        raise CometError(f"moe: tokens must be a non-negative integer, got {tokens!r}")
    if experts > MAX_EXPERTS:
        raise CometError(f"moe: at most {MAX_EXPERTS} experts are supported, got {experts}")
    if topk > MAX_TOPK:
        raise CometError(f"moe: top-k must be in [1, {MAX_TOPK}], got {topk}")
    if topk > experts:
        raise CometError(f"moe: top-k ({topk}) exceeds the number of experts ({experts})")
    if experts % ep:
        raise CometError(f"moe: expert parallelism ep={ep} does not divide experts={experts}")
    if ffn % tp:
        raise CometError(f"moe: tensor parallelism tp={tp} does not divide ffn={ffn}")


def route(logits: np.ndarray, topk: int) -> tuple[np.ndarray, np.ndarray]:
    """Mixtral routing: softmax over experts, top-k, renormalise. Returns (idx [T,k] int64,
    gates [T,k] float32). Ties broken towards the lower expert index (stable)."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise CometError(f"moe: router logits must be [tokens, experts], got shape {logits.shape}")
    t, e = logits.shape
    if not 1 <= topk <= e:
        raise CometError(f"moe: top-k ({topk}) must be in [1, experts={e}]")
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True) if t else z
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True) if t else 1
    idx = np.argsort(-p, axis=1, kind="stable")[:, :topk].astype(np.int64)
    g = np.take_along_axis(p, idx, axis=1)
    g = g / g.sum(axis=1, keepdims=True) if t else g
    return idx, g.astype(np.float32)


@dataclass
class Permutation:
    perm: np.ndarray      # [T*k] row r of the grouped buffer <- flat (token, slot) perm[r]
    inv: np.ndarray       # [T*k] flat (token, slot) i -> its row in the grouped buffer
    counts: np.ndarray    # [E] rows per expert
    offsets: np.ndarray   # [E+1] exclusive prefix sum of counts


def permute(idx: np.ndarray, experts: int) -> Permutation:
    """Stable sort of the flat (token, slot) pairs by expert."""
    idx = np.asarray(idx)
    if idx.ndim != 2:
        raise CometError(f"moe: expert indices must be [tokens, topk], got shape {idx.shape}")
    flat = idx.reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= experts):
        raise CometError(f"moe: expert index out of range [0, {experts})")
    perm = np.argsort(flat, kind="stable").astype(np.int64)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=np.int64)
    counts = np.bincount(flat, minlength=experts).astype(np.int64)
    offsets = np.zeros(experts + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Permutation(perm, inv, counts, offsets)


def gather_rows(x: np.ndarray, p: Permutation, topk: int) -> np.ndarray:
    return x[p.perm // topk]


def combine(y_grouped: np.ndarray, p: Permutation, gates: np.ndarray, tokens: int) -> np.ndarray:
    """out[t] = sum_s gates[t, s] * y_grouped[inv[t*k + s]]."""
    k = gates.shape[1] if gates.ndim == 2 else 1
    y = y_grouped[p.inv].reshape(tokens, k, y_grouped.shape[-1]).astype(np.float64)
    return (y * gates.reshape(tokens, k, 1)).sum(axis=1)


def swiglu(h1: np.ndarray, h3: np.ndarray) -> np.ndarray:
    return h1 / (1.0 + np.exp(-h1)) * h3


def reference_moe(x, logits, w1, w3, w2, topk: int) -> np.ndarray:
    """float64 numpy reference of the whole layer (route, permute, SwiGLU experts, combine)."""
    x = np.asarray(x, dtype=np.float64)
    t, h = x.shape
    e = w1.shape[0]
    idx, gates = route(logits, topk)
    p = permute(idx, e)
    xs = gather_rows(x, p, topk)
    ys = np.zeros((xs.shape[0], h))
    for j in range(e):
        a, b = p.offsets[j], p.offsets[j + 1]
        if a == b:
            continue
        hh = swiglu(xs[a:b] @ w1[j], xs[a:b] @ w3[j])
        ys[a:b] = hh @ w2[j]
    return combine(ys, p, gates, t)


# ---------------------------------------------------------------- expert parallelism

@dataclass
class DispatchPlan:
    """What one rank sends in the layer0 all-to-all (and receives back in layer1)."""
    rank: int
    ep: int
    experts_per_rank: int
    perm: Permutation                  # local sort of this rank's (token, slot) pairs
    send_counts: np.ndarray            # [ep] rows to each destination rank
    send_counts_by_expert: np.ndarray  # [ep, E/ep] rows to each (dest rank, local expert)


def dispatch_plan(idx: np.ndarray, experts: int, ep: int, rank: int) -> DispatchPlan:
    if experts % ep:
        raise CometError(f"moe: expert parallelism ep={ep} does not divide experts={experts}")
    if not 0 <= rank < ep:
        raise CometError(f"moe: rank {rank} out of range for ep={ep}")
    p = permute(idx, experts)
    epr = experts // ep
    by_expert = p.counts.reshape(ep, epr)
    return DispatchPlan(rank, ep, epr, p, by_expert.sum(axis=1), by_expert.copy())


@dataclass
class RecvLayout:
    """Layout of the expert input buffer on one rank after the dispatch all-to-all:
    expert-major, then source rank (so each expert's rows are contiguous for the grouped
    GEMM), then arrival order within a source."""
    rank: int
    counts: np.ndarray          # [E/ep] rows per local expert (sum over sources)
    offsets: np.ndarray         # [E/ep + 1]
    seg_start: np.ndarray       # [E/ep, ep] first row of the segment (expert j, source s)
    seg_count: np.ndarray       # [E/ep, ep]


def recv_layout(plans: list[DispatchPlan], rank: int) -> RecvLayout:
    """Given every source rank's plan (the counts are what the all-to-all of counts delivers),
    the layout of `rank`'s expert input buffer."""
    ep = len(plans)
    epr = plans[0].experts_per_rank
    seg_count = np.stack([plans[s].send_counts_by_expert[rank] for s in range(ep)], axis=1)
    counts = seg_count.sum(axis=1)
    offsets = np.zeros(epr + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    seg_start = offsets[:-1, None] + np.concatenate(
        [np.zeros((epr, 1), dtype=np.int64), np.cumsum(seg_count, axis=1)[:, :-1]], axis=1)
    return RecvLayout(rank, counts, offsets, seg_start, seg_count)


def arrival_rank(rank: int, src: int, ep: int) -> int:
    """Order in which data from `src` arrives at `rank`: self first, then the ring."""
    return (src - rank) % ep


@dataclass(frozen=True)
class Tile:
    expert: int
    row0: int          # first row in the buffer
    rows: int          # <= BM (a partial tile at the end of an expert's rows)
    ready_after: int   # arrival step (0 = local) after which every row of the tile is present

    @property
    def local(self) -> bool:
        return self.ready_after == 0


def layer0_tiles(layout: RecvLayout, bm: int) -> list[Tile]:
    """Row tiles (shared tensor split along M) of each local expert, with readiness."""
    if bm < 1:
        raise CometError("moe: tile rows must be >= 1")
    ep = layout.seg_count.shape[1]
    tiles = []
    for j in range(len(layout.counts)):
        # arrival step of each row of expert j
        steps = np.concatenate([np.full(int(layout.seg_count[j, s]), arrival_rank(layout.rank, s, ep))
                                for s in range(ep)]) if layout.counts[j] else np.zeros(0, np.int64)
        # rows are stored in source order, so a tile's readiness is the latest arrival
        # step among its rows
        for r in range(0, int(layout.counts[j]), bm):
            n = min(bm, int(layout.counts[j]) - r)
            tiles.append(Tile(j, int(layout.offsets[j]) + r, n, int(steps[r:r + n].max())))
    return tiles


def reschedule(tiles: list[Tile]) -> list[Tile]:
    """Comet's rescheduling for layer0: tiles whose rows are all local first, then the others
    in arrival order (stable: expert order within one arrival step)."""
    return sorted(tiles, key=lambda t: t.ready_after)


def layer1_column_order(rows: int, hidden: int, bm: int, bn: int) -> list[tuple[int, int]]:
    """Layer1 splits the shared tensor along N: (row tile, column tile) pairs in N-major order,
    so column tile j is complete (and can be sent back) before column j+1 starts."""
    if hidden % bn:
        raise CometError(f"moe: hidden={hidden} is not a multiple of the column tile {bn}")
    mt = -(-rows // bm)
    return [(m, n) for n in range(hidden // bn) for m in range(mt)]


def ep_reference(xs: list[np.ndarray], logits: list[np.ndarray], w1, w3, w2, topk: int,
                 ep: int) -> list[np.ndarray]:
    """Simulate the EP layer over `ep` ranks with the plans above (numpy, float64): each rank
    dispatches its rows to the experts' owners, the owners run their experts on the received
    buffer (layout = recv_layout), results return to the source and are combined. Used to
    test that the index math is a permutation-consistent decomposition of reference_moe."""
    e = w1.shape[0]
    epr = e // ep
    routes = [route(lg, topk) for lg in logits]
    plans = [dispatch_plan(idx, e, ep, r) for r, (idx, _) in enumerate(routes)]
    # send buffers: each rank's rows grouped by expert = grouped by destination, expert order
    send = [gather_rows(np.asarray(x, np.float64), pl.perm, topk) for x, pl in zip(xs, plans)]
    outs_grouped = [np.zeros_like(s) for s in send]
    for d in range(ep):
        lay = recv_layout(plans, d)
        rows = int(lay.offsets[-1])
        buf = np.zeros((rows, xs[0].shape[1]))
        for s in range(ep):
            src_off = plans[s].perm.offsets[d * epr:(d + 1) * epr]
            for j in range(epr):
                n = int(lay.seg_count[j, s])
                buf[lay.seg_start[j, s]:lay.seg_start[j, s] + n] = send[s][src_off[j]:src_off[j] + n]
        out = np.zeros_like(buf)
        for j in range(epr):
            a, b = int(lay.offsets[j]), int(lay.offsets[j + 1])
            if a < b:
                g = d * epr + j
                out[a:b] = swiglu(buf[a:b] @ w1[g], buf[a:b] @ w3[g]) @ w2[g]
        for s in range(ep):
            src_off = plans[s].perm.offsets[d * epr:(d + 1) * epr]
            for j in range(epr):
                n = int(lay.seg_count[j, s])
                outs_grouped[s][src_off[j]:src_off[j] + n] = out[lay.seg_start[j, s]:lay.seg_start[j, s] + n]
    return [combine(og, pl.perm, g, x.shape[0]) for og, pl, (_, g), x in zip(outs_grouped, plans, routes, xs)]


# ---------------------------------------------------------------- grouped-GEMM tile schedule
# The order in which the persistent grouped GEMM hands out its work items (clusters of CTA
# tiles). The CUDA scheduler (csrc MoeGroupScheduler + moe_group_args_kernel) computes exactly
# this map, item by item; this is the reference the unit tests check it against.
#
# * heavy groups (more than `light` M-clusters) run group after group; inside a group the
#   N-clusters are cut into strips of `strip` columns and the M-clusters of a strip run one
#   after another (M fastest), so a strip of weight tiles stays in L2 while every row block of
#   the group passes it (strip >= N-clusters = CUTLASS's AlongM order);
# * light groups (1..`light` M-clusters: few rows, so each weight tile is used by few rows and
#   the tile is bound by HBM) are cut into units = all M-clusters of one N-cluster (the rows
#   that share a weight tile stay together) and the units are spread evenly over the heavy
#   sequence: unit j goes before heavy item floor((2j+1) H / (2U)), so weight streaming of the
#   light groups overlaps the math of the heavy ones instead of forming a memory-bound tail.


@dataclass
class TileSchedule:
    ntc: int                       # N-clusters per group
    strip: int                     # N-clusters per strip of a heavy group
    heavy: list                    # [(group, mtc)] in group order
    hoff: list                     # prefix of heavy items, len(heavy) + 1
    light: list                    # [(group, mtc)]
    loff: list                     # prefix of light items, len(light) + 1

    @property
    def heavy_items(self) -> int:
        return self.hoff[-1]

    @property
    def units(self) -> int:
        return len(self.light) * self.ntc

    @property
    def items(self) -> int:
        return self.hoff[-1] + self.loff[-1]

    def _light_before(self, c: int) -> int:
        """Light items in units 0..c-1."""
        i, r = divmod(c, self.ntc) if self.ntc else (0, 0)
        return self.loff[i] + (r * self.light[i][1] if r else 0)

    def _unit_start(self, j: int) -> int:
        h, u = self.heavy_items, self.units
        return (2 * j + 1) * h // (2 * u) + self._light_before(j)

    def item(self, p: int):
        """Work item p -> (group, m_cluster, n_cluster), or None past the end."""
        if p < 0 or p >= self.items:
            return None
        lo, hi = 0, self.units                  # c = number of units starting at or before p
        while lo < hi:
            mid = (lo + hi) // 2
            if self._unit_start(mid) <= p:
                lo = mid + 1
            else:
                hi = mid
        c = lo
        if c:
            j = c - 1
            s = self._unit_start(j)
            g, mtc = self.light[j // self.ntc]
            if p < s + mtc:
                return g, p - s, j % self.ntc
        hi_ = p - self._light_before(c)
        lo_, up = 0, len(self.heavy) - 1        # last heavy group whose offset <= hi_
        while lo_ < up:
            mid = (lo_ + up + 1) // 2
            if self.hoff[mid] <= hi_:
                lo_ = mid
            else:
                up = mid - 1
        g, mtc = self.heavy[lo_]
        local = hi_ - self.hoff[lo_]
        w = min(self.strip, self.ntc)
        s, r = divmod(local, mtc * w)
        return g, r % mtc, s * w + r // mtc


def tile_schedule(rows_per_group, n: int, tile=(128, 256), cluster=(1, 2), strip: int = 0,
                  light: int = 0) -> TileSchedule:
    """Schedule of the grouped GEMM over groups with these row counts and N columns (same for
    every group). strip = 0: whole rows of N-clusters (AlongM); light = 0: no light groups."""
    if n < 1 or min(tile) < 1 or min(cluster) < 1 or strip < 0 or light < 0:
        raise CometError("moe: tile schedule needs positive n, tile and cluster sizes")
    ntc = -(-(-(-n // tile[1])) // cluster[1])
    heavy, light_l = [], []
    for g, m in enumerate(rows_per_group):
        if m < 0:
            raise CometError(f"moe: group {g} has a negative row count {m}")
        mtc = -(-(-(-int(m) // tile[0])) // cluster[0])
        if mtc == 0:
            continue
        (light_l if mtc <= light else heavy).append((g, mtc))
    hoff, loff = [0], [0]
    for _, mtc in heavy:
        hoff.append(hoff[-1] + mtc * ntc)
    for _, mtc in light_l:
        loff.append(loff[-1] + mtc * ntc)
    return TileSchedule(ntc, strip if strip else ntc, heavy, hoff, light_l, loff)


def split_k_pays(items: int, clusters: int) -> bool:
    """GEMM2 split-K in two (csrc moe_group_args_kernel decides the same on the device): the
    waves of half-K items beat the waves of whole items by at least half an item's time."""
    if items <= 0 or clusters <= 0:
        return False
    return -(-2 * items // clusters) < 2 * -(-items // clusters)


def gang_slots(rows_per_group, n: int, clusters: int, tile=(128, 256), cluster=(1, 2), light: int = 2):
    """Slots of the gang order (csrc moe_group_args_kernel / sched_gang_slot, the *_gang variants):
    cluster c of the persistent grid runs slots c, c + clusters, ...; a slot is (group, m-cluster,
    n-cluster) or None (a hole). Gangs = all M-clusters of one (group, N-cluster), groups in order,
    N-clusters ascending; a gang that fits a wave never straddles two (holes pad to the next wave).
    None when the gang order is off for these groups (a light group, or no heavy one)."""
    if n < 1 or clusters < 1 or min(tile) < 1 or min(cluster) < 1:
        raise CometError("moe: gang order needs positive n, clusters, tile and cluster sizes")
    ntc = -(-(-(-n // tile[1])) // cluster[1])
    heavy = []
    for g, m in enumerate(rows_per_group):
        mtc = -(-(-(-int(m) // tile[0])) // cluster[0])
        if mtc == 0:
            continue
        if mtc <= light:
            return None
        heavy.append((g, mtc))
    if not heavy:
        return None
    slots: list = []
    for g, mtc in heavy:
        for nc in range(ntc):
            if mtc <= clusters and len(slots) % clusters + mtc > clusters:
                slots.extend([None] * (clusters - len(slots) % clusters))
            slots.extend((g, mc, nc) for mc in range(mtc))
    return slots
