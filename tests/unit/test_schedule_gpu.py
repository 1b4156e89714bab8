"""GPU chooser: the comm/compute split and tile order against brute force over the split."""
import pytest

from comet_ir.api import parse, run_pipeline
from comet_ir.passes.reschedule import order_tiles
from comet_ir.schedule.gpu_chooser import POLICIES, KernelParams, choose, predict_us
from comet_ir.spec.presets import load_arch

SHAPES = [("ag_gemm", 4096, 4096, 2048, 2), ("gemm_rs", 4096, 3072, 4096, 2), ("ag_gemm", 2048, 8192, 1024, 4),
          ("gemm_rs", 8192, 1024, 2048, 4)]


@pytest.mark.parametrize("arch", ["h100", "h200"])
@pytest.mark.parametrize("pattern, m, n, k, world", SHAPES)
def test_gpu_chooser_oracle_over_split(arch, pattern, m, n, k, world):
    a = load_arch(arch)
    p = KernelParams(pattern, m, n, k, world)
    best = None
    for pol in POLICIES:
        order = order_tiles(pattern, m, n, p.tile[0], p.tile[1], world, 0, pol)
        for c in range(1, a.sm_count):  # every split, not only the chooser's default range
            t = predict_us(p, a, c, order)
            best = t if best is None else min(best, t)
    c, pol, ms = choose(p, a, max_comm=a.sm_count - 1)
    assert ms * 1000 == pytest.approx(best)
    assert 1 <= c < a.sm_count and pol in POLICIES


def test_local_rows_first_never_wait_longer_on_a_later_rank():
    # rank 1 owns the second shard: `natural` starts with rank 0's rows, which arrive only after
    # one shard transfer, while local-first starts at once on its own rows
    a = load_arch("h100")
    p = KernelParams("ag_gemm", 8192, 4096, 4096, 2, rank=1)
    for c in (4, 16, 32):
        nat = predict_us(p, a, c, order_tiles("ag_gemm", p.m, p.n, p.tile[0], p.tile[1], 2, 1, "natural"))
        loc = predict_us(p, a, c, order_tiles("ag_gemm", p.m, p.n, p.tile[0], p.tile[1], 2, 1, "local-first"))
        assert loc <= nat


def test_more_comm_blocks_than_sms_is_an_error():
    from comet_ir.errors import CometError

    a = load_arch("h100")
    with pytest.raises(CometError, match="leave no compute block"):
        predict_us(KernelParams("ag_gemm", 1024, 1024, 1024, 2), a, a.sm_count, [0])


def test_choose_split_pass_sets_the_chosen_split_and_order(capsys):
    import os

    ex = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "tp_ag_gemm.mlir")
    m = run_pipeline(parse(ex), "comet-lower-gpu,comet-choose-split")
    (k,) = [o for o in m.walk() if o.name == "cometgpu.kernel"]
    c, pol, _ = choose(KernelParams.of(k), "h100")
    assert k.field("comm") == c
    assert k.field("order").replace("_", "-") == pol
    puts = [o for o in k.walk() if o.name == "cometgpu.put_signal"]
    assert puts and all(p.field("chunks") == c for p in puts)
    assert "comet-choose-split: ag_gemm on h100" in capsys.readouterr().err
