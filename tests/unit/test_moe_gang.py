"""Gang order of the grouped GEMMs (plan.gang_slots, the mirror of csrc moe_group_args_kernel's
packing for the *_gang variants): every tile exactly once, no gang across two waves, holes only
where a gang would straddle, off with light groups."""
import pytest
from hypothesis import given, settings, strategies as st

from comet_ir.backends.cuda.moe import plan as P
from comet_ir.errors import CometError


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.integers(0, 5000), min_size=1, max_size=40), n=st.integers(1, 30000),
       clusters=st.integers(1, 80))
def test_gang_slots_cover_every_tile_once_and_keep_gangs_in_one_wave(rows, n, clusters):
    slots = P.gang_slots(rows, n, clusters)
    ntc = -(-(-(-n // 256)) // 2)
    mtcs = [-(-m // 128) for m in rows]
    if any(0 < m <= 2 for m in mtcs) or not any(mtcs):
        assert slots is None
        return
    items = [s for s in slots if s is not None]
    want = {(g, mc, nc) for g, m in enumerate(mtcs) for nc in range(ntc) for mc in range(m)}
    assert len(items) == len(want) and set(items) == want            # each tile exactly once
    waves = {}
    for p, s in enumerate(slots):
        if s is not None:
            waves.setdefault((s[0], s[2]), set()).add(p // clusters)
    for (g, nc), w in waves.items():
        if mtcs[g] <= clusters:
            assert len(w) == 1, f"gang {(g, nc)} straddles waves {w}"
    # a hole only where the next gang would not fit the rest of its wave
    for p, s in enumerate(slots):
        if s is None:
            assert p + 1 < len(slots)
            nxt = next(x for x in slots[p:] if x is not None)
            assert p % clusters + mtcs[nxt[0]] > clusters


def test_gang_slots_mixtral_t2048():
    # part 5's routing: gangs of 4-5 M-clusters, 8 N-clusters (GEMM2 N = 4096), 66 clusters
    counts = [529, 510, 502, 464, 514, 507, 532, 538]
    s = P.gang_slots(counts, 4096, 66)
    assert len([x for x in s if x is not None]) == 36 * 8
    # expert 0: 8 gangs of 5 (slots 0-39); expert 1 (4 M-clusters): 6 gangs fill slots 40-63, the
    # 7th does not fit 64-65 (two holes) and opens wave 1
    assert s[:40] == [(0, mc, nc) for nc in range(8) for mc in range(5)]
    assert s[64] is None and s[65] is None and s[66] == (1, 0, 6)


def test_gang_slots_errors():
    with pytest.raises(CometError):
        P.gang_slots([100], 0, 66)
