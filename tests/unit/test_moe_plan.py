"""MoE index math (routing, permutation, EP dispatch, tile plans) and cost model, numpy only."""
import numpy as np
import pytest

from comet_ir.backends.cuda.moe import plan as P
from comet_ir.backends.cost import moe_model as M
from comet_ir.errors import CometError


def _weights(rng, e, h, f):
    return (rng.standard_normal((e, h, f)) * 0.2, rng.standard_normal((e, h, f)) * 0.2,
            rng.standard_normal((e, f, h)) * 0.2)


def _dense_reference(x, logits, w1, w3, w2, k):
    """Token-by-token definition, independent of the permutation code."""
    out = np.zeros_like(x, dtype=np.float64)
    for t in range(x.shape[0]):
        p = np.exp(logits[t] - logits[t].max()); p /= p.sum()
        top = sorted(range(len(p)), key=lambda j: (-p[j], j))[:k]
        wsum = sum(p[j] for j in top)
        for j in top:
            a, b = x[t] @ w1[j], x[t] @ w3[j]
            out[t] += p[j] / wsum * ((a / (1 + np.exp(-a)) * b) @ w2[j])
    return out


@pytest.mark.parametrize("t,e,k", [(37, 8, 2), (1, 4, 4), (50, 16, 1), (64, 256, 8), (0, 8, 2)])
def test_reference_matches_dense(t, e, k):
    rng = np.random.default_rng(t + e + k)
    h, f = 8, 12
    x = rng.standard_normal((t, h)); lg = rng.standard_normal((t, e))
    w1, w3, w2 = _weights(rng, e, h, f)
    np.testing.assert_allclose(P.reference_moe(x, lg, w1, w3, w2, k), _dense_reference(x, lg, w1, w3, w2, k),
                               rtol=1e-5, atol=1e-6)  # gates are float32


def test_route_renormalised_and_stable_ties():
    lg = np.zeros((3, 4))
    idx, g = P.route(lg, 2)
    assert (idx == [[0, 1]] * 3).all()
    np.testing.assert_allclose(g.sum(1), 1.0, rtol=1e-6)


def test_permutation_properties():
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 8, size=(100, 2))
    p = P.permute(idx, 8)
    flat = idx.reshape(-1)
    assert sorted(p.perm.tolist()) == list(range(200))
    assert (np.diff(flat[p.perm]) >= 0).all()                    # grouped by expert
    assert (p.inv[p.perm] == np.arange(200)).all()
    assert (p.counts == np.bincount(flat, minlength=8)).all()
    for j in range(8):                                           # stable within an expert
        seg = p.perm[p.offsets[j]:p.offsets[j + 1]]
        assert (np.diff(seg) > 0).all()


@pytest.mark.parametrize("case", ["uniform", "zipf", "empty_expert", "one_expert", "odd_tokens"])
@pytest.mark.parametrize("ep", [1, 2, 4])
def test_ep_decomposition_matches_reference(case, ep):
    rng = np.random.default_rng(7)
    e, k, h, f = 8, 2, 8, 12
    t = 33 * ep if case == "odd_tokens" else 16 * ep
    x = rng.standard_normal((t, h))
    lg = rng.standard_normal((t, e))
    if case == "zipf":
        lg += np.log(1.0 / np.arange(1, e + 1) ** 1.5) * 3
    elif case == "empty_expert":
        lg[:, 3] = -1e9
    elif case == "one_expert":
        lg[:, 5] = 1e9
        k = 1
    w1, w3, w2 = _weights(rng, e, h, f)
    ref = P.reference_moe(x, lg, w1, w3, w2, k)
    outs = P.ep_reference(np.array_split(x, ep), np.array_split(lg, ep), w1, w3, w2, k, ep)
    np.testing.assert_allclose(np.concatenate(outs), ref, rtol=1e-10, atol=1e-10)


