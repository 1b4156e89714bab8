"""GPU cost model: formulas, per-shape choice, report on lowered IR."""
from pathlib import Path

import pytest

from comet_ir.api import parse_module, run_pipeline
from comet_ir.backends.cost import gpu_model as G
from comet_ir.errors import CometError

EX = Path(__file__).resolve().parents[2] / "examples"


def test_gemm_waves_and_memory_floor():
    a = G._arch("h100")
    tile = G.DEFAULT_TILE
    t1 = 64 * G.step_us(tile, a)       # one round of 128x256 tiles, K = 4096: 64 k-steps (sustained)
    # 128 x 256 x 64 x 2 flop per k-step at the measured 697 TFLOP/s over 132 SMs
    assert G.step_us(tile, a) == pytest.approx(2 * 128 * 256 * 64 / (697e12 / 132) * 1e6, rel=1e-3)
    # 1536 x 2816 = 12 x 11 tiles: one round on 132 SMs; 12 x 12 tiles: two (operands ~44 MB:
    # not HBM-bound)
    one_wave = G.gemm_us(1536, 2816, 4096, 132, a, split=False)
    two_waves = G.gemm_us(1536, 3072, 4096, 132, a, split=False)
    # short work runs at boost clocks; beyond BURST_US of work, at the sustained rate
    assert t1 < G.BURST_US < 2 * t1
    assert one_wave == pytest.approx(t1 / G.BURST_SPEEDUP)
    assert two_waves == pytest.approx(G.BURST_US / G.BURST_SPEEDUP + 2 * t1 - G.BURST_US)
    # stream-K: the 12 extra tiles' 12 x 64 k-steps go to 96 runs of 8 (MIN_K_STEPS), 8 runs per
    # tile: 64 + 8 k-steps + the fix-up of 8 partials instead of 128 k-steps
    from comet_ir.backends.cuda import stream_k
    fix_us = stream_k.FIXUP_US + stream_k.FIXUP_US_PER_PARTIAL * 8
    sust = (64 + 8) * G.step_us(tile, a) + fix_us
    split = G.gemm_us(1536, 3072, 4096, 132, a)
    assert sust < G.BURST_US and split == pytest.approx(sust / G.BURST_SPEEDUP)
    # 8192x7168x4096 on 132 SMs at the measured 697 TFLOP/s: 14 waves of 128x256 tiles
    assert 650 < G.gemm_us(8192, 7168, 4096, 132, a) < 800
    # tiny-K GEMM is bound by HBM (at the share of it this kernel streams), not the tensor cores
    assert G.gemm_us(8192, 8192, 16, 132, a) == pytest.approx(
        (8192 * 16 * 2 + 8192 * 8192) * 2 / (3350e3 * G.MEM_EFFICIENCY), rel=1e-6)


def test_overlap_hides_comm_on_big_shapes_and_sequential_wins_where_comm_is_large():
    e = G.estimate("ag_gemm", 8192, 7168, 4096, 2, "h200")
    assert e.choice == "overlap" and e.overlap_us < e.sequential_us
    assert e.comm_blocks in G.COMM_CANDIDATES
    assert e.overlap_us == pytest.approx(min(e.candidates.values()))
    # 512 x 8448 output = 2 x 33 tiles of 256 x 256 (cluster 2x1 of 128 x 256): exactly one wave on
    # 66 clusters (132 SMs). Any comm block leaves 65 clusters: with whole tiles only that is two
    # waves, the overlap kernel doubling the GEMM while the comm it could hide (256 rows x 8192 x
    # 2 B = 4 MiB) is tiny; stream-K spreads the 66th tile over the 65 clusters, which keeps the
    # overlap kernel well under twice the GEMM, still slower than sequential.
    wave = G.estimate("ag_gemm", 512, 8448, 8192, 2, "h100", tile=G.DEFAULT_TILE)
    assert wave.choice == "sequential" and wave.latency_us == wave.sequential_us
    whole = G.estimate("ag_gemm", 512, 8448, 8192, 2, "h100", split=False, tile=G.DEFAULT_TILE)
    assert whole.choice == "sequential" and whole.overlap_us > 1.5 * whole.sequential_us
    assert wave.sequential_us < wave.overlap_us < 1.5 * wave.sequential_us


def test_rs_adds_reduction_and_h200_is_not_slower():
    rs = G.estimate("gemm_rs", 8192, 7168, 4096, 2, "h100")
    assert rs.reduce_us > 0
    assert G.estimate("gemm_rs", 8192, 7168, 4096, 2, "h200").latency_us <= rs.latency_us


def test_world1_is_plain_gemm():
    e = G.estimate("ag_gemm", 4096, 4096, 4096, 1, "h100")
    assert e.comm_blocks == 0 and e.comm_us == 0 and e.choice == "overlap"


def test_estimate_gpu_on_lowered_module_renders():
    m, _ = parse_module((EX / "tp_ag_gemm.mlir").read_text())
    run_pipeline(m, "comet-lower-gpu")
    rep = G.estimate_gpu(m)
    assert rep.latency_us > 0
    text = rep.render()
    assert "cometgpu ag_gemm" in text and "overlap kernel" in text and "sequential fallback" in text


def test_estimate_gpu_needs_kernels_and_gpu_arch():
    m, _ = parse_module((EX / "tp_ag_gemm.mlir").read_text())
    with pytest.raises(CometError, match="comet-lower-gpu"):
        G.estimate_gpu(m)
    with pytest.raises(CometError, match="not a GPU architecture"):
        G.estimate("ag_gemm", 128, 128, 128, 2, "edge")


def test_loopback_model_matches_measured_shape_of_curve():
    # measured on the H100 (benchmarks/RESULTS.md, 2026-11-24): 8192x7168x4096, 2 simulated
    # ranks, GEMM never waiting; the model stays within 10 % and grows with the comm blocks
    # (that kernel ran whole tiles only: no stream-K split)
    a = G._arch("h100")
    nbytes = 4096 * 4096 * 2
    measured = {4: 0.727, 8: 0.771, 12: 0.764, 16: 0.887, 24: 0.910, 32: 0.953}
    preds = {c: G.overlap_no_wait_us(8192, 7168, 4096, nbytes, c, a, same_gpu=True, split=False) / 1e3
             for c in measured}
    for c, t in measured.items():
        assert abs(preds[c] - t) / t < 0.10, (c, preds[c], t)
    assert preds[32] > preds[8] > preds[4] * 0.99


def test_rs_reduction_priced_at_the_measured_rate():
    # own rows + (world-1) received rows read, the output written: (world + 1) x shard x N x 2 bytes
    # at the preset's measured 2270 GB/s (rs_reduce_loopback on the H100, RESULTS 2026-12-07 call 3)
    rs = G.estimate("gemm_rs", 8192, 7168, 4096, 2, "h100")
    assert rs.reduce_us == pytest.approx(3 * 4096 * 7168 * 2 / 2270e9 * 1e6 + G.LAUNCH_US)
    # the H200 preset has no measurement: its datasheet HBM (4800 GB/s) at the H100's fraction
    assert G.rs_reduce_gbps("h200") == pytest.approx(4800 * 2270 / 3350)
