"""comet-online-softmax (flash attention's KV loop): the chunked mapped program computes
attention (numpy oracle), the rescales are what makes it so, and the automatic chunk count is
the smallest that fits (brute-force oracle over the capacity check)."""
import copy

import numpy as np
import pytest

from comet_ir import interp
from comet_ir.api import run_pipeline
from comet_ir.errors import CometError
from comet_ir.ir_tree import ir_to_tree, single_mapping
from comet_ir.passes._mapping import arch_view, walk
from comet_ir.passes.online_softmax import chunk
from comet_ir.passes.verify_capacity import check_capacity
from comet_ir.spec import workloads as w
from comet_ir.spec.mapping_tree import BindingNode, ComputeNode, TileNode

_BASE = "comet-decompose{flash=true},comet-tile{kv_loop=true},comet-fuse{level=full},comet-distribute{dims=B,M}"


def _mapped(shape, causal, tail):
    m = run_pipeline(w.attention(*shape, causal=causal, arch="edge"), _BASE + tail)
    return ir_to_tree(single_mapping(m))


def _drop(prog, prefix):
    p = copy.deepcopy(prog)
    for n, _ in walk(p.root):
        if isinstance(n, BindingNode):
            n.children = [k for k in n.children
                          if not all(c.name.startswith(prefix)
                                     for c, _ in walk(k) if isinstance(c, ComputeNode))]
    return p


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunks", [1, 2, 4, 8])
def test_chunked_program_is_attention(causal, chunks):
    shape = (2, 2, 64, 16)
    x = interp.random_inputs(w.attention(*shape, causal=causal), seed=chunks)
    ref = interp.run(w.attention(*shape, causal=causal), x)[0]
    dec = run_pipeline(w.attention(*shape, causal=causal, arch="edge"), "comet-decompose{flash=true}")
    assert np.allclose(interp.run(dec, x)[0], ref, atol=1e-12)  # deferred normalisation
    prog = _mapped(shape, causal, f",comet-online-softmax{{chunks={chunks}}}")
    assert np.allclose(interp.run_chunked(dec, prog, x)[0], ref, atol=1e-12)
    if chunks > 1:
        # without the rescales the chunks do not add up; without the correction the rescales
        # have nothing to multiply by
        got = interp.run_chunked(dec, _drop(prog, "RESCALE_"), x)[0]
        assert not np.allclose(got, ref, atol=1e-3)
        with pytest.raises(CometError, match="the correction [A-Z] is not computed"):
            interp.run_chunked(dec, _drop(prog, "CORR"), x)


def test_kv_loop_moves_k_v_chunks_and_keeps_division_outside():
    prog = _mapped((1, 8, 1024, 64), False, ",comet-online-softmax{chunks=4}")
    kv = [n for n, _ in walk(prog.root) if isinstance(n, TileNode) and n.kind == "temporal"
          and max(n.factors[0]["N"]) == 4 and len(set(n.tags)) > 1]
    assert len(kv) == 1
    inside = {c.name for c, _ in walk(kv[0]) if isinstance(c, ComputeNode)}
    assert {"GEMM", "ROWMAX", "CORR", "EXP", "GEMM2", "ROWSUM", "RESCALE_O", "RESCALE_P"} <= inside
    assert "DIV" not in inside
    # per core, K's chunk is a quarter of the keys: 1024/4 keys x 64 x 2 B over N
    assert dict(zip(kv[0].tensors, kv[0].child_levels))["C"] == "WB"


def test_auto_chunks_is_smallest_that_fits():
    shape = (1, 8, 1024, 64)
    before = _mapped(shape, False, "")
    auto = _mapped(shape, False, ",comet-online-softmax")
    c_auto = max(max(n.factors[0]["N"]) for n, _ in walk(auto.root)
                 if isinstance(n, TileNode) and len(set(n.tags)) > 1)
    arch = arch_view("edge")
    check_capacity(auto, arch)
    for c in range(1, c_auto):
        try:
            cand = chunk(before, c)
        except CometError:
            continue  # not a divisor
        with pytest.raises(CometError, match="comet-verify-capacity"):
            check_capacity(cand, arch)


def test_flash_attention_pipeline_maps_long_sequences_on_edge():
    # without the KV loop S >= 128 overflowed the 32 KiB weight buffer (unfused too from 256)
    for s in (128, 256, 512, 1024):
        run_pipeline(w.attention(1, 8, s, 64, arch="edge"), "flash-attention")
    # whole rows (plain comet-tile) do not fit the core buffers from S = 256 on
    with pytest.raises(CometError, match="comet-tile: no tiling fits the core buffers"):
        run_pipeline(w.attention(1, 8, 256, 64, arch="edge"), "comet-decompose,comet-tile")


def test_fuse_full_refuses_a_shared_loop_over_a_reduced_dim():
    """col_split tiles N at GB; sharing that loop would normalise with partial row statistics."""
    with pytest.raises(CometError, match="cannot fully fuse: N is tiled at GB"):
        run_pipeline(w.attention(1, 8, 256, 64, arch="edge"),
                     "comet-decompose,comet-tile{col_split=true},comet-fuse{level=full}")
    # partial fusion keeps each op's own GB loop: allowed
    run_pipeline(w.attention(1, 8, 256, 64, arch="edge"), "partially-fused-attention")
