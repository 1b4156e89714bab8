"""Mapping passes: structure of the mapped form, factor products, collectives, errors."""
import math

import pytest

from comet_ir.api import parse_module, print_module, run_pipeline
from comet_ir.errors import CometError
from comet_ir.ir_tree import ir_to_tree, single_mapping
from comet_ir.passes._mapping import walk
from comet_ir.spec import workloads as w
from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, ComputeNode, TileNode


def _tree(m):
    return ir_to_tree(single_mapping(m))


def _nodes(prog, cls):
    return [n for n, _ in walk(prog.root) if isinstance(n, cls)]


def _covered(prog, comp, t, d):
    """Product of the pair's factors over its path times its step (spatial included)."""
    for n, parents in walk(prog.root):
        if n is comp:
            f = comp.tile_steps[t][d]
            for p in parents:
                if isinstance(p, TileNode):
                    for i, (t2, g) in enumerate(zip(p.tensors, p.tags)):
                        if t2 == t and g == comp.name:
                            for lvl in p.factors:
                                f *= lvl.get(d, [1] * len(p.tensors))[i]
            return f


@pytest.mark.parametrize("pipe", ["unfused", "fused-distsm", "fused-gemm-distsm", "fused-sm"])
@pytest.mark.parametrize("arch", ["edge", "cloud"])
def test_every_op_covers_every_dimension(pipe, arch):
    m = run_pipeline(w.gemm_softmax(256, 256, 128, arch=arch), pipe)
    prog = _tree(m)
    outer = prog.root.children if isinstance(prog.root, BindingNode) else [prog.root]
    outer_pairs = {(t, g) for n in outer if isinstance(n, TileNode) for t, g in zip(n.tensors, n.tags)}
    for c in _nodes(prog, ComputeNode):
        for t in c.tensors:
            for d, size in prog.problem.dims.items():
                got = _covered(prog, c, t, d)
                if (t, c.name) in outer_pairs:
                    # temporal x spatial x steps = the problem dimension (the reference rule)
                    assert got == size, (pipe, c.name, t, d)
                else:  # on-chip intermediates: the rest is spread over units
                    assert size % got == 0, (pipe, c.name, t, d)
    # the round trip through the printer is exact
    assert print_module(parse_module(print_module(m))[0]) == print_module(m)


def test_unfused_has_one_dram_nest_per_op():
    prog = _tree(run_pipeline(w.gemm_softmax(256, 256, 128), "comet-decompose,comet-tile"))
    assert isinstance(prog.root, BindingNode)
    names = [c.name for c in _nodes(prog, ComputeNode)]
    assert names == ["GEMM", "ROWMAX", "SUB", "EXP", "ROWSUM", "DIV"]
    for nest in prog.root.children:
        assert nest.targets == ["DRAM"] * len(nest.tensors)
        assert len(set(nest.tags)) == 1


def test_full_fusion_keeps_intermediates_on_chip():
    prog = _tree(run_pipeline(w.gemm_softmax(256, 256, 128), "comet-decompose,comet-tile,comet-fuse"))
    dram = prog.root
    assert isinstance(dram, TileNode) and dram.targets[0] == "DRAM"
    # only the inputs A, B and the final output live in DRAM
    assert set(dram.tensors) == {"A", "B", prog.problem.outs[0]}
    gb = dram.body[0]
    assert gb.targets[0] == "GB" and isinstance(gb.body[0], BindingNode)
    # C (the GEMM output) is never listed at DRAM or in the shared GB tile
    assert "C" not in gb.tensors


def test_partial_fusion_goes_through_gb():
    prog = _tree(run_pipeline(w.gemm_softmax(256, 256, 128),
                              "comet-decompose,comet-tile,comet-fuse{level=partial}"))
    b = prog.root.body[0]
    assert isinstance(b, BindingNode)
    assert all(k.targets[0] == "GB" for k in b.children)  # one GB tile per op


def test_dist_inserts_max_and_add_allreduces():
    prog = _tree(run_pipeline(w.gemm_softmax(256, 256, 128), "fused-gemm-distsm"))
    cols = _nodes(prog, ColOpNode)
    assert [(c.type, c.reduce_op) for c in cols] == [("allreduce", "max"), ("allreduce", "add")]
    assert all(c.target == "GB" and c.dimension == "N" for c in cols)
    # each follows its reduction in the same binding
    b = next(n for n in _nodes(prog, BindingNode) if any(isinstance(k, ColOpNode) for k in n.children))
    order = [k.tensor_in if isinstance(k, ColOpNode) else next(iter(_nodes_of(k))).name for k in b.children]
    assert order.index("D") == order.index("ROWMAX") + 1


def _nodes_of(node):
    return [n for n, _ in walk(node) if isinstance(n, ComputeNode)]


