"""CometMoE on the CPU (loop / grouped_mm backends, float32): routing cases, EP/TP over gloo
with several processes, bad input. Skipped where torch is not installed."""
import os
import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from comet_ir.backends.cuda.moe import plan as P  # noqa: E402
from comet_ir.backends.cuda.moe.module import CometMoE, reference_moe, permutation  # noqa: E402
from comet_ir.errors import CometError  # noqa: E402


def make_logits(case, t, e, gen):
    lg = torch.randn(t, e, generator=gen)
    if case == "zipf":
        lg += torch.log(1.0 / torch.arange(1, e + 1, dtype=torch.float32) ** 1.5) * 3
    elif case == "empty_expert":
        lg[:, 1] = -1e4
    elif case == "one_expert":
        lg[:, e - 1] = 1e4
    return lg


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@pytest.mark.parametrize("case", ["uniform", "zipf", "empty_expert", "one_expert", "odd_tokens"])
@pytest.mark.parametrize("backend", ["loop", "grouped_mm"])
def test_ep1_matches_numpy(case, backend):
    if backend == "grouped_mm" and not hasattr(torch, "_grouped_mm"):
        pytest.skip("no torch._grouped_mm")
    gen = torch.Generator().manual_seed(0)
    t, h, f, e, k = (37 if case == "odd_tokens" else 32), 16, 24, 8, (1 if case == "one_expert" else 2)
    m = CometMoE(h, f, e, k, backend=backend, dtype=torch.float32)
    x = torch.randn(t, h, generator=gen)
    lg = make_logits(case, t, e, gen)
    try:
        y = m(x, lg)
    except (RuntimeError, NotImplementedError) as err:  # _grouped_mm may be GPU-only
        if backend == "grouped_mm":
            pytest.skip(f"torch._grouped_mm unavailable on CPU: {err}")
        raise
    ref = P.reference_moe(x.numpy(), lg.numpy(), m.w1.detach().numpy(), m.w3.detach().numpy(),
                          m.w2.detach().numpy(), k)
    assert rel(y, torch.from_numpy(ref)) < 1e-5
    assert rel(reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k), torch.from_numpy(ref)) < 1e-5


def test_permutation_matches_numpy():
    idx = torch.randint(0, 16, (50, 4))
    perm, inv, counts, offsets = permutation(idx, 16)
    p = P.permute(idx.numpy(), 16)
    assert (perm.numpy() == p.perm).all() and (inv.numpy() == p.inv).all()
    assert (counts.numpy() == p.counts).all() and (offsets.numpy() == p.offsets).all()


@pytest.mark.parametrize("topk,experts", [(1, 1), (8, 8), (8, 256), (3, 64)])
def test_topk_and_expert_range(topk, experts):
    m = CometMoE(16, 8, experts, topk, backend="loop", dtype=torch.float32)
    x = torch.randn(20, 16)
    lg = torch.randn(20, experts)
    ref = P.reference_moe(x.numpy(), lg.numpy(), m.w1.detach().numpy(), m.w3.detach().numpy(),
                          m.w2.detach().numpy(), topk)
    assert rel(m(x, lg), torch.from_numpy(ref)) < 1e-5


def test_bad_input():
    m = CometMoE(16, 8, 4, 2, backend="loop", dtype=torch.float32)
    with pytest.raises(CometError, match="0 tokens"):
        m(torch.zeros(0, 16), torch.zeros(0, 4))
    with pytest.raises(CometError, match="router_logits must be"):
        m(torch.zeros(3, 16), torch.zeros(3, 5))
    with pytest.raises(CometError, match="x must be"):
        m(torch.zeros(3, 15), torch.zeros(3, 4))
    with pytest.raises(CometError, match="dtype"):
        m(torch.zeros(3, 16, dtype=torch.float64), torch.zeros(3, 4))
    with pytest.raises(CometError, match="floating point"):
        m(torch.zeros(3, 16), torch.zeros(3, 4, dtype=torch.int64))
    with pytest.raises(CometError, match="exceeds"):
        CometMoE(16, 8, 4, 5)
    with pytest.raises(CometError, match="top-k"):
        CometMoE(16, 8, 16, 9)
    with pytest.raises(CometError, match="256"):
        CometMoE(16, 8, 512, 2)
    with pytest.raises(CometError, match="does not divide"):
        CometMoE(16, 8, 6, 2, ep=4)
    with pytest.raises(CometError, match="torch.distributed|process group"):
        CometMoE(16, 8, 8, 2, ep=2)
    with pytest.raises(CometError, match="global w1"):
        m.load_global_weights(torch.zeros(4, 16, 9), torch.zeros(4, 16, 8), torch.zeros(4, 8, 16))


