"""`CometMoE`: a Mixtral-style MoE layer (SwiGLU experts) as a `torch.nn.Module`.

    layer = CometMoE(hidden=4096, ffn=14336, experts=8, topk=2, ep=1, tp=1).cuda()
    y = layer(x, router_logits)            # x [T, H] bf16, router_logits [T, E] -> y [T, H]

Structure (Comet, arXiv 2502.19811; the IR of `comet-lower-moe`):
  route    softmax over E (fp32), top-k, renormalise             (cometmoe.route)
  layer0   dispatch (permutation gather; all-to-all with ep > 1) + grouped GEMM1 over
           [w1 | w3] + SwiGLU                                     (cometmoe.layer0, split M)
  layer1   grouped GEMM2 + combine (return, gate-weight, sum over k)  (cometmoe.layer1, split N)
Backends for the expert GEMMs: "cutlass" (our CUTLASS Hopper grouped GEMM via ctypes; no host
sync, CUDA-graph capturable with ep == tp == 1), "grouped_mm" (`torch._grouped_mm`), "loop"
(per-expert matmuls; syncs for the counts). "auto" takes cutlass when the library loads on an
sm_90 device, else grouped_mm, else loop.

Parallelism: world = ep * tp ranks of `group` (torch.distributed); rank r has ep_rank = r // tp
and tp_rank = r % tp; it holds experts [ep_rank*E/ep, (ep_rank+1)*E/ep) and ffn columns
[tp_rank*F/tp, (tp_rank+1)*F/tp). Ranks of one TP group see the same tokens; tokens are
dispatched between the ranks with the same tp_rank (all-to-all of rows, expert-major on
arrival), partial outputs are all-reduced across the TP group. With a gloo group (several
ranks sharing one GPU, for testing) the collectives stage through host memory.
Weights are parameters w1/w3 [E/ep, H, F/tp], w2 [E/ep, F/tp, H] (global layout sliced);
`load_global_weights` fills them from the full tensors.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from comet_ir.backends.cuda.moe.plan import MAX_EXPERTS, MAX_TOPK, check_config
from comet_ir.errors import CometError

BACKENDS = ("auto", "cutlass", "grouped_mm", "loop")


def route(logits: torch.Tensor, topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixtral routing: (idx [T,k] int64, gates [T,k] fp32). Same function as plan.route."""
    p = torch.softmax(logits.float(), dim=-1)
    g, idx = torch.topk(p, topk, dim=-1, sorted=True)
    return idx, g / g.sum(dim=-1, keepdim=True)


def permutation(idx: torch.Tensor, experts: int):
    """(perm, inv, counts, offsets) as in plan.permute, on the device, no host sync."""
    flat = idx.reshape(-1)
    _, perm = torch.sort(flat, stable=True)
    inv = torch.empty_like(perm)
    inv.scatter_(0, perm, torch.arange(perm.numel(), device=perm.device))
    counts = torch.zeros(experts, dtype=torch.int64, device=flat.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat))
    offsets = torch.zeros(experts + 1, dtype=torch.int64, device=flat.device)
    torch.cumsum(counts, 0, out=offsets[1:])
    return perm, inv, counts, offsets


def reference_moe(x, logits, w1, w3, w2, topk: int, dtype=torch.float32):
    """Plain torch layer (route, permute, per-expert loop, weighted combine) in `dtype`."""
    T, H = x.shape
    idx, gates = route(logits, topk)
    xd = x.to(dtype)
    out = torch.zeros(T, H, dtype=torch.float32, device=x.device)
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=w1.shape[0]).tolist()
    tok = order // topk
    gate = gates.reshape(-1)[order]
    start = 0
    for e, c in enumerate(counts):
        if c:
            t = tok[start:start + c]
            xe = xd[t]
            h = F.silu(xe @ w1[e].to(dtype)) * (xe @ w3[e].to(dtype))
            y = (h @ w2[e].to(dtype)).float() * gate[start:start + c, None]
            out.index_add_(0, t, y)
        start += c
    return out


