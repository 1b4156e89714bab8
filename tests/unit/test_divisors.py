"""divisors() feeds every tiling choice: same list as the definition (brute force), ascending,
for any n; and large dimensions (10^9 rows: the old O(n) scan hung comet-tile) stay cheap."""
from hypothesis import given, strategies as st

from comet_ir.passes._mapping import divisors, largest_divisor_le


@given(st.integers(min_value=1, max_value=20000))
def test_divisors_match_brute_force(n):
    assert divisors(n) == [d for d in range(1, n + 1) if n % d == 0]


def test_large_dimension_divisors():
    # 10^9 = 2^9 * 5^9: (9 + 1) * (9 + 1) divisors; a prime has two; a square counts its root once
    ds = divisors(10 ** 9)
    assert len(ds) == 100 and ds[0] == 1 and ds[-1] == 10 ** 9 and ds == sorted(ds)
    assert divisors(1_000_000_007) == [1, 1_000_000_007]
    assert divisors(49) == [1, 7, 49]
    assert largest_divisor_le(10 ** 9, 1000) == 1000
