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
from comet_ir.backends.cuda.moe import kernels  # noqa: E402
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


def capture(m, xs, ls):
    """CUDA graph of one layer call m(xs, ls) -> (graph, its output tensor). Warm-up first on the
    current and on a side stream (handles, packed weights and scratch exist before the capture)."""
    m(xs, ls)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        m(xs, ls)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        ys = m(xs, ls)
    return g, ys


def test_cuda_graph_capture():
    if "cutlass" not in backends():
        pytest.skip("graph capture is tested on the cutlass backend (sm_90)")
    dev = torch.device("cuda")
    m = CometMoE(1024, 2048, 8, 2, backend="cutlass", device=dev)
    xs = torch.randn(256, 1024, device=dev).bfloat16()
    ls = torch.randn(256, 8, device=dev)
    g, ys = capture(m, xs, ls)
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


def _ep_problem(rank, world, initfile, ep, case):
    """One rank's view of the EP test layer: process group, the global weights (same seed on
    every rank) and every EP group's tokens (17 more per group: uneven counts) and logits."""
    import torch.distributed as dist
    # one GPU: every rank shares it (NVSHMEM PEs on one device); several: rank r on GPU r % count
    d = rank % torch.cuda.device_count()
    torch.cuda.set_device(d)
    dev = torch.device("cuda", d)
    dist.init_process_group("gloo", init_method=f"file://{initfile}", rank=rank, world_size=world)
    gen = torch.Generator(device=dev).manual_seed(3)
    t, h, f, e, k = 300, 512, 1024, 8, 2
    w1 = (torch.randn(e, h, f, generator=gen, device=dev) * h ** -0.5).bfloat16()
    w3 = (torch.randn(e, h, f, generator=gen, device=dev) * h ** -0.5).bfloat16()
    w2 = (torch.randn(e, f, h, generator=gen, device=dev) * f ** -0.5).bfloat16()
    xs = [torch.randn(t + 17 * g, h, generator=gen, device=dev).bfloat16() for g in range(ep)]
    ls = [logits_for(case, t + 17 * g, e, gen, dev) for g in range(ep)]
    return dev, (h, f, e, k), (w1, w3, w2), xs, ls


def _worker(rank, world, ep, tp, initfile, backend, case, q):
    import torch.distributed as dist
    try:
        dev, (h, f, e, k), (w1, w3, w2), xs, ls = _ep_problem(rank, world, initfile, ep, case)
        m = CometMoE(h, f, e, k, ep=ep, tp=tp, backend=backend, device=dev, transport="torch")
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


@pytest.mark.parametrize("variant", [("swiglu_pair_c21", "coop_128x256"), ("swiglu_pair_c12", "coop_128x256_c12"),
                                     ("swiglu_pair_c21", "coop_128x256_c11"), ("coop_128x256", "coop_128x256"),
                                     ("coop_128x256_c12", "coop_128x256_c11"), ("swiglu_pair_c22", "coop_128x256_c22"),
                                     ("swiglu_pair_c12", "combine_c21"), ("swiglu_pair_c12", "coop_128x128_c12"),
                                     ("swiglu_pair_c12", "coop_128x128_c12_sk2"),
                                     ("swiglu_pair_c12_gang", "coop_128x256_c12_gang_sk2"),
                                     ("swiglu_pair_c12_gang", "coop_128x256_c12_gang"),
                                     ("swiglu_pair_c12_dyn", "coop_128x256_c12_dyn_sk2"),
                                     ("swiglu_pair_c21_dyn", "coop_128x256_dyn")])
@pytest.mark.parametrize("case", ["zipf", "empty_expert"])
def test_gemm_variants(variant, case):
    if "cutlass" not in backends():
        pytest.skip("cutlass variants need sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(11)
    t, h, f, e, k = 600, 1024, 1536, 8, 2
    m = CometMoE(h, f, e, k, backend="cutlass", device=dev, gemm_variant=variant, comm_blocks=0)
    x = torch.randn(t, h, generator=gen, device=dev).bfloat16()
    lg = logits_for(case, t, e, gen, dev)
    ref = reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k)
    assert rel(m(x, lg), ref) < TOL


