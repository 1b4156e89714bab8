"""tools/l2_order_sim.py against hand-derived counts."""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("l2_order_sim", Path(__file__).resolve().parents[2] / "tools" / "l2_order_sim.py")
sim = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sim)

BLK = 256 * 64 * 2      # one k-slice of a 256-row block, bf16


def test_unbounded_cache_reads_each_block_once():
    order = sim.tile_order("8s", 32, 28)
    assert sorted(order) == list(range(32 * 28))
    got = sim.dram_bytes(order, 28, 4096, cap_mb=1e6)
    assert got == (32 + 28) * 64 * BLK


def test_no_cache_reads_every_slice_of_every_tile():
    got = sim.dram_bytes(sim.tile_order("row", 4, 5), 5, 512, cap_mb=0)
    assert got == 4 * 5 * 8 * 2 * BLK


def test_two_block_lru_by_hand():
    # 2x2 tiles, one cluster, one k-step, room for two slices: row-major order
    # (0,0): A0 B0 miss | (0,1): A0 hit, B1 miss (evicts B0) | (1,0): A1 miss, B0 miss |
    # (1,1): A1 hit, B1 miss -> 6 misses
    got = sim.dram_bytes([0, 1, 2, 3], 2, 64, clusters=1, cap_mb=2 * BLK / 2 ** 20)
    assert got == 6 * BLK


def test_grouping_beats_row_major_on_a_wide_grid():
    rows, cols = 32, 28
    row = sim.dram_bytes(sim.tile_order("row", rows, cols), cols, 4096)
    grp = sim.dram_bytes(sim.tile_order("8s", rows, cols), cols, 4096)
    assert grp < row


def test_cli_prints_each_spec(capsys):
    assert sim.main(["row", "8sx2", "--shape", "1024x1024x256"]) == 0
    out = capsys.readouterr().out
    assert "row:" in out and "8sx2:" in out


def test_bad_spec_and_shape_are_one_message(capsys):
    import pytest
    for argv in (["8q"], ["8s", "--shape", "8192x7168"], ["8s", "--clusters", "0"]):
        with pytest.raises(SystemExit) as e:
            sim.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err
