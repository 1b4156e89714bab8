"""cometgpu dialect: custom and generic forms round-trip, every op's verifier, comet-lower-gpu on
the shipped examples, comet-reschedule orders."""
import os
from pathlib import Path

import pytest
from xdsl.utils.exceptions import VerifyException

from comet_ir.api import parse_module as _parse, print_module, run_pipeline
from comet_ir.dialects.cometgpu import KernelOp
from comet_ir.errors import CometError
from comet_ir.passes.reschedule import order_tiles

def parse_module(text, verify=True):
    return _parse(text, verify=verify)[0]


EX = Path(__file__).resolve().parents[2] / "examples"

KERNEL = """
func.func @f(%x: tensor<256x512xbf16>, %w: tensor<512x512xbf16>) -> tensor<512x512xbf16> {
  %y = cometgpu.kernel k %x, %w pattern ag_gemm world 2 tile [128, 256, 64] grid [4, 2] sms 132 comm 4 order local_first tiles [0, 2, 1, 3, 4, 6, 5, 7] : (tensor<256x512xbf16>, tensor<512x512xbf16>) -> tensor<512x512xbf16> {
    cometgpu.signal ready count 2 scope rank
    cometgpu.signal shard_ready count 8 scope chunk
    cometgpu.signal tokens count 4 scope tile
    cometgpu.put_signal shard chunks 4 signal shard_ready after [ready]
    cometgpu.wait shard_ready role compute scope tile
    cometgpu.gather tokens tokens 64 hidden 512 topk 2
    cometgpu.scatter tokens tokens 64 hidden 512
  }
  func.return %y : tensor<512x512xbf16>
}
"""


def lowered(name: str) -> str:
    m = parse_module((EX / name).read_text())
    run_pipeline(m, "comet-lower-gpu")
    return print_module(m)


def roundtrip(text: str) -> str:
    once = print_module(parse_module(text))
    assert print_module(parse_module(once)) == once
    generic = print_module(parse_module(once), generic=True)
    assert print_module(parse_module(generic)) == once
    return once


def test_kernel_roundtrip_custom_and_generic():
    out = roundtrip(KERNEL)
    for op in ("cometgpu.kernel k", "cometgpu.signal ready", "cometgpu.put_signal shard", "cometgpu.wait",
               "cometgpu.gather tokens", "cometgpu.scatter tokens"):
        assert op in out


@pytest.mark.parametrize("name", ["tp_ag_gemm.mlir", "tp_gemm_rs.mlir"])
def test_lowered_examples_roundtrip(name):
    out = roundtrip(lowered(name))
    assert "cometgpu.kernel" in out and "comet.collective" not in out and "comet.gemm" not in out


def test_lower_ag_gemm_fields():
    m = parse_module((EX / "tp_ag_gemm.mlir").read_text())
    run_pipeline(m, "comet-lower-gpu")
    k = next(op for op in m.walk() if isinstance(op, KernelOp))
    assert k.field("pattern") == "ag_gemm" and k.field("world") == 2
    assert k.field("grid") == [64, 28] and k.field("tile") == [128, 256, 64]
    assert 0 < k.field("comm") < 32 and k.compute == 132 - k.field("comm")
    assert k.shape_mnk == (8192, 7168, 4096)
    assert k.attributes["comet.strategy"].data in ("overlap", "sequential")


def test_lower_gemm_rs_body():
    out = lowered("tp_gemm_rs.mlir")
    for s in ("pattern gemm_rs", "cometgpu.arrive tile_done", "cometgpu.put_signal partial",
              "cometgpu.reduce partial_ready", "order arrival"):
        assert s in out


