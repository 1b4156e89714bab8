"""Stream-K split of the generated GEMM's tile grid (the runtime picks it, the kernel runs it).

A persistent kernel with `clusters` compute clusters visits `tiles` cluster tiles of `k_tiles`
k-steps each. Whole tiles only (data-parallel) take ceil(tiles / clusters) rounds: the last
round leaves clusters idle (8192x7168x4096 on 66 clusters: 13.6 rounds -> 14), and a grid
smaller than the machine (512 rows) leaves most of it idle. Stream-K keeps the whole rounds and
cuts the remaining `sk_tiles` tiles' k-steps, flattened tile-major, into `sk_units` equal runs,
one per cluster. A run's first fragment may start mid-tile: it stores fp32 partial sums and
counts into the tile's flag. The fragment holding a tile's k = 0 (always its run's last, or a
whole tile) waits for those counts, adds the partials and stores the tile. Only first fragments
are waited for and they never wait themselves, so no cycle of waits exists (all CTAs resident).

`fragments()` is the kernel's partition written in Python (`for_each_work` and `sk_unit_of` in
templates/tp_gemm.cu.in use the same integer formulas); the tests check its invariants.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# A split pays for publishing a fp32 partial tile (128 KiB per CTA for 128x256, through L2, while
# every CTA does the same), and the reducing run for reading the partials of its tile back before
# its epilogue. Measured on the H100 (per-CTA traces, benchmarks/RESULTS.md 2026-11-24): ~4 us to
# publish, ~7.5 us to add two partials and store, 16 us in all beyond the k-steps with two
# partials per tile: FIXUP_US + FIXUP_US_PER_PARTIAL * partials.
FIXUP_US = 11.0
FIXUP_US_PER_PARTIAL = 2.5
STEP_US = 0.8            # a 128x256x64 k-step on the H100 (the runtime passes its tile's)
MIN_K_STEPS = 8          # shortest run worth a fix-up
GAIN = 0.98              # split only when predicted >= 2 % faster than whole tiles


@dataclass(frozen=True)
class Split:
    sk_tiles: int = 0        # the last `sk_tiles` entries of the tile order are split
    sk_units: int = 0        # ... into this many runs of k-steps

    @property
    def on(self) -> bool:
        return self.sk_tiles > 0


def steps(tiles: int, k_tiles: int, clusters: int, split: Split = Split(), step_us: float = STEP_US) -> float:
    """Predicted time in k-steps (of `step_us` each): the busiest cluster's share plus the fix-up."""
    if not split.on:
        return math.ceil(tiles / clusters) * k_tiles
    dp = tiles - split.sk_tiles
    run = math.ceil(split.sk_tiles * k_tiles / split.sk_units)
    partials = math.ceil(split.sk_units / split.sk_tiles)      # runs per split tile, at most
    fixup_us = FIXUP_US + FIXUP_US_PER_PARTIAL * partials
    return math.ceil(dp / clusters) * k_tiles + run + fixup_us / step_us


def plan(tiles: int, k_tiles: int, clusters: int, step_us: float = STEP_US) -> Split:
    """Whole rounds stay data-parallel; the partial last round (or a grid smaller than the
    machine) is split over all clusters when that is predicted faster."""
    if tiles <= 0 or clusters <= 0 or k_tiles <= 1:
        return Split()
    rem = tiles % clusters
    if rem == 0:
        return Split()
    units = min(clusters, rem * k_tiles // MIN_K_STEPS)
    if units <= rem:           # each run would hold a whole tile or more: nothing to balance
        return Split()
    s = Split(rem, units)
    faster = steps(tiles, k_tiles, clusters, s, step_us) <= GAIN * steps(tiles, k_tiles, clusters)
    return s if faster else Split()


def unit_of(x: int, total: int, units: int) -> int:
    """The run holding flat k-step x (run u starts at floor(u * total / units))."""
    return ((x + 1) * units + total - 1) // total - 1


def fragments(tiles: int, k_tiles: int, clusters: int, split: Split) -> list[list[tuple[int, int, int, int]]]:
    """Per cluster, its work in order: (tile position in the order, first k-step, k-steps,
    stream-K tile index or -1) -- what the kernel's for_each_work visits."""
    dp = tiles - split.sk_tiles
    out: list[list[tuple[int, int, int, int]]] = [[] for _ in range(clusters)]
    for c in range(clusters):
        out[c] += [(t, 0, k_tiles, -1) for t in range(c, dp, clusters)]
        if c >= split.sk_units:
            continue
        total = split.sk_tiles * k_tiles
        x, end = total * c // split.sk_units, total * (c + 1) // split.sk_units
        while x < end:
            s, kb = divmod(x, k_tiles)
            kc = min(k_tiles - kb, end - x)
            out[c].append((dp + s, kb, kc, s))
            x += kc
    return out
