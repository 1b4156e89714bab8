"""comet-map on a mapped program also moves collectives (type, location) and the vector ops'
spatial split: brute force over the pass pipelines that build each structure is the oracle."""
import itertools

from comet_ir.api import run_pipeline
from comet_ir.backends.cost_targets import estimate
from comet_ir.errors import CometError
from comet_ir.spec import workloads as w

_LOWER = "comet-decompose,comet-tile,comet-fuse{level=partial},comet-distribute{idle=true}"


def _make():
    return w.gemm_softmax(256, 256, 128, arch="edge")


def _lowered(strategy="dist", level="GB", rows=False):
    opts = f"strategy={strategy} level={level}" + (" rows=true" if rows else "")
    return run_pipeline(_make(), f"{_LOWER},comet-insert-collectives{{{opts}}},comet-verify-capacity")


def test_map_oracle_collective_structure():
    oracle = None
    for strategy, level, rows in itertools.product(["dist", "single"], ["GB", "OB"], [False, True]):
        if strategy == "dist" and rows:
            continue
        try:
            lat = estimate(_lowered(strategy, level, rows)).latency_cycles
        except CometError:
            continue
        oracle = lat if oracle is None else min(oracle, lat)
    given = estimate(_lowered()).latency_cycles
    # the space is not trivial: some other structure beats the given allreduce at GB
    assert oracle < given
    picked = run_pipeline(_lowered(), "comet-map{budget=60 refine=false}")
    assert estimate(picked).latency_cycles == oracle
    searched = run_pipeline(_lowered(), "comet-map{budget=10}")
    assert estimate(searched).latency_cycles <= oracle


def test_map_keeps_collectives_it_cannot_rederive():
    """A gather whose vector ops already sit on one unit: the pass sees no reduction crossing
    units, so the program keeps its gather (no variant drops a needed collective)."""
    from comet_ir import registry

    m = run_pipeline(_make(), registry.PIPELINES["fused-sm"])
    assert "gather" in str(m)
    out = run_pipeline(m, "comet-map{budget=60 refine=false}")
    assert "gather" in str(out)