def test_lower_options_comm_and_plain():
    m = parse_module((EX / "tp_ag_gemm.mlir").read_text())
    run_pipeline(m, "comet-lower-gpu{comm=20 order=natural}")
    k = next(op for op in m.walk() if isinstance(op, KernelOp))
    assert k.field("comm") == 20 and k.field("order") == "natural"
    plain = parse_module("""
func.func @g(%a: tensor<300x520xbf16>, %b: tensor<520x1000xbf16>) -> tensor<300x1000xbf16> {
  %y = comet.gemm %a, %b : (tensor<300x520xbf16>, tensor<520x1000xbf16>) -> tensor<300x1000xbf16>
  func.return %y : tensor<300x1000xbf16>
}""")
    run_pipeline(plain, "comet-lower-gpu{plain=true}")
    k = next(op for op in plain.walk() if isinstance(op, KernelOp))
    assert k.field("pattern") == "gemm" and k.field("grid") == [3, 4] and k.field("comm") == 0


def test_lower_rejects_f32():
    m = parse_module("""
func.func @f(%x: tensor<64x64xf32>, %w: tensor<64x64xf32>) -> tensor<128x64xf32> {
  %g = comet.collective allgather %x axis 0 world 2 : (tensor<64x64xf32>) -> tensor<128x64xf32>
  %y = comet.gemm %g, %w : (tensor<128x64xf32>, tensor<64x64xf32>) -> tensor<128x64xf32>
  func.return %y : tensor<128x64xf32>
}""")
    with pytest.raises(CometError, match="bf16/f16"):
        run_pipeline(m, "comet-lower-gpu")


BAD = [
    ("grid [4, 2]", "grid [4, 3]", "grid: [4, 3] should be [4, 2]"),
    ("tile [128, 256, 64]", "tile [96, 256, 64]", "BM must be a multiple of 64"),
    ("sms 132", "sms 4", "comm blocks must be in"),
    ("pattern ag_gemm world 2", "pattern ag_gemm world 1", "result: shape"),
    ("tiles [0, 2, 1, 3, 4, 6, 5, 7]", "tiles [0, 0, 1, 3, 4, 6, 5, 7]", "permutation"),
    ("signal shard_ready after", "signal nope after", "no cometgpu.signal named 'nope'"),
    ("cometgpu.signal shard_ready count 8", "cometgpu.signal shard_ready count 3", "needs world*chunks"),
    ("put_signal shard chunks 4", "put_signal shard chunks 3", "one chunk per block"),
    ("put_signal shard", "put_signal partial", "moves 'shard'"),
    ("cometgpu.wait shard_ready", "cometgpu.wait missing", "no cometgpu.signal named 'missing'"),
    ("cometgpu.signal tokens count 4", "cometgpu.signal tokens count 0", "count: must be >= 1"),
    ("hidden 512 topk 2", "hidden 0 topk 2", "hidden: must be >= 1"),
    ("cometgpu.signal ready count 2 scope rank", "cometgpu.signal ready count 2 scope rank\n    cometgpu.signal ready count 2 scope rank", "duplicate signal"),
]


@pytest.mark.parametrize("old,new,msg", BAD)
def test_verifier_errors(old, new, msg):
    text = KERNEL.replace(old, new, 1)
    assert text != KERNEL
    with pytest.raises((VerifyException, CometError)) as e:
        parse_module(text)
    assert msg in str(e.value)


def test_arrive_and_reduce_verifiers():
    out = lowered("tp_gemm_rs.mlir")
    with pytest.raises((VerifyException, CometError), match="one flag per row block"):
        parse_module(out.replace("signal tile_done count 64", "signal tile_done count 3"))
    ag = lowered("tp_ag_gemm.mlir").replace("cometgpu.wait shard_ready role compute scope tile",
                                            "cometgpu.reduce shard_ready")
    with pytest.raises((VerifyException, CometError), match="gemm_rs kernel"):
        parse_module(ag)


