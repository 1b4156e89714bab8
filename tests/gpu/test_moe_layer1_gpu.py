"""The one-kernel layer1 (csrc/moe_layer1.cu: GEMM2 whose comm CTAs return finished column tiles
while the next ones compute, combine waiting per column tile) on an sm_90 GPU: EP=1 routing
cases against the float32 torch reference and against the unfused layer1, CUDA-graph capture,
the bounded waits, EP=2/4 and EP2xTP2 with ranks as NVSHMEM PEs sharing the GPU, and a peer
that never calls (an error, not a hang). Tolerance as tests/gpu/test_moe_gpu.py (rel L2 <= 1e-2)."""
import time

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

from test_moe_gpu import TOL, _ep_problem, _spawn, backends, capture, logits_for, rel  # noqa: E402

from comet_ir.backends.cuda.moe.module import CometMoE, reference_moe  # noqa: E402
from comet_ir.errors import CometError  # noqa: E402


def _need_sm90():
    if "cutlass" not in backends():
        pytest.skip("needs sm_90")


@pytest.mark.parametrize("case,t,cb0,cb1,k,e", [
    ("uniform", 512, 0, 4, 2, 8), ("zipf", 512, 8, 16, 2, 8), ("empty_expert", 512, 0, 8, 2, 8),
    ("one_expert", 512, 16, 32, 2, 8), ("odd_tokens", 333, 0, 4, 2, 8), ("uniform", 700, 0, 8, 1, 8),
    ("zipf", 450, 8, 8, 4, 16)])
def test_layer1_fused_ep1(case, t, cb0, cb1, k, e):
    """Fused layer1 at ep == 1 (the return is a local copy): equals the reference and the unfused
    layer1 up to bf16 rounding, every output element written
    (outputs start as torch.empty: unwritten garbage would show), no timeout."""
    _need_sm90()
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(t + 13 * cb1 + k)
    h, f = 1024, 1536
    m = CometMoE(h, f, e, k, backend="cutlass", device=dev, comm_blocks=cb0, layer1_comm_blocks=cb1)
    assert m.choose_layer1_comm_blocks(t) == cb1
    x = torch.randn(t, h, generator=gen, device=dev).bfloat16()
    lg = logits_for(case, t, e, gen, dev)
    y = m(x, lg)
    m.check_errors()
    ref = reference_moe(x, lg, m.w1.detach(), m.w3.detach(), m.w2.detach(), k)
    assert rel(y, ref) < TOL
    m.layer1_comm_blocks = 0
    y0 = m(x, lg)
    # The unfused GEMM2 may split K (csrc: decided by the waves), each half rounded to bf16 and
    # the halves summed in fp32; the fused one rounds the whole sum once. Both outputs then round
    # to bf16 again, so they differ by rounding alone: at most ~2 units of bf16's 2^-8 relative.
    assert rel(y, y0) < 2 * 2.0 ** -8


def test_layer1_fused_graph_capture():
    """The fused layer1 path has no host sync: captured once, replayed on new inputs and routings."""
    _need_sm90()
    dev = torch.device("cuda")
    m = CometMoE(1024, 2048, 8, 2, backend="cutlass", device=dev, comm_blocks=8, layer1_comm_blocks=8)
    xs = torch.randn(256, 1024, device=dev).bfloat16()
    ls = torch.randn(256, 8, device=dev)
    g, ys = capture(m, xs, ls)
    for case in ("uniform", "zipf", "one_expert", "empty_expert"):
        gen = torch.Generator(device=dev).manual_seed(11)
        xs.copy_(torch.randn(256, 1024, generator=gen, device=dev).bfloat16())
        ls.copy_(logits_for(case, 256, 8, gen, dev))
        g.replay()
        torch.cuda.synchronize()
        assert rel(ys, reference_moe(xs, ls, m.w1.detach(), m.w3.detach(), m.w2.detach(), 2)) < TOL
    m.check_errors()