def _ep_worker(rank, world, ep, tp, initfile, case, q):
    import torch.distributed as dist
    try:
        dist.init_process_group("gloo", init_method=f"file://{initfile}", rank=rank, world_size=world)
        gen = torch.Generator().manual_seed(1)
        t, h, f, e, k = 21, 16, 24, 8, 2
        w1 = torch.randn(e, h, f, generator=gen) * 0.3
        w3 = torch.randn(e, h, f, generator=gen) * 0.3
        w2 = torch.randn(e, f, h, generator=gen) * 0.3
        # tokens differ per EP group and are shared inside a TP group
        xs = [torch.randn(t + 3 * g, h, generator=gen) for g in range(ep)]
        ls = [make_logits(case, t + 3 * g, e, gen) for g in range(ep)]
        m = CometMoE(h, f, e, k, ep=ep, tp=tp, backend="loop", dtype=torch.float32)
        m.load_global_weights(w1, w3, w2)
        g = rank // tp
        y = m(xs[g], ls[g])
        ref = P.reference_moe(xs[g].numpy(), ls[g].numpy(), w1.numpy(), w3.numpy(), w2.numpy(), k)
        q.put((rank, rel(y, torch.from_numpy(ref))))
        dist.destroy_process_group()
    except Exception as err:  # report, never hang the parent
        q.put((rank, repr(err)))


@pytest.mark.parametrize("ep,tp,case", [(2, 1, "uniform"), (4, 1, "zipf"), (2, 2, "empty_expert"),
                                        (4, 1, "one_expert")])
def test_ep_tp_gloo(ep, tp, case):
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as d:
        init = os.path.join(d, "init")
        ps = [ctx.Process(target=_ep_worker, args=(r, ep * tp, ep, tp, init, case, q)) for r in range(ep * tp)]
        for p in ps:
            p.start()
        res = dict(q.get(timeout=120) for _ in ps)
        for p in ps:
            p.join(timeout=30)
    for r, v in res.items():
        assert isinstance(v, float), f"rank {r}: {v}"
        assert v < 1e-5, f"rank {r}: rel err {v}"


def test_from_ir_cpu():
    text = """
func.func @moe(%x: tensor<12x16xf32>, %r: tensor<16x4xf32>, %w1: tensor<4x16x8xf32>, %w3: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>) -> tensor<12x16xf32> {
  %y = comet.moe %x, %r, %w1, %w3, %w2 topk 2 experts 4 : (tensor<12x16xf32>, tensor<16x4xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<12x16xf32>
  func.return %y : tensor<12x16xf32>
}"""
    m = CometMoE.from_ir(text, backend="loop", dtype=torch.float32)
    assert (m.hidden, m.ffn, m.experts, m.topk) == (16, 8, 4, 2)
    x, lg = torch.randn(12, 16), torch.randn(12, 4)
    ref = P.reference_moe(x.numpy(), lg.numpy(), m.w1.detach().numpy(), m.w3.detach().numpy(), m.w2.detach().numpy(), 2)
    assert rel(m(x, lg), torch.from_numpy(ref)) < 1e-5
    with pytest.raises(CometError):
        CometMoE.from_ir(text, index=3)
