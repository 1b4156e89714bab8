"""DRAM bytes a GEMM tile order reads, by an LRU model of L2 (TP backend, world 1). Used to pick
tile orders before spending device time on them: on the power-capped H100 DRAM bytes are energy.

Model: the clusters run the order in lock-step waves (one tile each, as the dynamic schedule
hands them out); inside a wave every tile reads its A and B k-slices (cluster tile rows x BK and
cluster tile columns x BK, bf16) step by step, all tiles of the wave at each step; L2 is one LRU
of `cap_mb`. With cap 25 MB (one of the H100's two L2 partitions) it reproduced all four orders
Nsight Compute measured at 8192x7168x4096 within 1 % (row-major 916 vs 918 MB, groups of 16 642 vs
641, 8s 524 vs 521, 8sx8 629 vs 629; benchmarks/RESULTS.md, session 9).

  python tools/l2_order_sim.py 8s 8sx2 16 row [--shape 8192x7168x4096] [--cap-mb 25]

Specs as the benchmarks name them (runtime.grouping_variant, "G[s][xN][d]"; the schedule suffix
changes nothing here), or "row" for row-major."""
from __future__ import annotations

import argparse
import os
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/..")


def tile_order(spec: str, rows: int, cols: int) -> list[int]:
    from comet_ir.backends.cuda.runtime import grouping_variant
    from comet_ir.passes.reschedule import grouped

    if spec == "row":
        return list(range(rows * cols))
    (g, snake, gn), _ = grouping_variant(spec)     # the model's waves stand for either schedule
    return grouped(list(range(rows)), cols, g, snake, gn)


def dram_bytes(order: list[int], cols: int, k: int, tile_m: int = 256, tile_n: int = 256, tile_k: int = 64,
               clusters: int = 66, cap_mb: float = 25.0) -> int:
    """Bytes missed in L2 (k-slices of A row blocks and B column blocks, bf16)."""
    a_bytes, b_bytes = tile_m * tile_k * 2, tile_n * tile_k * 2
    cap = cap_mb * 2 ** 20
    lru: OrderedDict = OrderedDict()
    held = missed = 0
    for w in range(0, len(order), clusters):
        wave = [divmod(t, cols) for t in order[w:w + clusters]]
        for kk in range(-(-k // tile_k)):
            for mb, nb in wave:
                for key, size in ((("A", mb, kk), a_bytes), (("B", nb, kk), b_bytes)):
                    if key in lru:
                        lru.move_to_end(key)
                        continue
                    missed += size
                    lru[key] = size
                    held += size
                    while held > cap:
                        held -= lru.popitem(last=False)[1]
    return missed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--shape", default="8192x7168x4096", help="MxNxK")
    ap.add_argument("--tile", default="256x256x64", help="cluster tile MxNxK")
    ap.add_argument("--clusters", type=int, default=66)
    ap.add_argument("--cap-mb", type=float, default=25.0)
    a = ap.parse_args(argv)
    from comet_ir.errors import CometError

    try:
        m, n, k = (int(v) for v in a.shape.split("x"))
        tm, tn, tk = (int(v) for v in a.tile.split("x"))
    except ValueError:
        ap.error(f"--shape and --tile take MxNxK with positive integers (got {a.shape!r}, {a.tile!r})")
    if min(m, n, k, tm, tn, tk, a.clusters) < 1 or a.cap_mb < 0:
        ap.error("sizes and --clusters must be positive, --cap-mb not negative")
    rows, cols = -(-m // tm), -(-n // tn)
    for spec in a.specs:
        try:
            order = tile_order(spec, rows, cols)
        except CometError as e:
            ap.error(str(e))
        b = dram_bytes(order, cols, k, tm, tn, tk, a.clusters, a.cap_mb)
        print(f"{spec:>8}: {b / 1e6:8.0f} MB   (compulsory {2 * (m * k + k * n) / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
