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
TRANSPORTS = ("auto", "torch", "nvshmem")
# GEMM1: SwiGLU-pair epilogue, cluster 1x2; GEMM2: cluster 1x2 (no M padding of odd row-tile
# counts) with split-K where it pays (decided per call on the device; rows past ~12 waves never
# split). Fastest or within the noise of the fastest in every case of the tuning run
# (benchmarks/RESULTS.md, "MoE layer, part 3").
DEFAULT_VARIANT = ("swiglu_pair_c12", "coop_128x256_c12_sk2")
# comm-block counts (CTAs, whole 2-CTA clusters) of the fused layer0 kernel that the runtime
# chooses from; 0 = no fusion (route + dispatch copy, then the GEMM)
COMM_BLOCKS = (0, 4, 8, 16, 32)


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
                 gemm_variant=DEFAULT_VARIANT, comm_blocks="auto", transport: str = "auto",
                 max_tokens: int = 8192, timeout_s: float = 10.0, layer1_comm_blocks="auto"):
        super().__init__()
        check_config(1, hidden, ffn, experts, topk, ep, tp)
        if backend not in BACKENDS:
            raise CometError(f"moe: unknown backend {backend!r} (one of {BACKENDS})")
        if transport not in TRANSPORTS:
            raise CometError(f"moe: unknown transport {transport!r} (one of {TRANSPORTS})")
        if comm_blocks != "auto" and comm_blocks not in COMM_BLOCKS:
            raise CometError(f"moe: comm_blocks must be 'auto' or one of the precompiled ratios {COMM_BLOCKS}, "
                             f"got {comm_blocks!r}")
        if max_tokens < 1:
            raise CometError(f"moe: max_tokens must be positive, got {max_tokens}")
        self.comm_blocks, self.transport, self.max_tokens, self.timeout_s = comm_blocks, transport, max_tokens, timeout_s
        if layer1_comm_blocks != "auto" and layer1_comm_blocks not in COMM_BLOCKS:
            raise CometError(f"moe: layer1_comm_blocks must be 'auto' or one of {COMM_BLOCKS}, got {layer1_comm_blocks!r}")
        self.layer1_comm_blocks = layer1_comm_blocks
        self._shmem = None
        self._scratch = {}
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

    def _variants(self):
        v = self.gemm_variant
        return (v, DEFAULT_VARIANT[1]) if isinstance(v, str) else tuple(v)

    def _pack(self):
        """(w13 [E, 2F, H] for GEMM1, w2t [E, H, F]); for the swiglu_pair GEMM1 the w1 and w3
        columns are interleaved in blocks of 8 (csrc SwigluPairEpilogue), else concatenated."""
        pair = self._variants()[0].startswith("swiglu_pair")
        ver = (self.w1._version, self.w3._version, self.w2._version, self.w1.data_ptr(), pair)
        if self._packed is None or self._packed[0] != ver:
            with torch.no_grad():
                w1t, w3t = self.w1.transpose(1, 2), self.w3.transpose(1, 2)                 # [E, F, H]
                if pair:
                    E, Fl, H = w1t.shape
                    w13t = torch.stack([w1t.reshape(E, Fl // 8, 8, H), w3t.reshape(E, Fl // 8, 8, H)], 2)
                    w13t = w13t.reshape(E, 2 * Fl, H).contiguous()
                else:
                    w13t = torch.cat([w1t, w3t], dim=1).contiguous()                       # [E, 2F, H]
                w2t = self.w2.transpose(1, 2).contiguous()                                   # [E, H, F]
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

    def _gemm_v(self, v, n, k, device):
        index = device.index if device.index is not None else torch.cuda.current_device()
        key = (v, n, k, index)   # "cuda" and "cuda:0" name one handle
        if key not in self._gemms:
            from comet_ir.backends.cuda.moe.kernels import GroupedGemm
            self._gemms[key] = GroupedGemm(self.epr, n, k, index, v)
        return self._gemms[key]

    def experts_forward(self, xs: torch.Tensor, offsets: torch.Tensor, backend: str) -> torch.Tensor:
        """Grouped SwiGLU experts on rows grouped by local expert (offsets [E/ep + 1])."""
        rows = xs.shape[0]
        if backend == "cutlass":
            h = self._gemm1_cutlass(xs, offsets, rows)
            return self._gemm2_cutlass(h, offsets, rows)
        w1, w3 = self.w1, self.w3
        if backend == "grouped_mm":
            # torch._grouped_mm wants B column-major ([G, K, N] with stride 1 along K)
            ver = (w1._version, w3._version, self.w2._version, w1.data_ptr())
            if self._scratch.get("gm_ver") != ver:
                with torch.no_grad():
                    self._scratch["gm"] = tuple(w.transpose(1, 2).contiguous().transpose(1, 2) for w in (w1, w3, self.w2))
                self._scratch["gm_ver"] = ver
            g1, g3, g2 = self._scratch["gm"]
            offs = offsets[1:].to(torch.int32)
            h = F.silu(torch._grouped_mm(xs, g1, offs=offs)) * torch._grouped_mm(xs, g3, offs=offs)
            return torch._grouped_mm(h, g2, offs=offs)
        y = torch.empty(rows, self.hidden, dtype=xs.dtype, device=xs.device)
        off = offsets.tolist()
        for e in range(self.epr):
            a, b = off[e], off[e + 1]
            if a < b:
                y[a:b] = (F.silu(xs[a:b] @ w1[e]) * (xs[a:b] @ w3[e])) @ self.w2[e]
        return y

    def _gemm1_cutlass(self, xs, offsets, rows, h=None):
        """h = silu(xs @ w1) * (xs @ w3) per expert group (rows grouped by local expert)."""
        from comet_ir.backends.cuda.moe import kernels
        w13t, _ = self._pack()
        v1 = self._variants()[0]
        H, Fl, dev = self.hidden, self.fl, xs.device
        s = torch.cuda.current_stream(dev).cuda_stream
        h = torch.empty(rows, Fl, dtype=xs.dtype, device=dev) if h is None else h
        if rows:
            offs = offsets.contiguous()
            if v1.startswith("swiglu_pair"):
                self._gemm_v(v1, 2 * Fl, H, dev).run(offs.data_ptr(), xs.data_ptr(), w13t.data_ptr(), h.data_ptr(), s)
            else:
                g = torch.empty(rows, 2 * Fl, dtype=xs.dtype, device=dev)
                self._gemm_v(v1, 2 * Fl, H, dev).run(offs.data_ptr(), xs.data_ptr(), w13t.data_ptr(), g.data_ptr(), s)
                kernels.check(kernels.load().moe_swiglu(g.data_ptr(), h.data_ptr(), rows, Fl, s), "swiglu")
        return h

    def _gemm2_parts(self, h, offsets, rows):
        """GEMM2 per expert group: (y [rows, H], y2, split flag pointer). A split-K variant
        (kernels.SPLIT_SUFFIX) writes K's second half into y2 when the device finds that the
        split pays (it sets the flag); y2 is None for other variants, and when so many rows make
        the split's waves gain too little for its extra output (host bound, no sync)."""
        from comet_ir.backends.cuda.moe import kernels
        _, w2t = self._pack()
        dev = h.device
        v2 = self._variants()[1]
        if v2 == "combine_c21":
            v2 = "coop_128x256"
        base, ksplit = kernels.parse_variant(v2)
        if ksplit == 2 and not self._split_may_pay(rows, dev):
            v2, ksplit = base, 1
        g = self._gemm_v(v2, self.hidden, self.fl, dev)
        buf = torch.empty(ksplit * rows, self.hidden, dtype=h.dtype, device=dev)
        if rows:
            g.run(offsets.contiguous().data_ptr(), h.data_ptr(), w2t.data_ptr(), buf.data_ptr(),
                  torch.cuda.current_stream(dev).cuda_stream)
        if ksplit == 1:
            return buf, None, 0
        return buf[:rows], buf[rows:], g.split_flag_ptr()

    def _split_may_pay(self, rows: int, dev) -> bool:
        # at most ~12 waves of whole-K tiles: past that, half a tile's time is < 4 % of GEMM2
        sms = torch.cuda.get_device_properties(dev).multi_processor_count
        tiles = (-(-rows // 128) + self.epr) * -(-self.hidden // 256)
        return tiles <= 12 * sms

    def _gemm2_cutlass(self, h, offsets, rows):
        y, y2, flag = self._gemm2_parts(h, offsets, rows)
        if y2 is not None and rows:
            from comet_ir.backends.cuda.moe import kernels
            kernels.check(kernels.load().moe_fold(y.data_ptr(), y2.data_ptr(), flag, y.numel(),
                                                  torch.cuda.current_stream(h.device).cuda_stream), "fold")
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
        if self.ep > 1 and backend == "cutlass" and self._use_shmem():
            # every PE must run the same layer1 protocol (fused: column signals; unfused: the
            # return counters), so the choice is made for max_tokens, which all ranks share
            cb1 = self.choose_layer1_comm_blocks(self.max_tokens)
            out = self._ep_forward_shmem_layer1(x, router_logits, cb1) if cb1 else self._ep_forward_shmem(x, router_logits)
            return self._allreduce_tp(out) if self.tp > 1 else out
        if self.ep == 1 and backend == "cutlass" and self.choose_layer1_comm_blocks(T):
            out = self._layer1_fused_local(x, router_logits, self.choose_layer1_comm_blocks(T))
            return self._allreduce_tp(out) if self.tp > 1 else out
        if self.ep == 1 and backend == "cutlass":
            cb = self.choose_comm_blocks(T)
            if self._fused_combine():
                if cb:
                    h, offsets, perm, gates = self._layer0_fused_local(x, router_logits, cb, gemm2=False)
                else:
                    _, gates, _, offsets, perm, _, xs = self._route(x, router_logits, copy=True)
                    h = self._gemm1_cutlass(xs, offsets, xs.shape[0])
                out = torch.empty(T, self.hidden, dtype=x.dtype, device=x.device)
                _, w2t = self._pack()
                self._gemm_v("combine_c21", self.hidden, self.fl, x.device).run_combine(
                    offsets.data_ptr(), h.data_ptr(), w2t.data_ptr(), out.data_ptr(), perm.data_ptr(),
                    gates.data_ptr(), T, self.topk, torch.cuda.current_stream(x.device).cuda_stream)
                return self._allreduce_tp(out) if self.tp > 1 else out
            if cb:
                ys, inv, gates = self._layer0_fused_local(x, router_logits, cb)
                y2, flag = None, 0
            else:
                xs, inv, gates, offsets = self._route_dispatch_fused(x, router_logits)
                # a split-K GEMM2's second half is added in the combine
                ys, y2, flag = self._gemm2_parts(self._gemm1_cutlass(xs, offsets, xs.shape[0]), offsets, xs.shape[0])
            out = self._combine(ys, inv, gates, T, backend, y2, flag)
            return self._allreduce_tp(out) if self.tp > 1 else out
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

    def _route(self, x, logits, copy: bool):
        """moe_route_dispatch: (idx, gates, counts int32 [E], offsets, perm, inv, xs or None);
        copy=False leaves the row movement to the fused layer0 kernel's comm blocks."""
        from comet_ir.backends.cuda.moe import kernels
        T, k, E, dev = x.shape[0], self.topk, self.experts, x.device
        lg = logits.float().contiguous()
        idx = torch.empty(T, k, dtype=torch.int64, device=dev)
        gates = torch.empty(T, k, dtype=torch.float32, device=dev)
        scratch = torch.empty(2 * E, dtype=torch.int32, device=dev)
        offsets = torch.empty(E + 1, dtype=torch.int64, device=dev)
        perm = torch.empty(T * k, dtype=torch.int64, device=dev)
        inv = torch.empty(T * k, dtype=torch.int64, device=dev)
        xs = torch.empty(T * k, self.hidden, dtype=x.dtype, device=dev) if copy else None
        kernels.check(kernels.load().moe_route_dispatch(
            lg.data_ptr(), x.data_ptr(), T, self.hidden, E, k, idx.data_ptr(), gates.data_ptr(), scratch.data_ptr(),
            offsets.data_ptr(), perm.data_ptr(), inv.data_ptr(), xs.data_ptr() if copy else None,
            torch.cuda.current_stream(dev).cuda_stream), "route/dispatch")
        return idx, gates, scratch[:E], offsets, perm, inv, xs

    def _route_dispatch_fused(self, x, logits):
        """route + permutation + gather in three kernel launches (moe_route_dispatch)."""
        idx, gates, _, offsets, perm, inv, xs = self._route(x, logits, copy=True)
        return xs, inv, gates, offsets

    # ------------------------------------------------------------------ fused layer0 (comm blocks)
    def choose_comm_blocks(self, tokens: int) -> int:
        """Comm blocks of the fused layer0 kernel for this many tokens: the constructor's value, or
        (comm_blocks="auto") the cost model's choice among COMM_BLOCKS (0 = unfused)."""
        if not self._variants()[0].startswith("swiglu_pair"):
            return 0
        if self.comm_blocks != "auto":
            cb = int(self.comm_blocks)
        else:
            key = ("cb", tokens)
            if key not in self._scratch:
                from comet_ir.backends.cost import moe_model as MM
                cfg = MM.MoEConfig(tokens, self.hidden, self.ffn, self.experts, self.topk, self.ep, self.tp)
                self._scratch[key], _ = MM.choose_comm_blocks(cfg, "h100", COMM_BLOCKS, same_gpu=self._same_gpu())
            cb = self._scratch[key]
        # with ep > 1 the rows must move: at least the smallest comm share
        return cb if self.ep == 1 else max(cb, COMM_BLOCKS[1])

    def _same_gpu(self) -> bool:
        return self.ep * self.tp > 1 and torch.cuda.device_count() < self.ep * self.tp

    def _err_buf(self, dev):
        if "err" not in self._scratch:
            self._scratch["err"] = torch.zeros(1, dtype=torch.int32, device=dev)
        return self._scratch["err"]

    def check_errors(self) -> None:
        """Raise if a bounded wait of the fused kernels ran out (a peer never signalled). Syncs."""
        err = self._scratch.get("err")
        if err is not None:
            code = int(err.item())
            if code:
                err.zero_()
                what = {1: "a layer0 tile's rows never all arrived", 2: "a peer never sent its expert counts",
                        3: "a peer never returned its rows", 4: "a layer1 GEMM2 tile never completed",
                        5: "a peer never returned its layer1 rows"}.get(code, f"code {code}")
                raise CometError(f"moe: fused EP kernel timed out after {self.timeout_s} s: {what}")

    def _fused_combine(self) -> bool:
        """GEMM2 with the combine in its epilogue: variant combine_c21, top-k <= 2, ep == 1."""
        return self._variants()[1] == "combine_c21" and self.topk <= 2 and self.ep == 1

    def _layer0_fused_local(self, x, logits, comm_blocks: int, gemm2: bool = True):
        """ep == 1: route, then ONE kernel in which comm_blocks CTAs gather the token rows into the
        expert-grouped buffer (setting per-tile flags) while the other CTAs run GEMM1 + SwiGLU,
        each tile waiting for its rows; then GEMM2. Returns (y grouped, inv, gates)."""
        from comet_ir.backends.cuda.moe import kernels
        lib = kernels.load()
        T, k, E, H, dev = x.shape[0], self.topk, self.experts, self.hidden, x.device
        s = torch.cuda.current_stream(dev).cuda_stream
        idx, gates, _, offsets, perm, inv, _ = self._route(x, logits, copy=False)
        rows = T * k
        max_mt = -(-rows // 128) + 1
        flags = torch.empty(E * max_mt, dtype=torch.int32, device=dev)
        bases = torch.empty(2, E, dtype=torch.int64, device=dev)
        kernels.check(lib.moe_local_bases(offsets.data_ptr(), E, bases[0].data_ptr(), bases[1].data_ptr(),
                                          flags.data_ptr(), E * max_mt, s), "layer0 set-up")
        xs = torch.empty(rows, H, dtype=x.dtype, device=dev)
        h = torch.empty(rows, self.fl, dtype=x.dtype, device=dev)
        d = kernels.CommDesc(x=x.data_ptr(), idx=idx.data_ptr(), perm=perm.data_ptr(), send_off=offsets.data_ptr(),
                             abs_base=bases[0].data_ptr(), grp_base=bases[1].data_ptr(), rows=rows, vec=H // 8,
                             topk=k, experts=E, ep=1, me=0, max_mt=max_mt, sys_scope=0)
        d.peer_xs[0], d.peer_flags[0] = xs.data_ptr(), flags.data_ptr()
        w13t, _ = self._pack()
        g1 = self._gemm_v(self._variants()[0], 2 * self.fl, H, dev)
        g1.run_layer0(offsets.data_ptr(), xs.data_ptr(), w13t.data_ptr(), h.data_ptr(), s, d, comm_blocks // 2,
                      flags.data_ptr(), max_mt, False, self._err_buf(dev).data_ptr(), int(self.timeout_s * 1e9))
        if not gemm2:
            return h, offsets, perm, gates
        return self._gemm2_cutlass(h, offsets, rows), inv, gates

    # ------------------------------------------------------------------ EP over NVSHMEM
    def _use_shmem(self) -> bool:
        if self.transport == "torch":
            return False
        from comet_ir.backends.cuda.moe import kernels
        ok = kernels.nvshmem_root() is not None and self._variants()[0].startswith("swiglu_pair")
        if self.transport == "nvshmem" and not ok:
            raise CometError("moe: transport='nvshmem' needs NVSHMEM (nvidia-nvshmem-cu13) and a swiglu_pair GEMM1")
        return ok

    def _shmem_setup(self, dev):
        if self._shmem is not None:
            return self._shmem
        import ctypes
        import torch.distributed as dist
        from comet_ir.backends.cuda.moe import kernels
        lib = kernels.load_shmem()
        world = self.ep * self.tp
        uid = (ctypes.c_char * lib.moe_shmem_uid_size())()
        if self.rank == 0 and lib.moe_shmem_get_uid(ctypes.cast(uid, ctypes.c_void_p)):
            raise CometError("moe: nvshmemx_get_uniqueid failed")
        obj = [bytes(uid)]
        src = dist.get_global_rank(self.group, 0) if self.group is not None else 0
        dist.broadcast_object_list(obj, src=src, group=self.group)
        ctypes.memmove(uid, obj[0], len(obj[0]))
        rc = lib.moe_shmem_init(self.rank, world, ctypes.cast(uid, ctypes.c_void_p))
        if rc not in (0, 1):
            raise CometError(f"moe: NVSHMEM init failed (code {rc}) for PE {self.rank} of {world}")
        E, k, H, ep, epr = self.experts, self.topk, self.hidden, self.ep, self.epr
        cap_send = self.max_tokens * k
        cap_recv = ep * cap_send
        max_mt = -(-cap_recv // 128) + 1
        nflags = epr * max_mt
        parts, off = {}, 0
        for name, nbytes in (("xs", cap_recv * H * 2), ("ret", cap_send * H * 2), ("flags", nflags * 4),
                             ("counts", ep * E * 4), ("arrive", 4), ("retcnt", 4)):
            parts[name] = off
            off += -(-nbytes // 256) * 256
        base = lib.moe_shmem_malloc(off)
        if not base:
            raise CometError(f"moe: nvshmem_malloc({off}) failed (raise NVSHMEM_SYMMETRIC_SIZE or lower max_tokens)")
        peers = []
        for pe in (p * self.tp + self.tp_rank for p in range(ep)):
            q = lib.moe_shmem_ptr(base, pe)
            if not q:
                raise CometError(f"moe: PE {pe} is not reachable by loads/stores (needs NVLink/P2P peers)")
            peers.append(q)
        ed = kernels.EpDesc(ep=ep, me=self.ep_rank, experts=E, nflags=nflags, timeout_ns=int(self.timeout_s * 1e9))
        for p, q in enumerate(peers):
            ed.peer_counts[p] = q + parts["counts"]
            ed.peer_arrive[p] = q + parts["arrive"]
            ed.peer_retcnt[p] = q + parts["retcnt"]
            ed.peer_ret[p] = q + parts["ret"]
        loc = {n: base + o for n, o in parts.items()}
        counts_local = torch.zeros(ep * E, dtype=torch.int32, device=dev)
        seq = torch.zeros(2, dtype=torch.int64, device=dev)
        ed.counts, ed.counts_local, ed.arrive, ed.retcnt = loc["counts"], counts_local.data_ptr(), loc["arrive"], loc["retcnt"]
        ed.flags, ed.seq, ed.err = loc["flags"], seq.data_ptr(), self._err_buf(dev).data_ptr()
        self._shmem = dict(lib=lib, base=base, loc=loc, peers=peers, parts=parts, ed=ed, max_mt=max_mt,
                           cap_recv=cap_recv, keep=(counts_local, seq))
        if self.choose_layer1_comm_blocks(self.max_tokens):
            self._l1_sig(self._shmem)   # collective: here, where every PE allocates, not in a forward
        return self._shmem

    def _check_tokens(self, tokens: int) -> None:
        if tokens > self.max_tokens:
            raise CometError(f"moe: {tokens} tokens exceed max_tokens={self.max_tokens} given at construction "
                             "(the NVSHMEM buffers are sized by it)")

    def _ep_layer0_shmem(self, x, logits, sh, s):
        """The EP > 1 steps before GEMM2, shared by both layer1 forms: route; exchange per-expert
        counts (symmetric memory, monotonic counters); the fused layer0 kernel (comm blocks write
        every token row into its owner's expert buffer and bump the owner's tile flags; compute
        blocks run GEMM1 + SwiGLU on tiles whose rows have all arrived).
        -> gates, inv, counts (this PE's rows per expert), recv_off, send_off_all (every PE's send
        offsets), h, capacity (rows).
        The caller has checked the token count (`_check_tokens`) before any collective set-up."""
        import ctypes
        from comet_ir.backends.cuda.moe import kernels
        T, k, E, H, dev = x.shape[0], self.topk, self.experts, self.hidden, x.device
        lib = kernels.load()
        ed, ep, epr = sh["ed"], self.ep, self.epr
        idx, gates, counts, offsets, perm, inv, _ = self._route(x, logits, copy=False)
        recv_off = torch.empty(epr + 1, dtype=torch.int64, device=dev)
        bases = torch.empty(2, E, dtype=torch.int64, device=dev)
        send_off_all = torch.empty(ep * (E + 1), dtype=torch.int64, device=dev)
        kernels.check(lib.moe_ep_exchange(ctypes.byref(ed), counts.data_ptr(), recv_off.data_ptr(), bases[0].data_ptr(),
                                          bases[1].data_ptr(), send_off_all.data_ptr(), s), "EP count exchange")
        d = kernels.CommDesc(x=x.data_ptr(), idx=idx.data_ptr(), perm=perm.data_ptr(), send_off=offsets.data_ptr(),
                             abs_base=bases[0].data_ptr(), grp_base=bases[1].data_ptr(), rows=T * k, vec=H // 8,
                             topk=k, experts=E, ep=ep, me=self.ep_rank, max_mt=sh["max_mt"], sys_scope=1)
        for p, q in enumerate(sh["peers"]):
            d.peer_xs[p] = q + sh["parts"]["xs"]
            d.peer_flags[p] = q + sh["parts"]["flags"]
        cap = sh["cap_recv"]
        h = torch.empty(cap, self.fl, dtype=x.dtype, device=dev)
        w13t, _ = self._pack()
        g1 = self._gemm_v(self._variants()[0], 2 * self.fl, H, dev)
        g1.run_layer0(recv_off.data_ptr(), sh["loc"]["xs"], w13t.data_ptr(), h.data_ptr(), s, d,
                      self.choose_comm_blocks(T) // 2, sh["loc"]["flags"], sh["max_mt"], True, ed.err,
                      int(self.timeout_s * 1e9))
        return gates, inv, counts, recv_off, send_off_all, h, cap

    def _ep_forward_shmem(self, x, logits):
        """EP > 1 without host syncs: route; exchange per-expert counts (symmetric memory,
        monotonic counters); ONE layer0 kernel whose comm blocks write every token row straight
        into the owner's expert buffer (peer mappings of the NVSHMEM heap; own rows first) and
        bump the owner's tile flags, while the compute blocks run GEMM1 + SwiGLU on tiles whose
        rows have all arrived; GEMM2; rows returned to their source (layer1's comm); combine.
        Bounded waits: a peer that never signals -> CometError, not a hang."""
        import ctypes
        from comet_ir.backends.cuda.moe import kernels
        T, k, H, dev = x.shape[0], self.topk, self.hidden, x.device
        self._check_tokens(T)
        sh = self._shmem_setup(dev)
        lib = kernels.load()
        s = torch.cuda.current_stream(dev).cuda_stream
        ed = sh["ed"]
        gates, inv, _, recv_off, send_off_all, h, cap = self._ep_layer0_shmem(x, logits, sh, s)
        y = self._gemm2_cutlass(h, recv_off, cap)
        kernels.check(lib.moe_ep_return(ctypes.byref(ed), y.data_ptr(), recv_off.data_ptr(), send_off_all.data_ptr(),
                                        H, T * k, 132, s), "EP return")
        out = torch.empty(T, H, dtype=x.dtype, device=dev)
        kernels.check(lib.moe_combine(sh["loc"]["ret"], inv.data_ptr(), gates.data_ptr(), out.data_ptr(), T, H, k, s),
                      "combine")
        self.check_errors()
        return out

    def _gather(self, x, perm, backend):
        if backend == "cutlass":
            from comet_ir.backends.cuda.moe import kernels
            xs = torch.empty(perm.numel(), self.hidden, dtype=x.dtype, device=x.device)
            kernels.check(kernels.load().moe_gather(x.data_ptr(), perm.data_ptr(), xs.data_ptr(), perm.numel(),
                                                    self.hidden, self.topk, torch.cuda.current_stream(x.device).cuda_stream),
                          "gather")
            return xs
        return x.index_select(0, perm // self.topk)

    def _combine(self, ys, inv, gates, T, backend, y2=None, split_flag=0):
        """out[t] = sum_s gate * (ys (+ y2 when the device flag says GEMM2 split K))[inv]."""
        if backend == "cutlass":
            from comet_ir.backends.cuda.moe import kernels
            out = torch.empty(T, self.hidden, dtype=ys.dtype, device=ys.device)
            g = gates.contiguous().float()
            kernels.check(kernels.load().moe_combine2(
                ys.data_ptr(), y2.data_ptr() if y2 is not None else None, split_flag or None, inv.data_ptr(),
                g.data_ptr(), out.data_ptr(), T, self.hidden, self.topk, torch.cuda.current_stream(ys.device).cuda_stream),
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

    # ------------------------------------------------------------------ fused layer1 (comm blocks)
    def choose_layer1_comm_blocks(self, tokens: int) -> int:
        """Comm CTAs of the one-kernel layer1 (GEMM2 whose finished column tiles comm CTAs return
        to the token owners while the next ones compute; `csrc/moe_layer1.cu`): the constructor's
        `layer1_comm_blocks`, or ("auto") the cost model's choice (`moe_model.choose_layer1_comm_blocks`).
        0 = unfused (GEMM2, then the return, then the combine). Needs hidden % 256 == 0 and the
        cutlass backend."""
        from comet_ir.backends.cuda.moe.layer1 import TILE_N
        if self.hidden % TILE_N or self.fl % 8 or self._variants()[1] == "combine_c21":
            return 0
        if self.layer1_comm_blocks != "auto":
            return int(self.layer1_comm_blocks)
        key = ("cb1", tokens)
        if key not in self._scratch:
            from comet_ir.backends.cost import moe_model as MM
            cfg = MM.MoEConfig(tokens, self.hidden, self.ffn, self.experts, self.topk, self.ep, self.tp)
            self._scratch[key], _ = MM.choose_layer1_comm_blocks(cfg, "h100", COMM_BLOCKS, same_gpu=self._same_gpu())
        return self._scratch[key]

    def _l1(self, dev):
        key = ("l1", dev.index)
        if key not in self._gemms:
            from comet_ir.backends.cuda.moe.layer1 import Layer1Gemm
            self._gemms[key] = Layer1Gemm(self.epr, self.hidden, self.fl, dev.index or 0)
        return self._gemms[key]

    def _layer1_fused_local(self, x, logits, cb1: int):
        """ep == 1: layer0 (fused or not, per choose_comm_blocks), then ONE layer1 kernel (GEMM2 +
        comm CTAs returning finished column tiles into a flat [T*k, H] buffer), then the combine
        that waits per column tile. No host sync (CUDA-graph capturable)."""
        from comet_ir.backends.cuda.moe.layer1 import L1Comm
        T, k, E, H, dev = x.shape[0], self.topk, self.experts, self.hidden, x.device
        s = torch.cuda.current_stream(dev).cuda_stream
        cb0 = self.choose_comm_blocks(T)
        if cb0:
            h, offsets, perm, gates = self._layer0_fused_local(x, logits, cb0, gemm2=False)
        else:
            _, gates, _, offsets, perm, _, xs = self._route(x, logits, copy=True)
            h = self._gemm1_cutlass(xs, offsets, xs.shape[0])
        l1 = self._l1(dev)
        rows = T * k
        counts = (offsets[1:] - offsets[:-1]).to(torch.int32)
        y = torch.empty(rows, H, dtype=x.dtype, device=dev)
        ret = torch.empty(rows, H, dtype=x.dtype, device=dev)
        sig = torch.zeros(l1.nt, dtype=torch.int32, device=dev)
        err, tns = self._err_buf(dev).data_ptr(), int(self.timeout_s * 1e9)
        c = L1Comm(y=y.data_ptr(), recv_off=offsets.data_ptr(), counts=counts.data_ptr(), send_off=offsets.data_ptr(),
                   perm=perm.data_ptr(), err=err, timeout_ns=tns, vec=H // 8, experts=E, ep=1, me=0, sys_scope=0)
        c.peer_ret[0], c.peer_sig[0] = ret.data_ptr(), sig.data_ptr()
        _, w2t = self._pack()
        l1.run(offsets.data_ptr(), h.data_ptr(), w2t.data_ptr(), y.data_ptr(), c, cb1, s)
        out = torch.empty(T, H, dtype=x.dtype, device=dev)
        l1.combine(ret.data_ptr(), None, gates.data_ptr(), out.data_ptr(), T, k, sig.data_ptr(), counts.data_ptr(), E, 1,
                   False, err, tns, s)
        return out

    def _l1_sig(self, sh):
        """Symmetric [ep, H/256] layer1 signals (own address, every EP peer's mapping); allocated
        once, collectively, by `_shmem_setup` (which every PE runs together)."""
        if "l1sig" not in self._scratch:
            from comet_ir.backends.cuda.moe.layer1 import TILE_N
            n = self.ep * (self.hidden // TILE_N)
            base = sh["lib"].moe_shmem_malloc(-(-n * 4 // 256) * 256)
            if not base:
                raise CometError("moe: nvshmem_malloc of the layer1 signals failed")
            peers = [sh["lib"].moe_shmem_ptr(base, p * self.tp + self.tp_rank) for p in range(self.ep)]
            if not all(peers):
                raise CometError("moe: a PE's layer1 signals are not reachable by loads/stores (needs NVLink/P2P peers)")
            self._scratch["l1sig"] = (base, peers, n)
        return self._scratch["l1sig"]

    def _ep_forward_shmem_layer1(self, x, logits, cb1: int):
        """EP > 1 over NVSHMEM with the one-kernel layer1: as `_ep_forward_shmem` up to layer0 (same
        exchange and fused layer0), then GEMM2 whose comm CTAs return each finished column tile of
        a group to the token owners' return buffers (send layout, peer mappings) with a signal per
        (source PE, column tile), then the combine, which waits for those signals per column tile.
        The signals are zeroed before this PE publishes its counts: a peer writes them only after
        it has seen this call's counts, and every write of the previous call was awaited."""
        from comet_ir.backends.cuda.moe import kernels
        from comet_ir.backends.cuda.moe import layer1 as L1
        T, k, E, H, dev, ep = x.shape[0], self.topk, self.experts, self.hidden, x.device, self.ep
        self._check_tokens(T)
        sh = self._shmem_setup(dev)
        sig, sig_peers, nsig = self._l1_sig(sh)
        l1 = self._l1(dev)
        s = torch.cuda.current_stream(dev).cuda_stream
        kernels.check(L1.load().moe_l1_zero(sig, nsig, s), "layer1 signal reset")
        ed = sh["ed"]
        gates, inv, counts, recv_off, send_off_all, h, cap = self._ep_layer0_shmem(x, logits, sh, s)
        _, w2t = self._pack()
        y = torch.empty(cap, H, dtype=x.dtype, device=dev)
        tns = int(self.timeout_s * 1e9)
        c = L1.L1Comm(y=y.data_ptr(), recv_off=recv_off.data_ptr(), counts=ed.counts_local, send_off=send_off_all.data_ptr(),
                      perm=None, err=ed.err, timeout_ns=tns, vec=H // 8, experts=E, ep=ep, me=self.ep_rank, sys_scope=1)
        for p, q in enumerate(sh["peers"]):
            c.peer_ret[p] = q + sh["parts"]["ret"]
            c.peer_sig[p] = sig_peers[p]
        l1.run(recv_off.data_ptr(), h.data_ptr(), w2t.data_ptr(), y.data_ptr(), c, cb1, s)
        out = torch.empty(T, H, dtype=x.dtype, device=dev)
        l1.combine(sh["loc"]["ret"], inv.data_ptr(), gates.data_ptr(), out.data_ptr(), T, k, sig, counts.data_ptr(), E, ep,
                   True, ed.err, tns, s)
        self.check_errors()
        return out
