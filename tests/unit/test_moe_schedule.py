"""The grouped GEMMs' tile schedule (plan.tile_schedule; csrc MoeGroupScheduler decodes the same
map on the device) and the split-K decision, against brute-force enumerations."""
import numpy as np
from hypothesis import given, settings, strategies as st

from comet_ir.backends.cuda.moe import plan as P


def _all_tiles(rows, n, tile, cluster):
    """Every (group, m-cluster, n-cluster) a grouped GEMM must compute, by enumeration."""
    ntc = -(-(-(-n // tile[1])) // cluster[1])
    out = set()
    for g, m in enumerate(rows):
        mtc = -(-(-(-m // tile[0])) // cluster[0])
        out |= {(g, a, b) for a in range(mtc) for b in range(ntc)}
    return out


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.integers(0, 3000), min_size=1, max_size=12), n=st.integers(1, 3000),
       cm=st.sampled_from([1, 2]), cn=st.sampled_from([1, 2]), strip=st.integers(0, 9), light=st.integers(0, 3))
def test_schedule_is_a_permutation_of_the_tiles(rows, n, cm, cn, strip, light):
    s = P.tile_schedule(rows, n, cluster=(cm, cn), strip=strip, light=light)
    items = [s.item(p) for p in range(s.items)]
    assert len(items) == len(set(items)) and set(items) == _all_tiles(rows, n, (128, 256), (cm, cn))
    assert s.item(s.items) is None and s.item(-1) is None


def test_alongm_order_without_strips_or_light_groups():
    """strip >= N-clusters and no light groups: CUTLASS's grouped AlongM order (group-major,
    M fastest)."""
    rows = [300, 0, 129, 1000]
    s = P.tile_schedule(rows, 1024, cluster=(1, 1), strip=0, light=0)
    want = [(g, m, nn) for g, r in enumerate(rows) for nn in range(4) for m in range(-(-r // 128))]
    assert [s.item(p) for p in range(s.items)] == want


def test_strips_and_spread_light_units():
    rows = [128 * 12, 5, 128 * 12, 100]          # two heavy groups (12 M-tiles), two light (1 M-tile)
    s = P.tile_schedule(rows, 256 * 10, cluster=(1, 1), strip=4, light=1)
    seq = [s.item(p) for p in range(s.items)]
    heavy = [t for t in seq if t[0] in (0, 2)]
    # heavy: group 0 then group 2; strips of 4 N-tiles; M fastest inside a strip
    assert heavy[:12] == [(0, m, 0) for m in range(12)]
    assert heavy[12 * 4] == (0, 0, 4) and heavy[12 * 10] == (2, 0, 0)
    assert heavy[12 * 4:12 * 8] == [(0, m, nn) for nn in range(4, 8) for m in range(12)]
    assert heavy[12 * 8:12 * 10] == [(0, m, nn) for nn in (8, 9) for m in range(12)]   # last strip: 2 wide
    # light units spread: no two light items adjacent, gaps about H/U heavy items
    pos = [p for p, t in enumerate(seq) if t[0] in (1, 3)]
    assert len(pos) == 20
    gaps = np.diff(pos)
    assert gaps.min() >= 12 and gaps.max() <= 13


def test_light_unit_keeps_rows_of_one_weight_tile_together():
    rows = [128 * 40, 200]                       # group 1: 2 M-tiles, light at light=2
    s = P.tile_schedule(rows, 2048, cluster=(1, 1), light=2)
    seq = [s.item(p) for p in range(s.items)]
    for nn in range(8):
        i = seq.index((1, 0, nn))
        assert seq[i + 1] == (1, 1, nn)


@settings(max_examples=200, deadline=None)
@given(items=st.integers(0, 5000), clusters=st.integers(1, 200))
def test_split_k_decision_by_waves(items, clusters):
    waves = lambda t: -(-t // clusters)         # noqa: E731
    # split: twice the items at half the time each; it pays when that saves half an item's time
    assert P.split_k_pays(items, clusters) == (items > 0 and waves(2 * items) / 2 <= waves(items) - 0.5)