def test_layernorm_dist_two_add_allreduces():
    prog = _tree(run_pipeline(w.gemm_layernorm(256, 256, 128), "fused-gemm-distln"))
    cols = _nodes(prog, ColOpNode)
    assert [(c.type, c.reduce_op) for c in cols] == [("allreduce", "add"), ("allreduce", "add")]


def test_single_gathers_and_runs_vector_ops_on_one_unit():
    prog = _tree(run_pipeline(w.gemm_softmax(256, 256, 128), "fused-sm"))
    cols = _nodes(prog, ColOpNode)
    assert [(c.type, c.tensor_in, c.src, c.dest) for c in cols] == [("gather", "C", ["GB", "OB"], ["OB"])]
    for c in _nodes(prog, ComputeNode):
        if c.op_type != "GEMM":
            assert _covered(prog, c, c.tensors[-1], "N") == 256
            # no spatial factor > 1 serves a vector op
            for n, _ in walk(prog.root):
                if isinstance(n, TileNode) and n.kind == "spatial":
                    for i, g in enumerate(n.tags):
                        if g == c.name:
                            assert all(lvl["N"][i] == 1 for lvl in n.factors)


def test_distribute_spreads_gemm_over_clusters_and_cores():
    prog = _tree(run_pipeline(w.gemm_softmax(256, 256, 128), "fused-gemm-distsm"))
    sp = [n for n in _nodes(prog, TileNode) if n.kind == "spatial"]
    cl = [n for n in sp if n.targets[0] == "DRAM"]
    assert len(cl) == 1
    i = cl[0].tags.index("GEMM")
    assert (cl[0].factors[0]["N"][i], cl[0].factors[1]["N"][i]) == (2, 2)  # edge: 2x2 clusters


def test_tile_user_factors_and_errors():
    m = run_pipeline(w.gemm_softmax(256, 256, 128), "comet-decompose,comet-tile{level=DRAM factors=M8}")
    prog = _tree(m)
    for n in prog.root.children:
        assert n.factors[0]["M"] == [8] * len(n.tensors)
    with pytest.raises(CometError, match="factor M:3 at level DRAM does not divide M = 256"):
        run_pipeline(w.gemm_softmax(256, 256, 128), "comet-decompose,comet-tile{level=DRAM factors=M3}")
    with pytest.raises(CometError, match="level 'L2' is not a level of architecture 'edge'"):
        run_pipeline(w.gemm_softmax(256, 256, 128), "comet-decompose,comet-tile{level=L2}")
    with pytest.raises(CometError, match="run comet-decompose before comet-tile"):
        run_pipeline(w.attention(1, 2, 8, 8), "comet-tile")


def test_wrong_form_errors():
    with pytest.raises(CometError, match="comet-fuse: expects the mapped form .* run comet-tile first"):
        run_pipeline(w.gemm_softmax(16, 16, 16), "comet-fuse")
    with pytest.raises(CometError, match="run comet-fuse before comet-distribute"):
        run_pipeline(w.gemm_softmax(256, 256, 128), "comet-decompose,comet-tile,comet-distribute,comet-fuse")
    with pytest.raises(CometError, match="GEMM cannot be spread over 4 spatial units along N"):
        run_pipeline(w.gemm_softmax(8, 12, 8), "comet-decompose,comet-tile,comet-distribute")


def test_capacity_error_names_tensor_level_bytes():
    # edge: GB = 2048 x 1024 = 2097152 bytes per cluster. N = 1024 spread over 4 clusters leaves
    # each GB the int8 weight slice B = K x N/4 = 4096 x 256 = 1 MiB, double buffered 2 MiB,
    # plus the A row block: it cannot fit when the user forbids the DRAM K split.
    with pytest.raises(CometError) as e:
        run_pipeline(w.gemm_softmax(256, 1024, 4096),
                     "comet-decompose,comet-tile{level=DRAM factors=K1},comet-fuse{level=full},"
                     "comet-distribute,comet-insert-collectives,comet-verify-capacity")
    msg = str(e.value)
    assert "comet-verify-capacity: tensor B (operation GEMM) needs 2097152 bytes in GB" in msg
    assert "2097152 available" in msg


def test_capacity_by_hand():
    # 64x64x64 GEMM alone, no distribution: core tile holds the full A (64x64 int8 = 4096 B),
    # B (4096 B) and C (64x64 f16 = 8192 B): doubled 8192 / 8192 / 16384 all fit edge.
    from comet_ir.passes.verify_capacity import resident_bytes
    prog = _tree(run_pipeline(w.gemm_softmax(64, 64, 64), "comet-decompose,comet-tile"))
    gemm_gb = prog.root.children[0].body[0]
    got = {(t, lvl): b for t, g, lvl, b in resident_bytes(prog, gemm_gb)}
    assert got == {("A", "IB"): 64 * 64, ("B", "WB"): 64 * 64, ("C", "OB"): 64 * 64 * 2}


