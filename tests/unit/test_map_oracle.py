"""comet-map on a small space returns the exhaustive optimum (brute force is the oracle)."""
from comet_ir import registry
from comet_ir.api import run_pipeline
from comet_ir.backends.cost_targets import estimate
from comet_ir.errors import CometError
from comet_ir.spec import workloads as w


def _brute_force(make, strategies, ms):
    best = None
    for s in strategies:
        for f in [None] + ms:
            tile = "comet-tile" if f is None else f"comet-tile{{level=DRAM factors=M{f}}}"
            try:
                m = run_pipeline(make(), registry.PIPELINES[s].replace("comet-tile", tile, 1))
                lat = estimate(m).latency_cycles
            except CometError:
                continue
            best = lat if best is None else min(best, lat)
    return best


def test_map_oracle_gemm_softmax_edge():
    make = lambda: w.gemm_softmax(256, 256, 128, arch="edge")  # noqa: E731
    oracle = _brute_force(make, ["unfused", "fused-distsm", "fused-gemm-distsm", "fused-sm"], [1, 2, 4, 8, 16])
    mapped = run_pipeline(make(), "comet-map{budget=60}")
    assert estimate(mapped).latency_cycles == oracle


def test_map_energy_objective_never_worse_than_latency_choice_on_energy():
    make = lambda: w.gemm_layernorm(256, 256, 128, arch="edge")  # noqa: E731
    by_lat = estimate(run_pipeline(make(), "comet-map{budget=60}"))
    by_e = estimate(run_pipeline(make(), "comet-map{objective=energy budget=60}"))
    assert by_e.energy_pj <= by_lat.energy_pj
    assert by_lat.latency_cycles <= by_e.latency_cycles
