"""Cost model of the one-kernel layer1 (moe_model.predict_layer1 / choose_layer1_comm_blocks):
byte counts over bandwidths worked out by hand, and the choices that follow from them."""
import math
from dataclasses import replace

import pytest

from comet_ir.backends.cost import moe_model as M
from comet_ir.errors import CometError

# 4 experts, top-2, 1024 tokens per rank, ep 2: 4096 routed rows in all, 1024 per expert
# (uniform), so one rank's 2 experts see 2048 rows: 1024 of its own tokens, 1024 of the peer's.
CFG = M.MoEConfig(tokens=1024, hidden=1024, ffn=1024, experts=4, topk=2, ep=2)
ROW = 1024 * 2                       # bytes per row (bf16)
HBM = 3350e9 * 0.8                   # H100 HBM at the calibrated memory efficiency


def test_fused_comm_time_by_hand():
    # 4 comm CTAs: own rows copied at 4 x 25 GB/s (read + write), peer rows put at 4 x 11 GB/s
    p = M.predict_layer1(CFG, "h100", comm_blocks=4)
    assert p["comm_ms"] == pytest.approx((2 * 1024 * ROW / 100e9 + 1024 * ROW / 44e9) * 1e3)
    # 32 CTAs: the put rate 352 GB/s is under the 450 GB/s link, the copy rate 800 GB/s under HBM
    p = M.predict_layer1(CFG, "h100", comm_blocks=32)
    assert p["comm_ms"] == pytest.approx((2 * 1024 * ROW / 800e9 + 1024 * ROW / 352e9) * 1e3)


def test_unfused_return_by_hand():
    # the return kernel: own rows as an HBM copy, peer rows over the 450 GB/s link, two launches
    p = M.predict_layer1(CFG, "h100", comm_blocks=0)
    assert p["comm_ms"] == pytest.approx((2 * 1024 * ROW / HBM + 1024 * ROW / 450e9) * 1e3 + 2 * 4e-3)
    # combine: read T*k rows, write T rows
    assert p["combine_ms"] == pytest.approx((2048 + 1024) * ROW / HBM * 1e3 + 4e-3)


def test_ep1_never_fuses():
    # at ep == 1 nothing leaves the GPU: the unfused combine reads GEMM2's output directly, the
    # fused kernel only takes SMs from the GEMM and adds the copy's tail
    for t in (256, 2048, 8192):
        cfg = M.MoEConfig(t, 4096, 14336, 8, 2)
        best, preds = M.choose_layer1_comm_blocks(cfg, "h100")
        assert best == 0
        assert all(preds[k] > preds[0] for k in preds if k)


def test_slow_link_fuses():
    # a 10 GB/s link: the unfused return waits 1024 rows / 10 GB/s = 0.21 ms after GEMM2; fused,
    # the same transfer runs under a GEMM2 that takes longer than that (ffn 32768), so only the
    # last column tile's share shows
    slow = replace(M.H100, link_gbps=10.0)
    cfg = replace(CFG, ffn=32768)
    best, preds = M.choose_layer1_comm_blocks(cfg, slow)
    assert best > 0 and preds[best] < preds[0]
    p = M.predict_layer1(cfg, slow, best)
    assert p["comm_ms"] < p["gemm2_ms"]
    items = 2 * math.ceil(1024 / 256)           # 2 local experts x 4 column tiles
    assert p["exposed_ms"] == pytest.approx(p["comm_ms"] / items)


def test_unknown_arch():
    with pytest.raises(CometError):
        M.predict_layer1(CFG, "a100", 4)