class CometMoE(nn.Module):
    def __init__(self, hidden: int, ffn: int, experts: int, topk: int, *, ep: int = 1, tp: int = 1,
                 group=None, backend: str = "auto", dtype=torch.bfloat16, device=None,
                 gemm_variant: str = "coop_128x256"):
        super().__init__()
        check_config(1, hidden, ffn, experts, topk, ep, tp)
        if backend not in BACKENDS:
            raise CometError(f"moe: unknown backend {backend!r} (one of {BACKENDS})")
        if dtype != torch.bfloat16 and backend == "cutlass":
            raise CometError("moe: the cutlass backend supports bfloat16 only")
        self.hidden, self.ffn, self.experts, self.topk, self.ep, self.tp = hidden, ffn, experts, topk, ep, tp
        self.group = group
        world = ep * tp
        if world > 1:
            import torch.distributed as dist
            if not dist.is_initialized():
                raise CometError(f"moe: ep*tp={world} needs an initialised torch.distributed group")
            if dist.get_world_size(group) != world:
                raise CometError(f"moe: ep*tp={world} but the process group has {dist.get_world_size(group)} ranks")
            self.rank = dist.get_rank(group)
        else:
            self.rank = 0
        self.ep_rank, self.tp_rank = divmod(self.rank, tp)
        self.epr, self.fl = experts // ep, ffn // tp
        kw = dict(dtype=dtype, device=device)
        self.w1 = nn.Parameter(torch.empty(self.epr, hidden, self.fl, **kw))
        self.w3 = nn.Parameter(torch.empty(self.epr, hidden, self.fl, **kw))
        self.w2 = nn.Parameter(torch.empty(self.epr, self.fl, hidden, **kw))
        for w in (self.w1, self.w3, self.w2):
            nn.init.normal_(w, std=w.shape[1] ** -0.5)
        self.backend_req = backend
        self.gemm_variant = gemm_variant
        self._packed = None
        self._gemms = {}
        self._subgroups = None

    @classmethod
    def from_ir(cls, module, index: int = 0, **kw) -> "CometMoE":
        """Build the layer described by the index-th MoE op of `module` (a ModuleOp or MLIR
        text; `comet.moe` or the cometmoe ops of `comet-lower-moe`). Keyword arguments (group,
        backend, device, ...) pass through; ep/tp come from the IR."""
        from comet_ir.backends.cuda.moe.from_ir import moe_configs
        if isinstance(module, str):
            from comet_ir.api import parse_module
            module, _ = parse_module(module)
        cfgs = moe_configs(module)
        if not cfgs:
            raise CometError("moe: the module has no comet.moe / cometmoe.layer0 op")
        if not 0 <= index < len(cfgs):
            raise CometError(f"moe: layer index {index} out of range ({len(cfgs)} MoE layers)")
        c = cfgs[index]
        layer = cls(c.hidden, c.ffn, c.experts, c.topk, ep=c.ep, tp=c.tp, **kw)
        layer.ir_config = c
        return layer

    # ------------------------------------------------------------------ weights
    @torch.no_grad()
    def load_global_weights(self, w1, w3, w2) -> None:
        E, H, Fg = self.experts, self.hidden, self.ffn
        for n, w, s in (("w1", w1, (E, H, Fg)), ("w3", w3, (E, H, Fg)), ("w2", w2, (E, Fg, H))):
            if tuple(w.shape) != s:
                raise CometError(f"moe: global {n} must be {s}, got {tuple(w.shape)}")
        e0, f0 = self.ep_rank * self.epr, self.tp_rank * self.fl
        self.w1.copy_(w1[e0:e0 + self.epr, :, f0:f0 + self.fl])
        self.w3.copy_(w3[e0:e0 + self.epr, :, f0:f0 + self.fl])
        self.w2.copy_(w2[e0:e0 + self.epr, f0:f0 + self.fl, :])
        self._packed = None

    def _pack(self):
        ver = (self.w1._version, self.w3._version, self.w2._version, self.w1.data_ptr())
        if self._packed is None or self._packed[0] != ver:
            with torch.no_grad():
                w13t = torch.cat([self.w1, self.w3], dim=2).transpose(1, 2).contiguous()  # [E, 2F, H]
                w2t = self.w2.transpose(1, 2).contiguous()                               # [E, H, F]
            self._packed = (ver, w13t, w2t)
        return self._packed[1], self._packed[2]

    # ------------------------------------------------------------------ backend
    def backend(self, device) -> str:
        if self.backend_req != "auto":
            return self.backend_req
        if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] == 9 \
                and self.hidden % 8 == 0 and self.fl % 8 == 0:
            try:
                from comet_ir.backends.cuda.moe import kernels
                kernels.load()
                return "cutlass"
            except Exception:
                pass
        return "grouped_mm" if hasattr(torch, "_grouped_mm") and device.type == "cuda" else "loop"

    def _gemm(self, which, n, k, device):
        v = self.gemm_variant if isinstance(self.gemm_variant, str) else self.gemm_variant[which]
        if v.startswith("swiglu"):
            v = "coop_128x256"
        return self._gemm_v(v, n, k, device)

    def _gemm_v(self, v, n, k, device):
        key = (v, n, k, device.index)
        if key not in self._gemms:
            from comet_ir.backends.cuda.moe.kernels import GroupedGemm
            self._gemms[key] = GroupedGemm(self.epr, n, k, device.index or 0, v)
        return self._gemms[key]

    def experts_forward(self, xs: torch.Tensor, offsets: torch.Tensor, backend: str) -> torch.Tensor:
        """Grouped SwiGLU experts on rows grouped by local expert (offsets [E/ep + 1])."""
        rows = xs.shape[0]
        w13t, w2t = self._pack()
        if backend == "cutlass":
            from comet_ir.backends.cuda.moe import kernels
            lib = kernels.load()
            s = torch.cuda.current_stream(xs.device).cuda_stream
            h = torch.empty(rows, self.fl, dtype=xs.dtype, device=xs.device)
            y = torch.empty(rows, self.hidden, dtype=xs.dtype, device=xs.device)
            if rows:
                offs = offsets.contiguous()
                v1 = self.gemm_variant if isinstance(self.gemm_variant, str) else self.gemm_variant[0]
                H, Fl = self.hidden, self.fl
                if v1.startswith("swiglu"):
                    # up = x @ w3 (plain), then h = silu(x @ w1) * up in the GEMM epilogue
                    u = torch.empty(rows, Fl, dtype=xs.dtype, device=xs.device)
                    up = self._gemm_v("coop_128x256", Fl, H, xs.device)
                    up.run(offs.data_ptr(), xs.data_ptr(), w13t.data_ptr() + Fl * H * w13t.element_size(), u.data_ptr(), s,
                           b_group_stride=2 * Fl * H)
                    self._gemm_v(v1, Fl, H, xs.device).run(offs.data_ptr(), xs.data_ptr(), w13t.data_ptr(), h.data_ptr(), s,
                                                           c_ptr=u.data_ptr(), b_group_stride=2 * Fl * H)
                else:
                    g = torch.empty(rows, 2 * Fl, dtype=xs.dtype, device=xs.device)
                    self._gemm(0, 2 * Fl, H, xs.device).run(offs.data_ptr(), xs.data_ptr(), w13t.data_ptr(), g.data_ptr(), s)
                    kernels.check(lib.moe_swiglu(g.data_ptr(), h.data_ptr(), rows, Fl, s), "swiglu")
                self._gemm(1, H, Fl, xs.device).run(offs.data_ptr(), h.data_ptr(), w2t.data_ptr(), y.data_ptr(), s)
            return y
        if backend == "grouped_mm":
            offs = offsets[1:].to(torch.int32)
            g = torch._grouped_mm(xs, w13t.transpose(1, 2), offs=offs)
            h = F.silu(g[:, :self.fl]) * g[:, self.fl:]
            return torch._grouped_mm(h, w2t.transpose(1, 2), offs=offs)
        y = torch.empty(rows, self.hidden, dtype=xs.dtype, device=xs.device)
        off = offsets.tolist()
        for e in range(self.epr):
            a, b = off[e], off[e + 1]
            if a < b:
                gg = xs[a:b] @ w13t[e].t()
                y[a:b] = (F.silu(gg[:, :self.fl]) * gg[:, self.fl:]) @ w2t[e].t()
        return y

    # ------------------------------------------------------------------ forward
    def _validate(self, x, logits):
        if not isinstance(x, torch.Tensor) or not isinstance(logits, torch.Tensor):
            raise CometError("moe: x and router_logits must be tensors")
        if x.dim() != 2 or x.shape[1] != self.hidden:
            raise CometError(f"moe: x must be [tokens, {self.hidden}], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise CometError("moe: x has 0 tokens")
        if logits.dim() != 2 or tuple(logits.shape) != (x.shape[0], self.experts):
            raise CometError(f"moe: router_logits must be [{x.shape[0]}, {self.experts}], got {tuple(logits.shape)}")
        if x.dtype != self.w1.dtype:
            raise CometError(f"moe: x dtype {x.dtype} does not match the weights' {self.w1.dtype}")
        if not logits.dtype.is_floating_point:
            raise CometError(f"moe: router_logits must be floating point, got {logits.dtype}")
        if x.device != self.w1.device or logits.device != x.device:
            raise CometError(f"moe: x ({x.device}), router_logits ({logits.device}) and weights ({self.w1.device}) "
                             "must be on one device")

    def forward(self, x: torch.Tensor, router_logits: torch.Tensor) -> torch.Tensor:
        self._validate(x, router_logits)
        backend = self.backend(x.device)
        T = x.shape[0]
        x = x.contiguous()
        if self.ep == 1 and backend == "cutlass":
            xs, inv, gates, offsets = self._route_dispatch_fused(x, router_logits)
            ys = self.experts_forward(xs, offsets, backend)
        elif self.ep == 1:
            idx, gates = route(router_logits, self.topk)
            perm, inv, counts, offsets = permutation(idx, self.experts)
            ys = self.experts_forward(self._gather(x, perm, backend), offsets, backend)
        else:
            idx, gates = route(router_logits, self.topk)
            ys, inv = self._ep_forward(x, idx, backend)
        out = self._combine(ys, inv, gates, T, backend)
        if self.tp > 1:
            out = self._allreduce_tp(out)
        return out

    def _route_dispatch_fused(self, x, logits):
        """route + permutation + gather in three kernel launches (moe_route_dispatch)."""
        from comet_ir.backends.cuda.moe import kernels
        T, k, E, dev = x.shape[0], self.topk, self.experts, x.device
        lg = logits.float().contiguous()
        idx = torch.empty(T, k, dtype=torch.int64, device=dev)
        gates = torch.empty(T, k, dtype=torch.float32, device=dev)
        scratch = torch.empty(2 * E, dtype=torch.int32, device=dev)
        offsets = torch.empty(E + 1, dtype=torch.int64, device=dev)
        perm = torch.empty(T * k, dtype=torch.int64, device=dev)
        inv = torch.empty(T * k, dtype=torch.int64, device=dev)
        xs = torch.empty(T * k, self.hidden, dtype=x.dtype, device=dev)
        kernels.check(kernels.load().moe_route_dispatch(
            lg.data_ptr(), x.data_ptr(), T, self.hidden, E, k, idx.data_ptr(), gates.data_ptr(), scratch.data_ptr(),
            offsets.data_ptr(), perm.data_ptr(), inv.data_ptr(), xs.data_ptr(),
            torch.cuda.current_stream(dev).cuda_stream), "route/dispatch")
        return xs, inv, gates, offsets

    def _gather(self, x, perm, backend):
        if backend == "cutlass":
            from comet_ir.backends.cuda.moe import kernels
            xs = torch.empty(perm.numel(), self.hidden, dtype=x.dtype, device=x.device)
            kernels.check(kernels.load().moe_gather(x.data_ptr(), perm.data_ptr(), xs.data_ptr(), perm.numel(),
                                                    self.hidden, self.topk, torch.cuda.current_stream(x.device).cuda_stream),
                          "gather")
            return xs
        return x.index_select(0, perm // self.topk)

    def _combine(self, ys, inv, gates, T, backend):
        if backend == "cutlass":
            from comet_ir.backends.cuda.moe import kernels
            out = torch.empty(T, self.hidden, dtype=ys.dtype, device=ys.device)
            g = gates.contiguous().float()
            kernels.check(kernels.load().moe_combine(ys.data_ptr(), inv.data_ptr(), g.data_ptr(), out.data_ptr(), T,
                                                     self.hidden, self.topk, torch.cuda.current_stream(ys.device).cuda_stream),
                          "combine")
            return out
        y = ys.index_select(0, inv).view(T, self.topk, self.hidden).float()
        return (y * gates.unsqueeze(-1)).sum(1).to(ys.dtype)

    # ------------------------------------------------------------------ parallel
    def _groups(self):
        if self._subgroups is None:
            import torch.distributed as dist
            world = self.ep * self.tp
            ranks = list(range(world)) if self.group is None else dist.get_process_group_ranks(self.group)
            ep_groups = [dist.new_group([ranks[e * self.tp + t] for e in range(self.ep)]) for t in range(self.tp)]
            tp_groups = [dist.new_group([ranks[e * self.tp + t] for t in range(self.tp)]) for e in range(self.ep)]
            self._subgroups = (ep_groups[self.tp_rank], tp_groups[self.ep_rank])
        return self._subgroups

    @staticmethod
    def _staged(t, group, fn):
        import torch.distributed as dist
        if dist.get_backend(group) == "gloo" and t.is_cuda:
            c = fn(t.cpu())
            return c.to(t.device)
        return fn(t)

    def _a2a(self, t, out_splits, in_splits, group):
        import torch.distributed as dist

        def fn(src):
            dst = src.new_empty((sum(out_splits),) + tuple(src.shape[1:]))
            dist.all_to_all_single(dst, src.contiguous(), out_splits, in_splits, group=group)
            return dst
        return self._staged(t, group, fn)

    def _allreduce_tp(self, out):
        import torch.distributed as dist
        _, tpg = self._groups()

        def fn(src):
            s = src.float()
            dist.all_reduce(s, group=tpg)
            return s.to(src.dtype)
        return self._staged(out, tpg, fn)

    def _ep_forward(self, x, idx, backend):
        """layer0 dispatch: rows grouped by expert = grouped by destination rank; an all-to-all of
        the per-(dest, expert) counts, then of the rows. On arrival the buffer is source-major;
        the expert-major order (plan.recv_layout) is one index_select. layer1 returns the rows
        by the inverse path. Counts cross to the host here (all_to_all_single needs split
        sizes), so this path is not CUDA-graph capturable."""
        epg, _ = self._groups()
        ep, epr, H = self.ep, self.epr, self.hidden
        perm, inv, counts, offsets = permutation(idx, self.experts)
        xs = self._gather(x, perm, backend)
        send_by_exp = counts.view(ep, epr)
        recv_by_exp = self._a2a(send_by_exp.reshape(-1), [epr] * ep, [epr] * ep, epg).view(ep, epr)
        send_splits = send_by_exp.sum(1).tolist()
        rb = recv_by_exp.cpu()
        recv_splits = rb.sum(1).tolist()
        xr = self._a2a(xs, recv_splits, send_splits, epg)              # source-major
        # expert-major order of the received rows
        src_start = torch.cumsum(torch.tensor([0] + recv_splits[:-1]), 0)
        seg_off = torch.cat([torch.zeros(ep, 1, dtype=torch.int64), torch.cumsum(rb, 1)[:, :-1]], 1) + src_start[:, None]
        order = torch.cat([torch.arange(int(seg_off[s, j]), int(seg_off[s, j] + rb[s, j]))
                           for j in range(epr) for s in range(ep)] or [torch.zeros(0, dtype=torch.int64)])
        order = order.to(x.device)
        exp_off = torch.zeros(epr + 1, dtype=torch.int64)
        torch.cumsum(rb.sum(0), 0, out=exp_off[1:])
        ye = self.experts_forward(xr.index_select(0, order), exp_off.to(x.device), backend)
        yr = torch.empty_like(ye)
        yr[order] = ye                                                   # back to source-major
        ys = self._a2a(yr, send_splits, recv_splits, epg)                # layer1 return
        return ys, inv
