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
            except Exception:  # noqa: BLE001 - comet-map skips what the model cannot price; so does the oracle
                continue
            best = lat if best is None else min(best, lat)
    return best


def test_map_oracle_gemm_softmax_edge():
    make = lambda: w.gemm_softmax(256, 256, 128, arch="edge")  # noqa: E731
    oracle = _brute_force(make, ["unfused", "fused-distsm", "fused-gemm-distsm", "fused-sm"], [1, 2, 4, 8, 16])
    mapped = run_pipeline(make(), "comet-map{budget=60 refine=false}")
    assert estimate(mapped).latency_cycles == oracle
    # the tiling / loop-order refinement starts from the strategies' best: never worse
    refined = run_pipeline(make(), "comet-map{budget=20}")
    assert estimate(refined).latency_cycles <= oracle


def test_map_energy_objective_never_worse_than_latency_choice_on_energy():
    make = lambda: w.gemm_layernorm(256, 256, 128, arch="edge")  # noqa: E731
    by_lat = estimate(run_pipeline(make(), "comet-map{budget=60 refine=false}"))
    by_e = estimate(run_pipeline(make(), "comet-map{objective=energy budget=60 refine=false}"))
    assert by_e.energy_pj <= by_lat.energy_pj
    assert by_lat.latency_cycles <= by_e.latency_cycles


def test_map_oracle_mapped_tiling_space():
    """A tiny mapped program: brute force over every divisor for every loop factor (keeping
    each dimension's product per tensor) and every loop order of every tile; comet-map's
    answer must be that optimum."""
    import itertools
    import os

    from comet_ir.api import parse
    from comet_ir.backends.cost.model import estimate_program
    from comet_ir.backends.cost_targets import resolve_arch
    from comet_ir.ir_tree import ir_to_tree, single_mapping

    path = os.path.join(os.path.dirname(__file__), "..", "data", "map", "tiny_exp.mlir")
    module = parse(path)
    prog = ir_to_tree(single_mapping(module))
    accel = resolve_arch(module, None, prog.arch)
    tiles = []
    node = prog.root
    while hasattr(node, "body") and node.body:
        tiles.append(node)
        node = node.body[0]
    compute = node
    dims = prog.problem.dims  # {M: 16, N: 8}
    # the space's one unit rule: a SIMD step holds at most max(lanes, given step) elements
    lanes = max(accel.compute(compute.unit).ops_per_cycle, 4)
    best = None
    divs = {d: [x for x in range(1, n + 1) if n % x == 0] for d, n in dims.items()}
    per_dim = {d: [c for c in itertools.product(divs[d], repeat=len(tiles) + 1) if _prod(c) == n]
               for d, n in dims.items()}
    for cm, cn in itertools.product(per_dim["M"], per_dim["N"]):
        if cm[-1] * cn[-1] > lanes:
            continue
        for orders in itertools.product(["MN", "NM"], repeat=len(tiles)):
            for t, fm, fn, o in zip(tiles, cm, cn, orders):
                t.factors = [{"M": [fm, fm], "N": [fn, fn]}]
                t.order = o
            for st in compute.tile_steps.values():
                st["M"], st["N"] = cm[-1], cn[-1]
            compute.tile_primitive = {"M": cm[-1], "N": cn[-1]}
            try:
                lat = estimate_program(prog, accel).latency_cycles
            except CometError:
                continue
            best = lat if best is None else min(best, lat)
    mapped = run_pipeline(parse(path), "comet-map{budget=60}")
    assert estimate(mapped).latency_cycles == best


def _prod(xs):
    out = 1
    for x in xs:
        out *= x
    return out