def test_swiglu_pair_gemm1_matches_torch():
    """GEMM1 with SwiGLU in the epilogue, alone: h == silu(x@w1) * (x@w3) per expert, every row
    and column written (output poisoned with NaN first), F not a multiple of the tile."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(5)
    h, f, e = 512, 1408 // 2 + 8, 4          # F = 712: 2F = 1424 is not a multiple of 256
    m = CometMoE(h, f, e, 2, backend="cutlass", device=dev)
    counts = [0, 300, 1, 129]
    offsets = torch.tensor([0] + list(torch.tensor(counts).cumsum(0)), device=dev)
    xs = torch.randn(sum(counts), h, generator=gen, device=dev).bfloat16()
    out = torch.full((sum(counts), f), float("nan"), device=dev, dtype=torch.bfloat16)
    m._gemm1_cutlass(xs, offsets, xs.shape[0], out)
    for g in range(e):
        a, b = int(offsets[g]), int(offsets[g + 1])
        if a == b:
            continue
        xe = xs[a:b].float()
        ref = torch.nn.functional.silu(xe @ m.w1[g].float()) * (xe @ m.w3[g].float())
        assert rel(out[a:b], ref) < TOL


@pytest.mark.parametrize("variant", ["swiglu_pair_c12", "swiglu_pair_c21", "swiglu_pair_c22", "swiglu_pair_c12_dyn"])
@pytest.mark.parametrize("comm_blocks", [4, 32])
@pytest.mark.parametrize("case", ["uniform", "zipf", "empty_expert", "one_expert", "odd_tokens"])
def test_fused_layer0_ep1(variant, comm_blocks, case):
    """The one-kernel layer0 (comm blocks gather rows + set tile flags, compute blocks wait on
    them): same function as the reference for every routing case, no timeout flagged."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(comm_blocks)
    t = 333 if case == "odd_tokens" else 700
    h, f, e, k = 1024, 2048, 8, 2
    m = CometMoE(h, f, e, k, backend="cutlass", device=dev, comm_blocks=comm_blocks,
                 gemm_variant=(variant, "coop_128x256"))
    assert m.choose_comm_blocks(t) == comm_blocks
    x = torch.randn(t, h, generator=gen, device=dev).bfloat16()
    lg = logits_for(case, t, e, gen, dev)
    y = m(x, lg)
    m.check_errors()
    assert rel(y, reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k)) < TOL


def test_fused_layer0_graph_replay():
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    dev = torch.device("cuda")
    m = CometMoE(512, 1024, 8, 2, backend="cutlass", device=dev, comm_blocks=8)
    xs = torch.randn(256, 512, device=dev).bfloat16()
    ls = torch.randn(256, 8, device=dev)
    g, ys = capture(m, xs, ls)
    for seed in (1, 2):
        gen = torch.Generator(device=dev).manual_seed(seed)
        xs.copy_(torch.randn(256, 512, generator=gen, device=dev).bfloat16())
        ls.copy_(logits_for("zipf", 256, 8, gen, dev))
        g.replay()
        torch.cuda.synchronize()
        assert rel(ys, reference_moe(xs, ls, m.w1.detach(), m.w3.detach(), m.w2.detach(), 2)) < TOL
    m.check_errors()


