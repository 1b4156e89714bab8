"""Stream-K partition of the generated GEMM (comet_ir/backends/cuda/stream_k.py mirrors the
kernel's integer formulas): every k-step of every tile is computed exactly once, each split
tile has exactly one reducing fragment (its k = 0) whose contributor runs are the ones the
kernel derives with unit_of, and only fragments that never wait are waited for."""
from hypothesis import given, settings
from hypothesis import strategies as st

from comet_ir.backends.cuda import stream_k
from comet_ir.backends.cuda.stream_k import Split, fragments, plan, unit_of


@st.composite
def grids(draw):
    tiles = draw(st.integers(1, 300))
    k_tiles = draw(st.integers(1, 130))
    clusters = draw(st.integers(1, 70))
    sk_tiles = draw(st.integers(0, tiles))
    units = draw(st.integers(1, max(1, min(clusters, sk_tiles * k_tiles)))) if sk_tiles else 0
    return tiles, k_tiles, clusters, Split(sk_tiles, units)


@settings(max_examples=300, deadline=None)
@given(grids())
def test_every_k_step_once_and_one_reducer_per_tile(g):
    tiles, k_tiles, clusters, sp = g
    work = fragments(tiles, k_tiles, clusters, sp)
    seen = {}
    for c, items in enumerate(work):
        for (t, kb, kc, s) in items:
            assert 0 <= t < tiles and kc >= 1 and 0 <= kb and kb + kc <= k_tiles
            for k in range(kb, kb + kc):
                assert (t, k) not in seen
                seen[(t, k)] = c
    assert len(seen) == tiles * k_tiles
    dp = tiles - sp.sk_tiles
    total = sp.sk_tiles * k_tiles
    for c, items in enumerate(work):
        sk_items = [it for it in items if it[3] >= 0]
        for i, (t, kb, kc, s) in enumerate(sk_items):
            assert t == dp + s
            if kb > 0:
                # a fragment starting mid-tile is its run's first: it publishes and never waits
                assert i == 0
            elif kc < k_tiles:
                # the reducer: the runs holding the rest of the tile are c+1..last (unit_of)
                last = unit_of((s + 1) * k_tiles - 1, total, sp.sk_units)
                holders = {seen[(t, k)] for k in range(k_tiles)} - {c}
                assert holders == set(range(c + 1, last + 1))
                assert i == len(sk_items) - 1          # ... and it is the run's last fragment


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 132))
def test_unit_of_is_the_run_holding_x(total, units):
    units = min(units, total)
    starts = [u * total // units for u in range(units)] + [total]
    for x in {0, total - 1, total // 2, total // 3, max(0, total - 2)}:
        u = unit_of(x, total, units)
        assert starts[u] <= x < starts[u + 1]


def test_plan_splits_only_the_partial_last_round():
    fix = lambda partials, step=stream_k.STEP_US: (stream_k.FIXUP_US + stream_k.FIXUP_US_PER_PARTIAL * partials) / step  # noqa: E731
    # 8192x8192x8192 on 128x256 tiles, clusters of 2 rows: 32 x 32 = 1024 cluster tiles on 66
    # clusters = 15 whole rounds + 34 tiles of 128 k-steps; split over all 66 clusters (2 runs per
    # tile): 15*128 + ceil(34*128/66) + fix-up, more than 2 % under 16 whole rounds
    assert 15 * 128 + 66 + fix(2) <= 0.98 * 16 * 128
    assert plan(1024, 128, 66) == Split(34, 66)
    # 8192x7168x4096: 13 rounds + 38 tiles of 64 k-steps; the split saves less than 2 %
    assert 13 * 64 + 37 + fix(2) > 0.98 * 14 * 64
    assert plan(896, 64, 66) == Split()
    # a grid that fills whole rounds needs no split
    assert plan(66 * 4, 64, 66) == Split()
    # a grid smaller than the machine (512 rows x 4096: 2 x 16 cluster tiles): all of it split,
    # up to 3 runs per tile
    assert 32 + fix(3) <= 0.98 * 64
    assert plan(32, 64, 66) == Split(32, 66)
    # short K: runs of at least MIN_K_STEPS (cheap fix-ups: 10 us k-steps)
    assert plan(5, 16, 66, step_us=10.0) == Split(5, 5 * 16 // stream_k.MIN_K_STEPS)
    # ... but with 0.8 us k-steps the fix-up costs more than the 16 k-steps it would share
    assert plan(5, 16, 66) == Split()
    # one k-step: nothing to split
    assert plan(5, 1, 66) == Split()


def test_split_is_predicted_faster_than_whole_tiles():
    for tiles, k_tiles, clusters in [(32, 64, 66), (1024, 128, 66), (16, 64, 62)]:
        sp = plan(tiles, k_tiles, clusters)
        assert sp.on
        assert stream_k.steps(tiles, k_tiles, clusters, sp) <= stream_k.GAIN * stream_k.steps(tiles, k_tiles, clusters)
