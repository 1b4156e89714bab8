"""The numpy interpreter checked against properties derived by hand (not against itself)."""
import numpy as np
import pytest

from comet_ir.api import parse
from comet_ir.errors import CometError
from comet_ir.interp import moe_slots, random_inputs, run, run_spmd, topk
from comet_ir.spec import workloads as w


def test_gemm_softmax_rows_are_distributions():
    m = w.gemm_softmax(4, 6, 3)
    a = np.arange(12.0).reshape(4, 3) / 10
    b = np.ones((3, 6))
    (d,) = run(m, [a, b])
    # B is all ones: every column of C equals the row sum of A -> uniform softmax rows.
    np.testing.assert_allclose(d, np.full((4, 6), 1 / 6))
    a2, b2 = random_inputs(m, seed=1)
    (d2,) = run(m, [a2, b2])
    np.testing.assert_allclose(d2.sum(axis=1), 1.0)
    assert (np.argmax(d2, axis=1) == np.argmax(a2 @ b2, axis=1)).all()


def test_layernorm_normalises_rows():
    m = w.gemm_layernorm(5, 16, 8, eps=1e-9)
    a, b = random_inputs(m, seed=2)
    (d,) = run(m, [a, b])
    np.testing.assert_allclose(d.mean(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(d.var(axis=1), 1.0, rtol=1e-6)


def test_layernorm_affine():
    m = w.gemm_layernorm(2, 4, 2, affine=True, eps=1e-12)
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    g = np.array([2.0, 2.0, 2.0, 2.0])
    be = np.array([1.0, 1.0, 1.0, 1.0])
    (d,) = run(m, [a, b, g, be])
    z = (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25)  # by hand: mean 2.5, var 1.25
    np.testing.assert_allclose(d[0], 2 * z + 1)
    np.testing.assert_allclose(d[1], 2 * z[::-1] + 1)


def test_attention_causal_first_row_is_v0():
    m = w.attention(1, 2, 5, 3, causal=True)
    q, k, v = random_inputs(m, seed=3)
    (o,) = run(m, [q, k, v])
    # Causal: query 0 only sees key 0, so its output is v[..., 0, :].
    np.testing.assert_allclose(o[:, :, 0, :], v[:, :, 0, :])
    # Identical keys -> uniform attention over the visible prefix -> prefix means of V.
    k1 = np.zeros_like(k)
    (o1,) = run(m, [q, k1, v])
    for s in range(5):
        np.testing.assert_allclose(o1[0, :, s], v[0, :, : s + 1].mean(axis=1))


def test_moe_single_expert_is_swiglu_ffn():
    m = w.moe(3, 4, 5, 1, 1)
    x, r, w1, w3, w2 = random_inputs(m, seed=4)
    (y,) = run(m, [x, r, w1, w3, w2])
    h = x @ w1[0]
    np.testing.assert_allclose(y, ((h / (1 + np.exp(-h))) * (x @ w3[0])) @ w2[0])


def test_moe_two_experts_weights():
    m = w.moe(1, 2, 2, 2, 2)
    x = np.array([[1.0, 0.0]])
    r = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])  # logits [0, ln 3] -> weights 1/4, 3/4
    eye = np.stack([np.eye(2), np.eye(2)])
    w3 = np.ones((2, 2, 2)) * 1e3  # silu(h)*(x w3): large gate
    w2 = np.stack([np.eye(2), 2 * np.eye(2)])
    (y,) = run(m, [x, r, eye, w3, w2])
    silu1 = 1 / (1 + np.exp(-1.0))
    expect = (0.25 * 1 + 0.75 * 2) * np.array([silu1 * 1e3, 0.0])
    np.testing.assert_allclose(y[0], expect)


def test_topk_and_slots():
    v, i = topk(np.array([[1.0, 3.0, 3.0, 0.0]]), 2)
    assert v.tolist() == [[3.0, 3.0]] and i.tolist() == [[1, 2]]
    slots = moe_slots(np.array([[0, 1], [0, 2], [0, 1]]), 3, 2)
    assert slots == [(0, 0, 0, 0), (0, 1, 1, 0), (1, 0, 0, 1), (1, 1, 2, 0), (2, 1, 1, 1)]


@pytest.mark.parametrize("tp", [2, 4])
def test_tp_spmd_equals_full_gemm(tp):
    M, K, N = 8, 6, 12
    rng = np.random.default_rng(5)
    x, wt = rng.standard_normal((M, K)), rng.standard_normal((K, N))
    ag = w.tp_ag_gemm(M, K, N, tp)
    outs = run_spmd(ag, [[xs, ws] for xs, ws in zip(np.split(x, tp), np.split(wt, tp, axis=1))])
    np.testing.assert_allclose(np.concatenate([o[0] for o in outs], axis=1), x @ wt)
    rs = w.tp_gemm_rs(M, 2 * tp, N, tp)
    x2, w2 = rng.standard_normal((M, 2 * tp)), rng.standard_normal((2 * tp, N))
    outs = run_spmd(rs, [[xs, ws] for xs, ws in zip(np.split(x2, tp, axis=1), np.split(w2, tp))])
    np.testing.assert_allclose(np.concatenate([o[0] for o in outs], axis=0), x2 @ w2)


def test_errors():
    m = w.tp_ag_gemm(8, 4, 8, 2)
    with pytest.raises(CometError, match="world=2 but the program runs on 1 ranks"):
        run(m, random_inputs(m))
    g = w.gemm_softmax(2, 2, 2)
    with pytest.raises(CometError, match="takes 2 inputs"):
        run(g, [np.zeros((2, 2))])
    with pytest.raises(CometError, match=r"input 1 has shape \(3, 2\)"):
        run(g, [np.zeros((2, 2)), np.zeros((3, 2))])


def test_examples_run():
    import pathlib
    ex = pathlib.Path(__file__).parents[2] / "examples"
    m = parse(ex / "gemm_softmax.mlir")
    (d,) = run(m, random_inputs(m))
    assert d.shape == (512, 512)
    np.testing.assert_allclose(d.sum(axis=1), 1.0)