def test_flag_wait_is_bounded():
    """A tile whose rows never arrive (flags never set, no comm blocks) ends the kernel after
    the timeout with an error, not a hang."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    import time
    from comet_ir.backends.cuda.moe import kernels
    dev = torch.device("cuda")
    m = CometMoE(256, 256, 4, 2, backend="cutlass", device=dev, timeout_s=0.2)
    offsets = torch.tensor([0, 128, 128, 200, 256], device=dev)
    xs = torch.randn(256, 256, device=dev).bfloat16()
    h = torch.empty(256, 256, device=dev, dtype=torch.bfloat16)
    flags = torch.zeros(4 * 4, dtype=torch.int32, device=dev)
    flags[0] = 128                                     # group 0's only tile is ready, the rest never
    w13t, _ = m._pack()
    g1 = m._gemm_v("swiglu_pair_c21", 512, 256, dev)
    t0 = time.time()
    g1.run_layer0(offsets.data_ptr(), xs.data_ptr(), w13t.data_ptr(), h.data_ptr(),
                  torch.cuda.current_stream().cuda_stream, None, 0, flags.data_ptr(), 4, False,
                  m._err_buf(dev).data_ptr(), int(0.2e9))
    torch.cuda.synchronize()
    assert time.time() - t0 < 30
    with pytest.raises(CometError, match="timed out"):
        m.check_errors()
    kw = dict(backend="cutlass", device=dev)
    with pytest.raises(CometError):
        CometMoE(256, 256, 4, 2, comm_blocks=5, **kw)          # not a precompiled ratio
    with pytest.raises(CometError):
        CometMoE(256, 256, 4, 2, transport="mpi", **kw)


def _shmem_worker(rank, world, ep, tp, initfile, case, q, mode):
    import torch.distributed as dist
    try:
        dev, (h, f, e, k), (w1, w3, w2), xs, ls = _ep_problem(rank, world, initfile, ep, case)
        m = CometMoE(h, f, e, k, ep=ep, tp=tp, backend="cutlass", device=dev, transport="nvshmem",
                     max_tokens=512, timeout_s=3.0 if mode == "timeout" else 20.0)
        m.load_global_weights(w1, w3, w2)
        g = rank // tp
        if mode == "timeout":
            m._shmem_setup(dev)
            if rank == 0:
                try:
                    m(xs[g], ls[g])
                    q.put((rank, "no error"))
                except CometError as err:
                    q.put((rank, "timeout" if "timed out" in str(err) else repr(err)))
            else:
                q.put((rank, "timeout"))
            dist.barrier()
        else:
            errs = []
            for it in range(3):           # repeated calls: counters and flags carry over correctly
                y = m(xs[g], ls[g])
                errs.append(rel(y, reference_moe(xs[g], ls[g], w1, w3, w2, k)))
            q.put((rank, max(errs)))
        dist.destroy_process_group()
    except Exception as err:
        q.put((rank, repr(err)))


def _spawn(target, n, *args):
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as d:
        ps = [ctx.Process(target=target, args=(r, n, *args[:2], os.path.join(d, "init"), *args[2:-1], q, args[-1]))
              for r in range(n)]
        for p in ps:
            p.start()
        res = dict(q.get(timeout=300) for _ in ps)
        for p in ps:
            p.join(timeout=60)
    return res


@pytest.mark.parametrize("ep,tp,case", [(2, 1, "uniform"), (4, 1, "zipf"), (2, 1, "empty_expert"),
                                        (2, 2, "one_expert")])
def test_ep_nvshmem_fused(ep, tp, case):
    """EP over NVSHMEM symmetric memory with ranks as PEs sharing the GPU: counts exchange, the
    fused layer0 (comm blocks write rows into the owner's buffer + its tile flags), return."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    from comet_ir.backends.cuda.moe import kernels
    if kernels.nvshmem_root() is None:
        pytest.skip("NVSHMEM not installed")
    res = _spawn(_shmem_worker, ep * tp, ep, tp, case, "correct")
    for r, v in res.items():
        assert isinstance(v, float), f"rank {r}: {v}"
        assert v < TOL, f"rank {r}: rel err {v}"


def test_ep_nvshmem_peer_never_signals():
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    from comet_ir.backends.cuda.moe import kernels
    if kernels.nvshmem_root() is None:
        pytest.skip("NVSHMEM not installed")
    res = _spawn(_shmem_worker, 2, 2, 1, "uniform", "timeout")
    assert res == {0: "timeout", 1: "timeout"}, res


@pytest.mark.parametrize("k,e,comm_blocks,case", [(2, 8, 0, "uniform"), (1, 8, 0, "zipf"), (2, 8, 16, "one_expert"),
                                                  (2, 16, 0, "odd_tokens"), (4, 8, 0, "uniform")])
def test_combine_in_gemm2_epilogue(k, e, comm_blocks, case):
    """GEMM2 with the gate-weighted combine in its epilogue (bf16x2 atomics, top-k <= 2; top-k 4
    takes the separate combine): matches the reference, and repeated calls give identical bits
    (two adds per output element commute)."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(k * 100 + e)
    t = 333 if case == "odd_tokens" else 640
    m = CometMoE(1024, 1536, e, k, backend="cutlass", device=dev, comm_blocks=comm_blocks,
                 gemm_variant=("swiglu_pair_c12", "combine_c21"))
    assert m._fused_combine() == (k <= 2)
    x = torch.randn(t, 1024, generator=gen, device=dev).bfloat16()
    lg = logits_for(case, t, e, gen, dev)
    y1, y2 = m(x, lg), m(x, lg)
    assert torch.equal(y1, y2)
    assert rel(y1, reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k)) < TOL


@pytest.mark.parametrize("sched", [(0, -1), (1, 0), (1 << 30, 0), (2, 3)])
@pytest.mark.parametrize("scalar", [False, True])
def test_gemm1_every_tile_order_and_epilogue(sched, scalar):
    """GEMM1 + SwiGLU under the default schedule (L2 strips, light groups spread), strips of one
    N-cluster, CUTLASS's AlongM order and 'everything light', with the 16-byte and the scalar
    epilogue stores: h == silu(x@w1) * (x@w3) for every group (heavy, light, empty, 1 row, last
    tiles of 1..64 and 65..127 rows), every element written (output poisoned with NaN), 2F not a
    multiple of the tile."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(17)
    h, f, e = 512, 712, 6
    m = CometMoE(h, f, e, 2, backend="cutlass", device=dev)
    g = m._gemm_v(m._variants()[0], 2 * f, h, dev)
    g.set_schedule(*sched)
    g.set_scalar_stores(scalar)
    counts = [0, 300, 1, 129, 900, 5]
    offsets = torch.tensor([0] + list(torch.tensor(counts).cumsum(0)), device=dev)
    xs = torch.randn(sum(counts), h, generator=gen, device=dev).bfloat16()
    out = torch.full((sum(counts), f), float("nan"), device=dev, dtype=torch.bfloat16)
    m._gemm1_cutlass(xs, offsets, xs.shape[0], out)
    for j in range(e):
        a, b = int(offsets[j]), int(offsets[j + 1])
        if a < b:
            xe = xs[a:b].float()
            ref = torch.nn.functional.silu(xe @ m.w1[j].float()) * (xe @ m.w3[j].float())
            assert rel(out[a:b], ref) < TOL


@pytest.mark.parametrize("variant", ["coop_128x256_c12_sk2", "coop_128x256_c11_sk2", "coop_128x256_sk2"])
@pytest.mark.parametrize("t", [300, 2000, 5000])
def test_gemm2_split_k(variant, t):
    """GEMM2 split in two K halves when the waves say so (the device decides; plan.split_k_pays
    on the same item count is the oracle): the layer (halves added in the combine) and GEMM2
    alone (halves folded) match the references, with or without the split."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    from comet_ir.backends.cuda.moe import plan as P
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(t)
    h, f, e, k = 1024, 1536, 8, 2
    m = CometMoE(h, f, e, k, backend="cutlass", device=dev, gemm_variant=("swiglu_pair_c12", variant), comm_blocks=0)
    x = torch.randn(t, h, generator=gen, device=dev).bfloat16()
    lg = logits_for("zipf" if t == 5000 else "uniform", t, e, gen, dev)
    assert rel(m(x, lg), reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k)) < TOL
    hs = [hd for key, hd in m._gemms.items() if key[0] == variant]
    assert hs, "the split-K handle was not used"
    idx = torch.topk(lg, k, dim=-1).indices
    counts = torch.bincount(idx.reshape(-1), minlength=e).tolist()
    cm, cn = {"coop_128x256_c12_sk2": (1, 2), "coop_128x256_c11_sk2": (1, 1), "coop_128x256_sk2": (2, 1)}[variant]
    ntc = -(-(-(-h // 256)) // cn)
    items = sum(-(-(-(-c // 128)) // cm) * ntc for c in counts)
    assert hs[0].last_split() == int(P.split_k_pays(items, hs[0].schedule()[2]))
    # GEMM2 alone, halves folded
    rows = t * k
    offsets = torch.tensor([0] + list(torch.tensor(counts).cumsum(0)), device=dev)
    hh = torch.randn(rows, f, generator=gen, device=dev).bfloat16()
    y = m._gemm2_cutlass(hh, offsets, rows)
    for j in range(e):
        a, b = int(offsets[j]), int(offsets[j + 1])
        if a < b:
            assert rel(y[a:b], hh[a:b].float() @ m.w2[j].float()) < TOL


# groups: empty, 1 row, last tiles of 1..64 and 65..127 rows, several tiles
SKEW_COUNTS = [0, 300, 1, 129, 900, 5, 64, 65, 192, 256]


@pytest.mark.parametrize("counts", [
    [700, 515, 640, 900, 333, 777, 800, 600, 1300, 410, 2100, 388, 999, 512, 640, 700],  # all heavy: gang order on
    [1500, 3, 0, 260, 700, 1, 129, 900, 0, 0, 40, 2000, 7, 300, 5, 100],                # light groups: gang order off
])
def test_gang_order_bit_identical(counts):
    """The *_gang variants (row tiles sharing a weight strip packed into one wave and started
    together) compute the same tiles with the same K order as the default kernels: GEMM1 + SwiGLU
    and GEMM2 (split-K when it pays, folded) outputs are bit-identical to the default's, every row
    written (NaN-poisoned first), whether the gang order is on (all groups heavy: 3+ row tiles,
    gangs of 3..17 M-clusters, waves with holes) or off (light groups present)."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(len(counts) + counts[0])
    h, f, e = 1024, 1536, len(counts)
    m = CometMoE(h, f, e, 2, backend="cutlass", device=dev, comm_blocks=0)
    mg = CometMoE(h, f, e, 2, backend="cutlass", device=dev, comm_blocks=0,
                  gemm_variant=("swiglu_pair_c12_gang", "coop_128x256_c12_gang_sk2"))
    mg.w1, mg.w3, mg.w2, mg._packed = m.w1, m.w3, m.w2, None
    rows = sum(counts)
    offsets = torch.tensor([0] + list(torch.tensor(counts).cumsum(0)), device=dev)
    xs = torch.randn(rows, h, generator=gen, device=dev).bfloat16()
    outs = []
    for mm in (m, mg):
        hh = torch.full((rows, f), float("nan"), device=dev, dtype=torch.bfloat16)
        mm._gemm1_cutlass(xs, offsets, rows, hh)
        hs = torch.randn(rows, f, generator=torch.Generator(device=dev).manual_seed(3), device=dev).bfloat16()
        y = mm._gemm2_cutlass(hs, offsets, rows)
        outs.append((hh, y))
    assert not torch.isnan(outs[0][0]).any() and not torch.isnan(outs[0][1]).any()
    assert torch.equal(outs[0][0], outs[1][0]), "GEMM1: gang order differs from the default"
    assert torch.equal(outs[0][1], outs[1][1]), "GEMM2: gang order differs from the default"
    for j in (0, e - 1):   # and the default itself is right
        a, b = int(offsets[j]), int(offsets[j + 1])
        if a < b:
            xe = xs[a:b].float()
            ref = torch.nn.functional.silu(xe @ m.w1[j].float()) * (xe @ m.w3[j].float())
            assert rel(outs[0][0][a:b], ref) < TOL


@pytest.mark.parametrize("clusters", [("swiglu_pair_c12", "coop_128x256_c12_sk2"), ("swiglu_pair_c21", "coop_128x256_sk2")])
@pytest.mark.parametrize("counts", [
    [700, 515, 640, 900, 333, 777, 800, 600, 1300, 410, 2100, 388, 999, 512, 640, 700],  # all heavy
    [1500, 3, 0, 260, 700, 1, 129, 900, 0, 0, 40, 2000, 7, 300, 5, 100],                # light groups
    [9000, 0, 0, 1, 0, 0, 0, 0],                                                        # one expert
])
def test_dynamic_schedule_bit_identical(clusters, counts):
    """The *_dyn variants hand the same items to whichever cluster is free (a global counter, the
    item posted to the cluster's other CTAs through a mailbox) instead of round robin: every tile
    is still computed once with the same K order, so GEMM1 + SwiGLU and GEMM2 (split-K when it
    pays, folded) are bit-identical to the static schedule, every row written (NaN-poisoned
    first), under clusters 1x2 and 2x1, and again on a second call (counter and mailboxes reset
    per call) and in a replayed CUDA graph."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(len(counts) + counts[0])
    h, f, e = 1024, 1536, len(counts)
    m = CometMoE(h, f, e, 2, backend="cutlass", device=dev, comm_blocks=0, gemm_variant=clusters)
    md = CometMoE(h, f, e, 2, backend="cutlass", device=dev, comm_blocks=0,
                  gemm_variant=tuple(kernels.dynamic_variant(v) for v in clusters))
    md.w1, md.w3, md.w2, md._packed = m.w1, m.w3, m.w2, None
    rows = sum(counts)
    offsets = torch.tensor([0] + list(torch.tensor(counts).cumsum(0)), device=dev)
    xs = torch.randn(rows, h, generator=gen, device=dev).bfloat16()
    hs = torch.randn(rows, f, generator=torch.Generator(device=dev).manual_seed(3), device=dev).bfloat16()

    def both(mm):
        hh = torch.full((rows, f), float("nan"), device=dev, dtype=torch.bfloat16)
        mm._gemm1_cutlass(xs, offsets, rows, hh)
        return hh, mm._gemm2_cutlass(hs, offsets, rows)
    ref = both(m)
    assert not torch.isnan(ref[0]).any() and not torch.isnan(ref[1]).any()
    for _ in range(2):
        got = both(md)
        assert torch.equal(got[0], ref[0]), "GEMM1: dynamic schedule differs from the static one"
        assert torch.equal(got[1], ref[1]), "GEMM2: dynamic schedule differs from the static one"
    out = {}
    g = torch.cuda.CUDAGraph()
    both(md)   # warm-up outside the capture (handles, workspaces)
    with torch.cuda.graph(g):
        out["h"], out["y"] = both(md)
    for _ in range(2):
        out["h"].fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(out["h"], ref[0]) and torch.equal(out["y"], ref[1])


def test_swiglu_tanh_epilogue():
    """GEMM1's SwiGLU through tanh.approx (one MUFU op per value): every row and column written
    (NaN-poisoned output), within bf16 tolerance of the float32 reference and within a few bf16
    roundings of the ex2 + rcp form, under every cluster shape."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(23)
    hd, f, e = 512, 712, len(SKEW_COUNTS)
    counts = SKEW_COUNTS
    rows = sum(counts)
    offsets = torch.tensor([0] + list(torch.tensor(counts).cumsum(0)), device=dev)
    for variant in ("swiglu_pair_c12", "swiglu_pair_c21", "swiglu_pair_c22"):
        m = CometMoE(hd, f, e, 2, backend="cutlass", device=dev, gemm_variant=(variant, "coop_128x256_c12"))
        a = torch.randn(rows, hd, generator=gen, device=dev).bfloat16()
        g = m._gemm_v(variant, 2 * f, hd, dev)
        outs = []
        for tanh in (False, True):
            g.set_silu_tanh(tanh)
            out = torch.full((rows, f), float("nan"), device=dev, dtype=torch.bfloat16)
            m._gemm1_cutlass(a, offsets, rows, out)
            outs.append(out)
        assert rel(outs[1], outs[0].float()) < 4e-3
        for j in range(e):
            lo, hi = int(offsets[j]), int(offsets[j + 1])
            if lo < hi:
                x = a[lo:hi].float()
                ref = torch.nn.functional.silu(x @ m.w1[j].float()) * (x @ m.w3[j].float())
                assert rel(outs[1][lo:hi], ref) < TOL


def test_cta_profile_counts_every_tile():
    """The CTA timing profile: each CTA's tile count sums to the schedule's CTA tiles
    (plan.tile_schedule items x cluster size), every CTA with tiles ends after it starts."""
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")
    from comet_ir.backends.cuda.moe import plan as P
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(29)
    hd, f, e = 512, 712, len(SKEW_COUNTS)
    m = CometMoE(hd, f, e, 2, backend="cutlass", device=dev, gemm_variant=("swiglu_pair_c12", "coop_128x256_c12"))
    counts = SKEW_COUNTS
    rows = sum(counts)
    offsets = torch.tensor([0] + list(torch.tensor(counts).cumsum(0)), device=dev)
    a = torch.randn(rows, hd, generator=gen, device=dev).bfloat16()
    g = m._gemm_v("swiglu_pair_c12", 2 * f, hd, dev)
    clusters = g.schedule()[2]
    prof = torch.zeros(3 * 2 * clusters, dtype=torch.int64, device=dev)
    g.set_profile(prof.data_ptr())
    m._gemm1_cutlass(a, offsets, rows)
    g.set_profile(0)
    p = prof.view(-1, 3).cpu()
    items = P.tile_schedule(counts, 2 * f, cluster=(1, 2)).items
    assert int(p[:, 2].sum()) == 2 * items
    busy = p[p[:, 2] > 0]
    assert (busy[:, 1] > busy[:, 0]).all() and (busy[:, 0] > 0).all()