def test_recv_layout_and_rescheduling():
    rng = np.random.default_rng(3)
    ep, e, k = 4, 8, 2
    idx = [rng.integers(0, e, size=(40, k)) for _ in range(ep)]
    plans = [P.dispatch_plan(i, e, ep, r) for r, i in enumerate(idx)]
    for d in range(ep):
        lay = P.recv_layout(plans, d)
        assert lay.offsets[-1] == sum(pl.send_counts[d] for pl in plans)
        tiles = P.layer0_tiles(lay, bm=8)
        assert sum(t.rows for t in tiles) == lay.offsets[-1]
        assert all(1 <= t.rows <= 8 for t in tiles)
        order = P.reschedule(tiles)
        steps = [t.ready_after for t in order]
        assert steps == sorted(steps)
        # a tile is ready only when its latest source arrived; local-only tiles have step 0
        for t in tiles:
            rows = range(t.row0, t.row0 + t.rows)
            srcs = {s for j in range(e // ep) for s in range(ep)
                    for r in rows if lay.seg_start[j, s] <= r < lay.seg_start[j, s] + lay.seg_count[j, s]}
            assert t.ready_after == max(P.arrival_rank(d, s, ep) for s in srcs)


def test_layer1_column_order():
    order = P.layer1_column_order(rows=300, hidden=512, bm=128, bn=256)
    assert order[:3] == [(0, 0), (1, 0), (2, 0)] and order[3] == (0, 1)
    with pytest.raises(CometError):
        P.layer1_column_order(10, 100, 8, 64)


@pytest.mark.parametrize("kw,msg", [
    (dict(tokens=-1), "tokens"), (dict(topk=9), "top-k"), (dict(topk=5, experts=4), "exceeds"),
    (dict(experts=257), "256"), (dict(ep=3), "does not divide"), (dict(tp=3), "tp=3"),
    (dict(hidden=0), "hidden"),
])
def test_check_config_errors(kw, msg):
    base = dict(tokens=16, hidden=64, ffn=128, experts=8, topk=2, ep=1, tp=1)
    base.update(kw)
    with pytest.raises(CometError, match=msg):
        P.check_config(**base)


def test_bad_indices():
    with pytest.raises(CometError):
        P.permute(np.array([[0, 9]]), 8)
    with pytest.raises(CometError):
        P.route(np.zeros((4, 3)), 4)
    with pytest.raises(CometError):
        P.dispatch_plan(np.zeros((2, 1), np.int64), 8, 3, 0)


# ------------------------------------------------------------------ cost model

def test_cost_model_shapes_and_chooser():
    c = M.MoEConfig(2048, 4096, 14336, 8, 2)
    g, l = M.predict(c, "h100", "grouped"), M.predict(c, "h100", "loop")
    assert 0 < g["total_ms"] < l["total_ms"]
    sk = M.MoEConfig(2048, 4096, 14336, 8, 2, counts=tuple(M.zipf_counts(4096, 8)))
    assert M.predict(sk, "h100")["total_ms"] >= g["total_ms"] * 0.99
    assert M.predict(c, "h200")["total_ms"] <= g["total_ms"]
    assert M.choose_comm_ratio(c)[0] == 0.0
    r, preds = M.choose_comm_ratio(M.MoEConfig(2048, 4096, 14336, 8, 2, ep=4))
    assert r > 0 and preds[r] == min(preds.values())
    with pytest.raises(CometError):
        M.predict(c, "tpu")
    with pytest.raises(CometError):
        M.predict(c, impl="nope")


def test_lower_moe_pass_api():
    from comet_ir import api
    from comet_ir.errors import CometError
    text = open(__file__.replace("tests/unit/test_moe_plan.py", "examples/moe.mlir")).read()
    mod, _ = api.parse_module(text)
    from comet_ir.passes.lower_moe import LowerMoE
    LowerMoE(ep=2).apply(api.make_context(), mod)
    names = [op.name for op in mod.walk()]
    assert "comet.moe" not in names and "cometmoe.layer0" in names and "cometmoe.layer1" in names
    mod.verify()
    mod, _ = api.parse_module(text)
    with pytest.raises(CometError, match="does not divide"):
        LowerMoE(ep=3).apply(api.make_context(), mod)


def test_configs_from_ir():
    from comet_ir import api
    from comet_ir.backends.cuda.moe.from_ir import moe_configs
    from comet_ir.passes.lower_moe import LowerMoE
    text = open(__file__.replace("tests/unit/test_moe_plan.py", "examples/moe.mlir")).read()
    mod, _ = api.parse_module(text)
    (c,) = moe_configs(mod)
    assert (c.tokens, c.hidden, c.ffn, c.experts, c.topk, c.ep) == (2048, 4096, 14336, 8, 2, 1)
    LowerMoE(ep=4, tp=2).apply(api.make_context(), mod)
    (c,) = moe_configs(mod)
    assert (c.ep, c.tp, c.layer0_order, c.layer1_order) == (4, 2, "local_first", "column_pipelined")
    assert c.comm_blocks > 0 and c.tile == (128, 256)


def test_layer0_model_comm_blocks():
    """Fused layer0 model: more comm blocks never move rows slower; the chooser returns the
    argmin of its own predictions; with the rows on peers (ep > 1) the comm share matters more."""
    cfg = M.MoEConfig(2048, 4096, 14336, 8, 2)
    comm = [M.predict_layer0(cfg, "h100", k)["comm_ms"] for k in (4, 8, 16, 32)]
    assert all(a >= b for a, b in zip(comm, comm[1:]))
    best, preds = M.choose_comm_blocks(cfg)
    assert preds[best] == min(preds.values()) and set(preds) == set(M.COMM_BLOCKS)
    # unfused: route + a read and a write of every dispatched row + GEMM1 (by hand)
    p0 = M.predict_layer0(cfg, "h100", 0)
    bw = M.H100.hbm_gbps * 1e9 * M.DEFAULT_CALIB.mem_eff
    copy_ms = 2 * 2048 * 2 * 4096 * 2 / bw * 1e3
    assert abs(p0["total_ms"] - (M.DEFAULT_CALIB.route_fused_us * 1e-3 + copy_ms + p0["gemm1_ms"])) < 1e-9
    ep4 = M.MoEConfig(2048, 4096, 14336, 8, 2, ep=4)
    e4 = [M.predict_layer0(ep4, "h100", k)["comm_ms"] for k in (4, 32)]
    assert e4[0] > e4[1]
