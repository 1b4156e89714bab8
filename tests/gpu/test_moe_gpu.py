"""CometMoE on a CUDA GPU (sm_90 for the cutlass backend): correctness against a float32 torch
reference for the routing cases, top-k 1..8 / 256 experts, CUDA-graph capture, EP=2/4 and
EP2xTP2 with several ranks sharing the GPU (gloo), bad input. Skipped without a GPU.

Tolerance: relative L2 error vs the float32 reference <= 1e-2 (bf16 operands and bf16
intermediates, as METHOD.md states for bf16), and no NaN."""
import os
import tempfile

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

from comet_ir.backends.cuda.moe.module import CometMoE, reference_moe  # noqa: E402
from comet_ir.errors import CometError  # noqa: E402

TOL = 1e-2


def rel(a, b):
    a, b = a.double(), b.double()
    assert not torch.isnan(a).any()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def backends():
    out = ["grouped_mm"] if hasattr(torch, "_grouped_mm") else []
    if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9:
        out.insert(0, "cutlass")
    return out or ["loop"]


def logits_for(case, t, e, gen, dev):
    lg = torch.randn(t, e, generator=gen, device=dev)
    if case == "zipf":
        lg += torch.log(1.0 / torch.arange(1, e + 1, device=dev, dtype=torch.float32) ** 1.2) * 3
    elif case == "empty_expert":
        lg[:, 2] = -1e4
    elif case == "one_expert":
        lg[:, 5] = 1e4
    return lg


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("case", ["uniform", "zipf", "empty_expert", "one_expert", "odd_tokens"])
def test_ep1_cases(backend, case):
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    t = 333 if case == "odd_tokens" else 512
    h, f, e, k = 1024, 2048, 8, 2
    m = CometMoE(h, f, e, k, backend=backend, device=dev)
    x = torch.randn(t, h, generator=gen, device=dev).bfloat16()
    lg = logits_for(case, t, e, gen, dev)
    y = m(x, lg)
    ref = reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k)
    assert rel(y, ref) < TOL


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("k,e", [(1, 8), (4, 16), (8, 8), (8, 256), (6, 64)])
def test_topk_experts(backend, k, e):
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(k * 1000 + e)
    m = CometMoE(512, 256, e, k, backend=backend, device=dev)
    x = torch.randn(1000, 512, generator=gen, device=dev).bfloat16()
    lg = torch.randn(1000, e, generator=gen, device=dev)
    ref = reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k)
    assert rel(m(x, lg), ref) < TOL


def test_cuda_graph_capture():
    if "cutlass" not in backends():
        pytest.skip("graph capture is tested on the cutlass backend (sm_90)")
    dev = torch.device("cuda")
    m = CometMoE(1024, 2048, 8, 2, backend="cutlass", device=dev)
    xs = torch.randn(256, 1024, device=dev).bfloat16()
    ls = torch.randn(256, 8, device=dev)
    m(xs, ls)  # warm-up: build handles and packed weights outside the capture
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        m(xs, ls)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        ys = m(xs, ls)
    for case in ("uniform", "zipf", "one_expert"):
        gen = torch.Generator(device=dev).manual_seed(7)
        xs.copy_(torch.randn(256, 1024, generator=gen, device=dev).bfloat16())
        ls.copy_(logits_for(case, 256, 8, gen, dev))
        g.replay()
        torch.cuda.synchronize()
        assert rel(ys, m(xs, ls)) < 1e-6
        assert rel(ys, reference_moe(xs, ls, m.w1.detach(), m.w3.detach(), m.w2.detach(), 2)) < TOL


def test_bad_input_gpu():
    dev = torch.device("cuda")
    m = CometMoE(256, 256, 8, 2, device=dev)
    with pytest.raises(CometError):
        m(torch.zeros(0, 256, device=dev).bfloat16(), torch.zeros(0, 8, device=dev))
    with pytest.raises(CometError):
        m(torch.zeros(4, 256, device=dev), torch.zeros(4, 8, device=dev))          # fp32 x
    with pytest.raises(CometError):
        m(torch.zeros(4, 256).bfloat16(), torch.zeros(4, 8))                        # CPU tensors
    with pytest.raises(CometError):
        m(torch.zeros(4, 256, device=dev).bfloat16(), torch.zeros(5, 8, device=dev))