def test_layer1_waits_are_bounded():
    """(a) the combine waits for rows that never come (signals stay 0): error 5 after the timeout;
    (b) the comm CTAs wait for a column tile whose GEMM never finishes it (a group claims more rows
    than the problem's offsets give the GEMM): error 4. Both end, neither hangs."""
    _need_sm90()
    from comet_ir.backends.cuda.moe.layer1 import L1Comm
    dev = torch.device("cuda")
    m = CometMoE(512, 256, 4, 2, backend="cutlass", device=dev, timeout_s=0.2, layer1_comm_blocks=4)
    l1 = m._l1(dev)
    s = torch.cuda.current_stream().cuda_stream
    err = m._err_buf(dev)
    T, k, H = 64, 2, 512
    counts = torch.tensor([40, 40, 0, 48], dtype=torch.int32, device=dev)
    ret = torch.randn(T * k, H, device=dev).bfloat16()
    gates = torch.rand(T, k, device=dev)
    sig = torch.zeros(l1.nt, dtype=torch.int32, device=dev)
    out = torch.empty(T, H, dtype=torch.bfloat16, device=dev)
    t0 = time.time()
    l1.combine(ret.data_ptr(), None, gates.data_ptr(), out.data_ptr(), T, k, sig.data_ptr(), counts.data_ptr(), 4, 1,
               False, err.data_ptr(), int(0.2e9), s)
    torch.cuda.synchronize()
    assert time.time() - t0 < 30
    with pytest.raises(CometError, match="timed out.*layer1 rows"):
        m.check_errors()
    # the GEMM sees group 0 with 8 rows (offsets), the comm CTAs wait for 40 (recv_off claims 40)
    offsets = torch.tensor([0, 8, 8, 8, 8], device=dev)
    recv_off = torch.tensor([0, 40, 40, 40, 40], device=dev)
    hbuf = torch.randn(64, 256, device=dev).bfloat16()
    y = torch.empty(64, H, dtype=torch.bfloat16, device=dev)
    c = L1Comm(y=y.data_ptr(), recv_off=recv_off.data_ptr(), counts=counts.data_ptr(), send_off=recv_off.data_ptr(),
               perm=torch.arange(64, device=dev).data_ptr(), err=err.data_ptr(), timeout_ns=int(0.2e9), vec=H // 8,
               experts=4, ep=1, me=0, sys_scope=0)
    c.peer_ret[0], c.peer_sig[0] = ret.data_ptr(), sig.data_ptr()
    _, w2t = m._pack()
    t0 = time.time()
    l1.run(offsets.data_ptr(), hbuf.data_ptr(), w2t.data_ptr(), y.data_ptr(), c, 4, s)
    torch.cuda.synchronize()
    assert time.time() - t0 < 30
    with pytest.raises(CometError, match="timed out.*GEMM2 tile"):
        m.check_errors()
    with pytest.raises(CometError):
        l1.run(offsets.data_ptr(), hbuf.data_ptr(), w2t.data_ptr(), y.data_ptr(), c, 3, s)   # not whole clusters
    with pytest.raises(CometError):
        CometMoE(512, 256, 4, 2, backend="cutlass", device=dev, layer1_comm_blocks=6)   # not a precompiled ratio


def _l1_worker(rank, world, ep, tp, initfile, case, q, mode):
    import torch.distributed as dist
    try:
        dev, (h, f, e, k), (w1, w3, w2), xs, ls = _ep_problem(rank, world, initfile, ep, case)
        m = CometMoE(h, f, e, k, ep=ep, tp=tp, backend="cutlass", device=dev, transport="nvshmem",
                     max_tokens=512, timeout_s=3.0 if mode == "timeout" else 20.0, layer1_comm_blocks=8)
        m.load_global_weights(w1, w3, w2)
        g = rank // tp
        if mode == "timeout":
            m._shmem_setup(dev)
            m._l1_sig(m._shmem)
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
            for it in range(3):           # repeated calls: signals, counters and buffers reused
                y = m(xs[g], ls[g])
                errs.append(rel(y, reference_moe(xs[g], ls[g], w1, w3, w2, k)))
            q.put((rank, max(errs)))
        dist.destroy_process_group()
    except Exception as err:
        q.put((rank, repr(err)))


def _need_nvshmem():
    _need_sm90()
    from comet_ir.backends.cuda.moe import kernels
    if kernels.nvshmem_root() is None:
        pytest.skip("NVSHMEM not installed")


@pytest.mark.parametrize("ep,tp,case", [(2, 1, "uniform"), (4, 1, "zipf"), (2, 1, "empty_expert"),
                                        (2, 2, "one_expert")])
def test_layer1_fused_ep_shared_gpu(ep, tp, case):
    """EP over NVSHMEM with ranks as PEs sharing the GPU; token counts 300 + 17 g (not tile multiples)."""
    _need_nvshmem()
    res = _spawn(_l1_worker, ep * tp, ep, tp, case, "correct")
    for r, v in res.items():
        assert isinstance(v, float), f"rank {r}: {v}"
        assert v < TOL, f"rank {r}: rel err {v}"


def test_layer1_fused_ep_peer_never_calls():
    _need_nvshmem()
    res = _spawn(_l1_worker, 2, 2, 1, "uniform", "timeout")
    assert res == {0: "timeout", 1: "timeout"}, res