def test_orders_ag_local_first_then_arrival():
    # 4 ranks, 2 row blocks each; rank 2 runs its own rows, then ranks 1, 0, 3 (ring arrival)
    o = order_tiles("ag_gemm", 1024, 256, 128, 256, 4, rank=2, policy="local-first")
    assert [t for t in o] == [4, 5, 2, 3, 0, 1, 6, 7]
    assert order_tiles("ag_gemm", 1024, 256, 128, 256, 4, rank=2, policy="arrival") == o


def test_orders_rs_send_order_own_last():
    o = order_tiles("gemm_rs", 1024, 256, 128, 256, 4, rank=1, policy="arrival")
    assert o == [4, 5, 6, 7, 0, 1, 2, 3]          # dest 2, 3, 0, then own rows (1) last
    lf = order_tiles("gemm_rs", 1024, 256, 128, 256, 4, rank=1, policy="local-first")
    assert lf[:2] == [2, 3]


def test_order_straddling_row_block_goes_with_later_shard():
    # shards of 200 rows: row block 1 (rows 128..255) holds rows of ranks 0 and 1
    o = order_tiles("ag_gemm", 400, 256, 128, 256, 2, rank=0, policy="local-first")
    assert o.index(0) < o.index(1) and o[0] == 0 and sorted(o) == [0, 1, 2, 3]


def test_grouped_natural_order_is_column_major_in_groups():
    # 4 row blocks x 2 column blocks, groups of 2: group 0 left to right, group 1 (snake, the
    # default) right to left
    assert order_tiles("gemm", 512, 512, 128, 256, 1, policy="natural", group_m=2) == [0, 2, 1, 3, 5, 7, 4, 6]
    from comet_ir.passes.reschedule import grouped
    assert grouped([0, 1, 2, 3], 2, 2, snake=False) == [0, 2, 1, 3, 4, 6, 5, 7]
    assert order_tiles("gemm", 512, 512, 128, 256, 1, policy="row-major") == list(range(8))


def test_snake_grouping_reverses_every_other_group(monkeypatch):
    from comet_ir.passes.reschedule import grouped
    # 4 row blocks x 3 column blocks in groups of 2: group 0 left to right, group 1 right to left
    assert grouped([0, 1, 2, 3], 3, 2, snake=True) == [0, 3, 1, 4, 2, 5, 8, 11, 7, 10, 6, 9]
    monkeypatch.setenv("COMET_SNAKE", "1")
    assert grouped([0, 1, 2, 3], 3, 2) == grouped([0, 1, 2, 3], 3, 2, snake=True)
    monkeypatch.setenv("COMET_SNAKE", "yes")
    with pytest.raises(CometError, match="COMET_SNAKE"):
        grouped([0, 1], 3, 2)


def test_reschedule_pass_rewrites_order():
    m = parse_module(KERNEL)
    run_pipeline(m, "comet-reschedule{order=given tiles=\"7,6,5,4,3,2,1,0\"}")
    k = next(op for op in m.walk() if isinstance(op, KernelOp))
    assert k.field("order") == "given" and k.field("tiles") == [7, 6, 5, 4, 3, 2, 1, 0]
    run_pipeline(m, "comet-reschedule{order=natural}")
    assert k.field("order") == "natural"
    with pytest.raises(CometError, match="permutation"):
        run_pipeline(parse_module(KERNEL), "comet-reschedule{order=given tiles=\"1,2\"}")
    with pytest.raises(CometError, match="order must be one of"):
        run_pipeline(parse_module(KERNEL), "comet-reschedule{order=sideways}")


def test_cluster_field_verifier_and_cluster_tile_ids():
    out = lowered("tp_ag_gemm.mlir")
    assert "cluster [2, 1]" in out
    with pytest.raises((VerifyException, CometError), match="clusters of"):
        parse_module(KERNEL.replace("comm 4 order", "comm 4 cluster [4, 1] order"))
    # with [2, 1] the 8 tiles of a 4x2 grid form 4 cluster tiles: ids must permute 0..3
    with pytest.raises((VerifyException, CometError), match="permutation of the 4"):
        parse_module(KERNEL.replace("comm 4 order", "comm 4 cluster [2, 1] order"))
    m = parse_module(KERNEL.replace("comm 4 order", "comm 4 cluster [2, 1] order").replace(
        "tiles [0, 2, 1, 3, 4, 6, 5, 7]", "tiles [0, 1, 2, 3]"))
    run_pipeline(m, "comet-reschedule{order=local-first rank=1}")
    k = next(op for op in m.walk() if isinstance(op, KernelOp))
    assert k.field("tiles") == [2, 3, 0, 1]     # own pair of row blocks (rows 256..511) first