def _work(prog, comp, d):
    """Elements of dimension d that op `comp` covers: its step times, for every tile around
    it, its own pair's factor, or (a fused tile it has no pair in) the tile's iteration count."""
    for n, parents in walk(prog.root):
        if n is comp:
            out = comp.tile_steps[comp.tensors[-1]][d]
            for p in parents:
                if not isinstance(p, TileNode):
                    continue
                own = [i for i, g in enumerate(p.tags) if g == comp.name]
                for lvl in p.factors:
                    fs = lvl.get(d, [1] * len(p.tensors))
                    out *= fs[own[0]] if own else max(fs)
            return out


_WORK_CASES = [("gemm_softmax", (256, 256, 128), s) for s in
               ("unfused", "fused-distsm", "fused-gemm-distsm")] + \
              [("gemm_layernorm", (256, 256, 128), s) for s in ("unfused", "fused-gemm-distln")] + \
              [("gemm_softmax", (256, 1024, 4096), s) for s in
               ("unfused", "fused-distsm", "fused-gemm-distsm")] + \
              [("attention", sh, s) for sh in ((1, 16, 128, 32), (1, 8, 64, 64))
               for s in ("unfused-attention", "partially-fused-attention", "flash-attention")] + \
              [("attention", (1, 8, 1024, 64), s) for s in
               ("unfused-attention", "partially-fused-attention", "flash-attention")]


@pytest.mark.parametrize("wl,shape,pipe", _WORK_CASES)
def test_every_op_does_its_whole_problem(wl, shape, pipe):
    """Every op covers each dimension its tensors index exactly once over all loops and units
    (no share lost when a fused tile is spread for another op)."""
    prog = _tree(run_pipeline(getattr(w, wl)(*shape, arch="edge"), pipe))
    for c in _nodes(prog, ComputeNode):
        idx = {d for o in prog.problem.ops if o.name == c.name for t in o.tensors
               for r in t.projection for d in r}
        for d in idx:
            assert _work(prog, c, d) == prog.problem.dims[d], (pipe, c.name, d)


def test_k_split_at_dram_when_full_k_overflows_gb():
    """edge GB = 2 MiB: B's per-cluster slice at full K (4096 x 1024/4 i8, double buffered)
    alone is 2 MiB, so K must be split at DRAM; each chunk then fits."""
    for pipe in ("unfused", "fused-gemm-distsm"):
        prog = _tree(run_pipeline(w.gemm_softmax(256, 1024, 4096, arch="edge"), pipe))
        gemm_dram = [n for n, _ in walk(prog.root) if isinstance(n, TileNode)
                     and n.kind == "temporal" and n.targets[0] == "DRAM" and "GEMM" in n.tags]
        kd = math.prod(n.factors[0]["K"][n.tags.index("GEMM")] for n in gemm_dram)
        assert kd >= 2, pipe
        # the GB chunk of B: K/kd x N/4 bytes, double buffered, fits 2 MiB with A beside it
        assert 2 * (4096 // kd) * (1024 // 4) < 2 * 1024 * 1024
    # the softmax ops never loop over K (it is not theirs): only the GEMM's own tile splits it
    prog = _tree(run_pipeline(w.gemm_softmax(256, 1024, 4096, arch="edge"), "fused-distsm"))
    for n, _ in walk(prog.root):
        if isinstance(n, TileNode) and n.factors[0].get("K") and max(n.factors[0]["K"]) > 1:
            assert set(n.tags) == {"GEMM"}, n.tags


def test_single_rows_keeps_vector_ops_spread_over_rows():
    """strategy=single rows=true: the vector ops use the same cores, each on whole rows:
    their core spatial tile spreads M (not N), their core loop covers all of N, and the gathered
    rows of a 1024-wide GEMM fit OB (folding onto one core does not: 0.5 MiB > 128 KiB)."""
    shape = (1024, 1024, 1024)
    with pytest.raises(CometError, match="comet-verify-capacity"):
        run_pipeline(w.gemm_softmax(*shape, arch="edge"), "fused-sm")
    prog = _tree(run_pipeline(w.gemm_softmax(*shape, arch="edge"), "fused-sm-rows"))
    for c in _nodes(prog, ComputeNode):
        if c.op_type == "GEMM":
            continue
        for n, parents in walk(prog.root):
            if n is c:
                sp = [p for p in parents if isinstance(p, TileNode) and p.kind == "spatial"
                      and c.name in p.tags][-1]
                i = sp.tags.index(c.name)
                assert math.prod(l["N"][i] for l in sp.factors) == 1, c.name
                assert math.prod(l["M"][i] for l in sp.factors) == 4, c.name  # 2x2 cores
                core = parents[-1]
                j = core.tags.index(c.name)
                assert core.factors[0]["N"][j] * c.tile_steps[c.tensors[-1]]["N"] == 1024
