"""Workload builders: every builder verifies over a sweep of shapes; bad shapes are CometErrors."""
import itertools

import pytest

from comet_ir.api import parse_module, print_module
from comet_ir.errors import CometError
from comet_ir.spec import workloads as w


def _ops(m):
    return [op.name for op in m.walk() if op.name.startswith("comet.")]


def _roundtrip(m):
    text = print_module(m)
    m2, _ = parse_module(text)  # verifies
    assert print_module(m2) == text


@pytest.mark.parametrize("M,N,K", list(itertools.product([1, 16, 256], [8, 1024], [4, 4096])))
def test_gemm_softmax_sweep(M, N, K):
    m = w.gemm_softmax(M, N, K)
    assert _ops(m) == ["comet.gemm", "comet.softmax"]
    assert m.attributes["comet.arch"].data == "edge"
    _roundtrip(m)
    f = w.FuncBuilder.shape
    gemm = next(op for op in m.walk() if op.name == "comet.gemm")
    assert f(gemm.results[0]) == (M, N)


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (64, 768, 768), (512, 4096, 1024)])
@pytest.mark.parametrize("affine", [False, True])
def test_gemm_layernorm_sweep(M, N, K, affine):
    m = w.gemm_layernorm(M, N, K, affine=affine, arch="cloud")
    assert _ops(m) == ["comet.gemm", "comet.layernorm"]
    ln = next(op for op in m.walk() if op.name == "comet.layernorm")
    assert len(ln.operands) == (3 if affine else 1)
    _roundtrip(m)


@pytest.mark.parametrize("B,H,S,D", [(1, 1, 1, 1), (2, 8, 128, 64), (1, 32, 4096, 128)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_sweep(B, H, S, D, causal):
    m = w.attention(B, H, S, D, causal)
    att = next(op for op in m.walk() if op.name == "comet.attention")
    assert att.field("causal") is causal
    _roundtrip(m)


@pytest.mark.parametrize("T,Hd,F,E,k", [(1, 8, 16, 1, 1), (64, 32, 48, 8, 2), (128, 64, 32, 16, 4)])
def test_moe_sweep(T, Hd, F, E, k):
    m = w.moe(T, Hd, F, E, k)
    mo = next(op for op in m.walk() if op.name == "comet.moe")
    assert (mo.field("experts"), mo.field("topk")) == (E, k)
    _roundtrip(m)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_tp_builders_per_rank_shapes(tp):
    M, K, N = 64, 128, 256
    ag = w.tp_ag_gemm(M, K, N, tp)
    f = next(op for op in ag.walk() if op.name == "func.func")
    assert [tuple(a.type.get_shape()) for a in f.body.block.args] == [(M // tp, K), (K, N // tp)]
    assert _ops(ag) == ["comet.collective", "comet.gemm"]
    col = next(op for op in ag.walk() if op.name == "comet.collective")
    assert (col.field("kind"), col.field("world")) == ("allgather", tp)
    assert tuple(col.results[0].type.get_shape()) == (M, K)
    _roundtrip(ag)
    rs = w.tp_gemm_rs(M, K, N, tp)
    assert _ops(rs) == ["comet.gemm", "comet.collective"]
    col = next(op for op in rs.walk() if op.name == "comet.collective")
    assert (col.field("kind"), col.field("reduce")) == ("reducescatter", "add")
    assert tuple(col.results[0].type.get_shape()) == (M // tp, N)
    _roundtrip(rs)


def test_real_model_shapes():
    # Mixtral-8x7B: hidden 4096, intermediate 14336, 8 experts, 2 per token (config.json).
    m = w.mixtral_8x7b_moe(256)
    f = next(op for op in m.walk() if op.name == "func.func")
    assert tuple(f.body.block.args[2].type.get_shape()) == (8, 4096, 14336)
    # Llama-3-8B: 32 query heads of dim 128.
    a = w.llama_attention("llama3-8b", seq=1024)
    att = next(op for op in a.walk() if op.name == "comet.attention")
    assert tuple(att.operands[0].type.get_shape()) == (1, 32, 1024, 128)
    assert att.field("causal")
    up, down = w.llama_mlp_tp("llama3-8b", tokens=1024, tp=8)
    g = next(op for op in up.walk() if op.name == "comet.gemm")
    assert tuple(g.results[0].type.get_shape()) == (1024, 14336 // 8)
    assert w.model_moe("qwen2-57b-a14b", 64) is not None


@pytest.mark.parametrize("call,msg", [
    (lambda: w.gemm_softmax(0, 4, 4), "M = 0 must be a positive integer"),
    (lambda: w.gemm_softmax(4, -1, 4), "N = -1"),
    (lambda: w.moe(4, 8, 8, 2, 3), "topk = 3 must be <= experts = 2"),
    (lambda: w.tp_ag_gemm(10, 8, 8, 4), "M = 10 is not divisible by tp = 4"),
    (lambda: w.tp_gemm_rs(8, 6, 8, 4), "K = 6 is not divisible by tp = 4"),
    (lambda: w.llama_attention("llama9", 16), "unknown model 'llama9'"),
    (lambda: w.gemm_softmax(4, 4, 4, in_dtype="f7"), "unknown element type 'f7'"),
    (lambda: w.model_moe("llama3-8b"), "has no experts"),
])
def test_bad_shapes(call, msg):
    with pytest.raises(CometError, match=msg.replace("(", r"\(")):
        call()