def _worker(rank, world, ep, tp, initfile, backend, case, q):
    import torch.distributed as dist
    try:
        torch.cuda.set_device(0)
        dev = torch.device("cuda", 0)
        dist.init_process_group("gloo", init_method=f"file://{initfile}", rank=rank, world_size=world)
        gen = torch.Generator(device=dev).manual_seed(3)
        t, h, f, e, k = 300, 512, 1024, 8, 2
        w1 = (torch.randn(e, h, f, generator=gen, device=dev) * h ** -0.5).bfloat16()
        w3 = (torch.randn(e, h, f, generator=gen, device=dev) * h ** -0.5).bfloat16()
        w2 = (torch.randn(e, f, h, generator=gen, device=dev) * f ** -0.5).bfloat16()
        xs = [torch.randn(t + 17 * g, h, generator=gen, device=dev).bfloat16() for g in range(ep)]
        ls = [logits_for(case, t + 17 * g, e, gen, dev) for g in range(ep)]
        m = CometMoE(h, f, e, k, ep=ep, tp=tp, backend=backend, device=dev)
        m.load_global_weights(w1, w3, w2)
        g = rank // tp
        y = m(xs[g], ls[g])
        q.put((rank, rel(y, reference_moe(xs[g], ls[g], w1, w3, w2, k))))
        dist.destroy_process_group()
    except Exception as err:
        q.put((rank, repr(err)))


@pytest.mark.parametrize("ep,tp,case", [(2, 1, "uniform"), (4, 1, "zipf"), (4, 1, "empty_expert"),
                                        (2, 2, "one_expert")])
def test_ep_shared_gpu(ep, tp, case):
    import torch.multiprocessing as mp
    backend = backends()[0]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as d:
        ps = [ctx.Process(target=_worker, args=(r, ep * tp, ep, tp, os.path.join(d, "init"), backend, case, q))
              for r in range(ep * tp)]
        for p in ps:
            p.start()
        res = dict(q.get(timeout=300) for _ in ps)
        for p in ps:
            p.join(timeout=60)
    for r, v in res.items():
        assert isinstance(v, float), f"rank {r}: {v}"
        assert v < TOL, f"rank {r}: rel err {v}"


@pytest.mark.parametrize("e,k", [(8, 2), (64, 6), (256, 8), (3, 3)])
def test_fused_route_dispatch(e, k):
    if "cutlass" not in backends():
        pytest.skip("fused route kernels ship with the sm_90 library")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(e + k)
    T, H = 777, 256
    m = CometMoE(H, 256, e, k, backend="cutlass", device=dev)
    x = torch.randn(T, H, generator=gen, device=dev).bfloat16()
    lg = torch.randn(T, e, generator=gen, device=dev)
    xs, inv, gates, offsets = m._route_dispatch_fused(x, lg)
    from comet_ir.backends.cuda.moe.module import route as troute
    idx_t, g_t = troute(lg, k)
    counts = torch.bincount(idx_t.reshape(-1), minlength=e)
    assert torch.equal(offsets[1:] - offsets[:-1], counts)
    assert torch.allclose(gates, g_t, rtol=1e-5, atol=1e-6)
    assert sorted(inv.tolist()) == list(range(T * k))
    tok = torch.arange(T * k, device=dev) // k
    assert torch.equal(xs[inv], x[tok])                          # every (token, slot) row landed
    rows_expert = torch.repeat_interleave(torch.arange(e, device=dev), counts)
    assert torch.equal(rows_expert[inv], idx_t.reshape(-1))      # ...in its expert's segment
    lg[0, :] = float("nan")                                      # NaN logits: no crash, no OOB
    m._route_dispatch_fused(x, lg)
    torch.cuda.synchronize()


@pytest.mark.parametrize("variant", ["coop_256x128", "coop_128x256_c12", "coop_128x256_c11", "pingpong_128x128",
                                     ("swiglu_evt_128x256", "coop_128x256"), ("swiglu_evt_128x256", "coop_256x128")])
@pytest.mark.parametrize("case", ["zipf", "empty_expert"])
def test_gemm_variants(variant, case):
    if "cutlass" not in backends():
        pytest.skip("cutlass variants need sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(11)
    t, h, f, e, k = 600, 1024, 1536, 8, 2
    m = CometMoE(h, f, e, k, backend="cutlass", device=dev, gemm_variant=variant)
    x = torch.randn(t, h, generator=gen, device=dev).bfloat16()
    lg = logits_for(case, t, e, gen, dev)
    ref = reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k)
    assert rel(m(x, lg), ref) < TOL
