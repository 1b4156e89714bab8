"""comet-decompose preserves semantics: interpret before and after on random data."""
import numpy as np
import pytest

from comet_ir.api import make_context, parse_module, print_module, run_pipeline
from comet_ir.errors import CometError
from comet_ir.interp import random_inputs, run
from comet_ir.spec import workloads as w

COMPOSITES = {"comet.softmax", "comet.layernorm", "comet.attention", "comet.moe"}


def _clone(m):
    return parse_module(print_module(m))[0]


def _check(m, spec="comet-decompose", seed=0, rtol=1e-9, atol=1e-12):
    ins = random_inputs(m, seed=seed)
    before = run(m, ins)
    after_m = run_pipeline(_clone(m), spec)
    names = {op.name for op in after_m.walk()}
    after = run(after_m, ins)
    for b, a in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    return names


@pytest.mark.parametrize("shape", [(4, 8, 3), (16, 32, 8), (1, 5, 2)])
def test_softmax(shape):
    names = _check(w.gemm_softmax(*shape))
    assert not names & COMPOSITES
    assert {"comet.reduce", "comet.sub", "comet.exp", "comet.div"} <= names


@pytest.mark.parametrize("affine", [False, True])
def test_layernorm(affine):
    names = _check(w.gemm_layernorm(6, 16, 4, affine=affine))
    assert "comet.rsqrt" in names and "comet.layernorm" not in names


@pytest.mark.parametrize("causal", [False, True])
def test_attention(causal):
    names = _check(w.attention(2, 3, 7, 4, causal))
    assert ("comet.causal_mask" in names) == causal
    assert "comet.attention" not in names and "comet.softmax" not in names


@pytest.mark.parametrize("T,H,F,E,k", [(6, 4, 5, 3, 2), (10, 8, 4, 4, 1), (5, 3, 2, 2, 2)])
def test_moe(T, H, F, E, k):
    names = _check(w.moe(T, H, F, E, k), seed=T)
    assert {"comet.topk", "comet.moe_dispatch", "comet.moe_combine", "comet.silu"} <= names


def test_only_selected():
    m = w.attention(1, 2, 4, 4, True)
    names = _check(m, "comet-decompose{ops=attention}")
    assert "comet.softmax" in names and "comet.attention" not in names
    names = _check(w.gemm_layernorm(4, 8, 2), "comet-decompose{ops=softmax}")
    assert "comet.layernorm" in names


def test_layernorm_axis0_decomposes():
    text = """builtin.module {
  func.func @f(%x: tensor<6x3xf32>) -> tensor<6x3xf32> {
    %y = comet.layernorm %x axis 0 eps 0.001 : (tensor<6x3xf32>) -> tensor<6x3xf32>
    func.return %y : tensor<6x3xf32>
  }
}"""
    _check(parse_module(text)[0])


def test_bad_option():
    with pytest.raises(CometError, match=r"unknown op kind\(s\) \['gemm'\]"):
        run_pipeline(w.gemm_softmax(2, 2, 2), "comet-decompose{ops=gemm}")