@pytest.mark.parametrize("bad", ["0", "sixteen", "-4"])
def test_bad_group_m_environment_is_a_user_error(monkeypatch, bad):
    # COMET_GROUP_M = 0 made grouped() step by 0 (a ValueError traceback)
    monkeypatch.setenv("COMET_GROUP_M", bad)
    with pytest.raises(CometError, match="COMET_GROUP_M must be an integer >= 1"):
        order_tiles("gemm", 1024, 1024, 128, 256, 1)


def test_column_chunks_make_neighbours_share_their_row_block(monkeypatch):
    from comet_ir.passes.reschedule import grouped
    # 4 row blocks x 4 column blocks, groups of 2 rows, chunks of 2 columns walked row by row
    assert grouped([0, 1, 2, 3], 4, 2, snake=False, group_n=2) == \
        [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]
    assert grouped([0, 1, 2, 3], 4, 2, snake=True, group_n=2)[8:] == [11, 10, 15, 14, 9, 8, 13, 12]
    monkeypatch.setenv("COMET_GROUP_N", "2")
    assert grouped([0, 1, 2, 3], 4, 2, snake=False) == grouped([0, 1, 2, 3], 4, 2, snake=False, group_n=2)
    monkeypatch.setenv("COMET_GROUP_N", "-1")
    with pytest.raises(CometError, match="COMET_GROUP_N"):
        grouped([0, 1], 4, 2)


def test_grouping_spec():
    from comet_ir.backends.cuda.runtime import grouping_spec
    assert grouping_spec("16") == (16, False, 0)
    assert grouping_spec("8s") == (8, True, 0)
    assert grouping_spec("8sx8") == (8, True, 8)
    for bad in ("x8", "0", "8q", ""):
        with pytest.raises(CometError, match="G\\[s\\]\\[xN\\]"):
            grouping_spec(bad)


def test_grouping_variant_reads_the_schedule_suffix():
    from comet_ir.backends.cuda.runtime import grouping_variant
    assert grouping_variant("8sx8d") == ((8, True, 8), "dynamic")
    assert grouping_variant("16") == ((16, False, 0), "static")
    for bad in ("d", "8dd", "8ds"):
        with pytest.raises(CometError, match="G\\[s\\]\\[xN\\]"):
            grouping_variant(bad)


def test_l2_grouping_sets_the_order_knobs_and_puts_back_the_users(monkeypatch):
    # measurement runs switch the grouping per call; a process-wide COMET_GROUP_M the user set
    # (gpu_session's g8- prefix) must survive, and an unset COMET_SNAKE must be unset again
    from comet_ir.backends.cuda.runtime import l2_grouping
    monkeypatch.setenv("COMET_GROUP_M", "4")
    monkeypatch.delenv("COMET_SNAKE", raising=False)
    with l2_grouping(2, False):
        assert order_tiles("gemm", 512, 512, 128, 256, 1, policy="natural") == [0, 2, 1, 3, 4, 6, 5, 7]
    assert os.environ["COMET_GROUP_M"] == "4" and "COMET_SNAKE" not in os.environ
    assert "COMET_GROUP_N" not in os.environ
    with pytest.raises(RuntimeError), l2_grouping(2, True):
        raise RuntimeError("a failing call")
    assert os.environ["COMET_GROUP_M"] == "4" and "COMET_SNAKE" not in os.environ
