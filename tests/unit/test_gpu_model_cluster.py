"""GPU cost model: clusters along N (the 256x128 kernel's 1x2 cluster)."""
import pytest

from comet_ir.backends.cost import gpu_model as G


def test_cluster_along_n_counts_cluster_tiles_and_cluster_blocks():
    a = G._arch("h100")
    t = (256, 128, 64)
    # 1x2 cluster of 256x128 tiles: the cluster tile is 256 x 256. 1536 x 2816 = 6 x 11 cluster
    # tiles on 132 / 2 = 66 clusters: one round of 64 k-steps (K = 4096), like 6 x 11 x 2 CTAs
    one = 64 * G.step_us(t, a)
    assert G.gemm_us(1536, 2816, 4096, 132, a, t, False, (1, 2)) == pytest.approx(one / G.BURST_SPEEDUP)
    # one more column of cluster tiles (N = 3072: 6 x 12 = 72 > 66) takes a second round
    assert G.gemm_us(1536, 3072, 4096, 132, a, t, False, (1, 2)) == pytest.approx(
        G.BURST_US / G.BURST_SPEEDUP + 2 * one - G.BURST_US)
    # the same shapes without a cluster: 6 x 22 = 132 CTAs on 132 SMs, still one round
    assert G.gemm_us(1536, 3072 - 256, 4096, 132, a, t, False, (1, 1)) == pytest.approx(one / G.BURST_SPEEDUP)
    # a single column block (N <= 128): the pair's second CTA computes on zero-fill
    assert G.gemm_us(256, 128, 4096, 132, a, t, False, (1, 2)) == pytest.approx(
        64 * G.step_us(t, a) * G.ZERO_FILL_PENALTY / G.BURST_SPEEDUP)
    # the library's cluster of that tile, and the split plan counts clusters of two blocks
    assert (G.tile_cluster(t), G.tile_cluster_n(t)) == (1, 2)
    sp = G.split_plan(1536, 3072, 4096, 132, a, t)
    assert sp.sk_tiles in (0, 72 - 66) and sp.sk_units <= 66
