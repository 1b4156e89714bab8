"""Cost model of the MoE layer (route + dispatch + GEMM1 + SwiGLU + GEMM2 + combine) on
H100/H200, per rank, in milliseconds. Pure functions of (config, arch, implementation).

Formulas (one place each):
  grouped GEMM   tiles = sum_e ceil(m_e/BM) * ceil(N/BN); a persistent grouped kernel runs
                 ceil(tiles/n_compute_sm) waves of one tile each per SM, a tile costing
                 2*BM*BN*K / (peak_per_sm * eff). GEMM2 with split-K (the default variant):
                 when plan.split_k_pays(items, clusters) (the rule the kernel applies on the
                 device, items and clusters of its 1x2 clusters), twice the tiles at half K. Memory floor: weights + activations once
                 over HBM bandwidth. t = max(compute, memory) + launch.  (Comet §4 treats the
                 expert GEMM as tile-granular in exactly this way; wave quantisation is why
                 skewed routing costs more than its FLOPs say.)
  per-expert loop (plain torch) each expert's GEMM is its own cuBLAS call: the same tile
                 formula applied per expert (no cross-expert packing of waves) + a launch each.
  memory stages  bytes / (HBM bandwidth * mem_eff): permutation gather, SwiGLU, combine.
  routing        softmax/top-k/sort of [T, E]: a fixed cost per kernel launch.
  EP dispatch/combine (layer0/layer1 of Comet): bytes sent to other ranks / link bandwidth
                 available to the comm blocks: min(link_bw, ratio * n_sm * per_block_bw).
                 With thread-block isolation the comm overlaps compute that runs on the
                 other (1-ratio) SMs: layer time = max(compute/(1-ratio), comm) + one tile of
                 pipeline fill; without fusion it adds.
  TP             F is split tp ways; the partial outputs are reduce-scattered / all-reduced
                 (2*(tp-1)/tp * T*H*2 bytes over the link).
The efficiency constants are calibrated on the H100 measurements in benchmarks/RESULTS.md
(`CALIBRATION` names the run); the shapes of the formulas come first, the constants second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from comet_ir.errors import CometError


@dataclass(frozen=True)
class GpuSpec:
    name: str
    n_sm: int
    bf16_tflops: float          # dense bf16 tensor-core peak
    hbm_gbps: float
    link_gbps: float            # NVLink per direction
    per_block_gbps: float       # what one comm thread block can move (NVSHMEM put, measured)
    launch_us: float = 4.0


H100 = GpuSpec("h100", 132, 989.0, 3350.0, 450.0, 11.0)   # per comm block: gpu.md NVSHMEM put, 351 GB/s over 32 blocks
H200 = GpuSpec("h200", 132, 989.0, 4800.0, 450.0, 11.0)
ARCHS = {"h100": H100, "h200": H200}


def get_arch(arch) -> GpuSpec:
    if isinstance(arch, GpuSpec):
        return arch
    try:  # the shared GPU presets, when they exist
        from comet_ir.spec import gpu as _gpu  # type: ignore
        a = _gpu.get(arch) if hasattr(_gpu, "get") else None
        if a is not None and hasattr(a, "sms"):
            base = ARCHS.get(str(arch), H100)
            return replace(base, n_sm=int(a.sms))
    except Exception:
        pass
    if arch not in ARCHS:
        raise CometError(f"moe cost model: unknown GPU arch {arch!r} (known: {sorted(ARCHS)})")
    return ARCHS[arch]


@dataclass(frozen=True)
class Calib:
    gemm_eff: float = 0.72        # fraction of peak a full Hopper tile sustains in the mainloop
    loop_eff: float = 0.74        # cuBLAS per-expert calls
    mem_eff: float = 0.80         # fraction of HBM bandwidth elementwise/gather kernels reach
    bm: int = 128
    bn: int = 256
    loop_bm: int = 128            # cuBLAS picks its own tiles per call; a finer grain than ours
    loop_bn: int = 128
    route_us: float = 60.0        # softmax + top-k + sort + counts of [T, E] (several launches)
    weight_exposed: float = 0.20  # share of the weight stream not hidden under the mainloop
    loop_fixed_us: float = 50.0   # plain torch layer: host sync for the counts
    loop_expert_us: float = 90.0  # plain torch layer: host time per active expert (~9 launches);
                                  # the loop is host-bound when this exceeds the expert's GPU time
    route_fused_us: float = 20.0  # our route + dispatch kernels: memset + 3 launches (+ the copy below)
    swiglu_fused: bool = True     # SwiGLU in GEMM1's epilogue (swiglu_pair): no SwiGLU pass, GEMM1 writes F
    copy_block_gbps: float = 25.0 # one comm CTA (12 warps, 4 x 16-byte loads in flight per lane) copying
                                  # rows inside one GPU; lead's loopback fit: 28 GB/s per block
    fused_fixed_us: float = 8.0   # fused layer0 set-up: flag memset + bases kernel launch
    gemm2_split: bool = True      # GEMM2 variant with split-K in two where the waves say so (_sk2)
    split_max_waves: float = 12.0 # the runtime never splits past this many waves of whole tiles


CALIBRATION = ("fitted by tools/moe_fit_cost.py to H100 runs 1 and 2 (2026-11-23, benchmarks/RESULTS.md): "
               "49 measured points, max |err| 13.2 %, mean 3.8 %")
DEFAULT_CALIB = Calib()


@dataclass(frozen=True)
class MoEConfig:
    tokens: int                    # tokens per rank
    hidden: int
    ffn: int
    experts: int
    topk: int
    ep: int = 1
    tp: int = 1
    counts: tuple[int, ...] | None = None   # rows per expert (global); None = uniform
    dtype_bytes: int = 2

    def expert_counts(self) -> np.ndarray:
        if self.counts is not None:
            c = np.asarray(self.counts, dtype=np.int64)
            if c.shape != (self.experts,):
                raise CometError(f"moe cost model: counts must have {self.experts} entries")
            return c
        rows = self.tokens * self.topk * self.ep
        base = np.full(self.experts, rows // self.experts, dtype=np.int64)
        base[: rows % self.experts] += 1
        return base


def zipf_counts(rows: int, experts: int, s: float = 1.2, seed: int = 0) -> np.ndarray:
    w = 1.0 / np.arange(1, experts + 1) ** s
    return np.random.default_rng(seed).multinomial(rows, w / w.sum())


def split_pays(m: np.ndarray, n: int, c: Calib, n_sm: float) -> bool:
    """Whether the split-K GEMM2 splits for these group rows: the runtime's host bound, then the
    device rule on 1x2 clusters (csrc moe_group_args_kernel)."""
    from comet_ir.backends.cuda.moe.plan import split_k_pays
    m = np.asarray(m)
    if (math.ceil(m.sum() / c.bm) + len(m)) * math.ceil(n / c.bn) > c.split_max_waves * n_sm:
        return False
    items = int(sum(math.ceil(x / c.bm) for x in m) * math.ceil(math.ceil(n / c.bn) / 2))
    return split_k_pays(items, int(n_sm) // 2)


def _gemm_ms(m: np.ndarray, n: int, k: int, g: GpuSpec, c: Calib, n_sm: float, eff: float,
             per_group_launch: bool, split: bool = False) -> float:
    m = np.asarray(m)
    bm, bn = (c.loop_bm, c.loop_bn) if per_group_launch else (c.bm, c.bn)
    tiles_per = np.ceil(m / bm) * math.ceil(n / bn)
    if split and not per_group_launch and split_pays(m, n, c, n_sm):
        tiles_per, k = 2 * tiles_per, k / 2
    t_tile = 2.0 * bm * bn * k / (g.bf16_tflops * 1e12 / g.n_sm * eff)  # seconds
    if per_group_launch:
        comp = float(sum(math.ceil(t / n_sm) for t in tiles_per if t)) * t_tile
        launches = int((m > 0).sum())
    else:
        comp = math.ceil(tiles_per.sum() / n_sm) * t_tile if tiles_per.sum() else 0.0
        launches = 1
    groups = int((m > 0).sum())
    w_bytes = 2.0 * groups * n * k
    a_bytes = 2.0 * m.sum() * (k + n)
    bw = g.hbm_gbps * 1e9 * c.mem_eff
    # weights stream once per expert; the part of that stream the mainloop does not hide
    # (fill/drain per expert, HBM contention) is `weight_exposed`; activations are L2-resident
    t = max(comp + c.weight_exposed * w_bytes / bw, (w_bytes + a_bytes) / bw)
    return t * 1e3 + launches * g.launch_us * 1e-3


def predict(cfg: MoEConfig, arch="h100", impl: str = "grouped", comm_ratio: float = 0.0,
            calib: Calib = DEFAULT_CALIB, include_router: bool = False) -> dict:
    """Predicted per-rank time (ms) and its parts. impl: 'grouped' (our layer: permute,
    grouped GEMM1 over [w1|w3], SwiGLU, grouped GEMM2, combine), 'loop' (plain torch layer),
    'fused' (grouped + thread-block-isolated EP comm with `comm_ratio` of the SMs)."""
    g = get_arch(arch)
    if impl not in ("grouped", "loop", "fused"):
        raise CometError(f"moe cost model: unknown impl {impl!r}")
    if not 0.0 <= comm_ratio < 1.0:
        raise CometError(f"moe cost model: comm_ratio must be in [0, 1), got {comm_ratio}")
    counts = cfg.expert_counts()
    epr = cfg.experts // cfg.ep
    # rows this rank's experts see: its slice of the global counts (uniform share by default)
    local = counts[:epr] if cfg.ep > 1 else counts
    f = cfg.ffn // cfg.tp
    h = cfg.hidden
    rows_out = cfg.tokens * cfg.topk
    rows_in = int(local.sum())
    B = cfg.dtype_bytes
    bw = g.hbm_gbps * 1e9 * calib.mem_eff
    n_sm = g.n_sm * (1.0 - comm_ratio) if impl == "fused" else g.n_sm
    loop = impl == "loop"
    eff = calib.loop_eff if loop else calib.gemm_eff
    if loop:  # separate w1 and w3 GEMMs per expert
        gemm1 = 2 * _gemm_ms(local, f, h, g, calib, n_sm, eff, True)
    else:
        gemm1 = _gemm_ms(local, 2 * f, h, g, calib, n_sm, eff, False)
    gemm2 = _gemm_ms(local, h, f, g, calib, n_sm, eff, loop, split=calib.gemm2_split and not loop)
    swiglu = rows_in * f * B * (3 if not loop else 5) / bw * 1e3
    if not loop and calib.swiglu_fused:
        swiglu = 0.0
    permute = rows_out * h * B * 2 / bw * 1e3 + g.launch_us * 1e-3
    combine = (rows_out * h * B * (2 if loop else 1) + cfg.tokens * h * B * (2 if loop else 1)) / bw * 1e3
    # routing: fused route+dispatch kernels (ours) vs softmax/top-k/sort/bincount + a host sync
    # and per-expert launches (plain torch)
    route = (calib.route_us + calib.loop_fixed_us) * 1e-3 if loop else calib.route_fused_us * 1e-3
    if include_router:  # x @ router: reads x once
        route += cfg.tokens * h * B / bw * 1e3 + g.launch_us * 1e-3
    comm = 0.0
    if cfg.ep > 1:
        remote = rows_out * (cfg.ep - 1) / cfg.ep * h * B * 2     # dispatch + return
        link = g.link_gbps * 1e9
        if impl == "fused":
            link = min(link, comm_ratio * g.n_sm * g.per_block_gbps * 1e9) if comm_ratio else 1.0
        comm = remote / link * 1e3
    tp_comm = 0.0
    if cfg.tp > 1:
        tp_comm = 2 * (cfg.tp - 1) / cfg.tp * cfg.tokens * h * B / (g.link_gbps * 1e9) * 1e3
    compute = gemm1 + gemm2 + swiglu
    if loop:  # per expert: the GPU waits for the host when the expert's work is smaller
        active = int((local > 0).sum())
        compute = max(compute, active * calib.loop_expert_us * 1e-3)
    if impl == "fused" and cfg.ep > 1:
        fill = (gemm1 + gemm2) / max(1.0, math.ceil(rows_in / calib.bm))  # one row tile
        body = max(compute, comm) + fill
    else:
        body = compute + comm
    total = route + permute + body + combine + tp_comm
    return {"total_ms": total, "route_ms": route, "permute_ms": permute, "gemm1_ms": gemm1,
            "swiglu_ms": swiglu, "gemm2_ms": gemm2, "combine_ms": combine, "comm_ms": comm,
            "tp_comm_ms": tp_comm, "gemm_tflops": expert_flops(cfg) / ((gemm1 + gemm2) * 1e9)}


def expert_flops(cfg: MoEConfig) -> float:
    """FLOPs of the expert GEMMs on one rank (3 GEMMs of rows x H x F/tp)."""
    rows = int(cfg.expert_counts()[: cfg.experts // cfg.ep].sum()) if cfg.ep > 1 else cfg.tokens * cfg.topk
    return 2.0 * 3 * rows * cfg.hidden * (cfg.ffn // cfg.tp)


RATIOS = (0.0, 1 / 33, 2 / 33, 4 / 33, 8 / 33)   # comm SMs 0, 4, 8, 16, 32 of 132


def choose_comm_ratio(cfg: MoEConfig, arch="h100", ratios=RATIOS,
                      calib: Calib = DEFAULT_CALIB) -> tuple[float, dict[float, float]]:
    """Adaptive comm-block ratio: the precompiled ratio with the lowest predicted time.
    With ep == 1 there is nothing to move and the answer is 0."""
    if cfg.ep == 1:
        return 0.0, {0.0: predict(cfg, arch, "grouped", 0.0, calib)["total_ms"]}
    preds = {r: predict(cfg, arch, "fused", r, calib)["total_ms"] for r in ratios if r > 0}
    best = min(preds, key=preds.get)
    return best, preds


def _gemm1_tiles(local: np.ndarray, n: int, c: Calib) -> int:
    return int((np.ceil(np.asarray(local) / c.bm) * math.ceil(n / c.bn)).sum())


def _rank_view(cfg: MoEConfig, arch, calib: Calib, same_gpu: bool):
    """What one rank's layers see: arch, the row counts of its experts, its ffn share, hidden,
    element bytes, effective HBM bandwidth and the link to its peers (bytes/s; PEs sharing one
    GPU split its HBM)."""
    g = get_arch(arch)
    counts = cfg.expert_counts()
    local = counts[:cfg.experts // cfg.ep] if cfg.ep > 1 else counts
    bw = g.hbm_gbps * 1e9 * calib.mem_eff
    link = bw / 2 if same_gpu else g.link_gbps * 1e9
    return g, local, cfg.ffn // cfg.tp, cfg.hidden, cfg.dtype_bytes, bw, link


def predict_layer0(cfg: MoEConfig, arch="h100", comm_blocks: int = 0, calib: Calib = DEFAULT_CALIB,
                   same_gpu: bool = False) -> dict:
    """layer0 (route + dispatch + GEMM1 with SwiGLU) per rank, ms. comm_blocks = 0: route with the
    row copy, then GEMM1 (ep > 1: plus the all-to-all). comm_blocks = k > 0: the fused kernel:
    k CTAs move the rows (copy rate k * copy_block_gbps inside the GPU, k * per_block_gbps to
    peers, capped by HBM / link bandwidth) and then join the persistent GEMM. The persistent
    schedule is static (tile i -> CTA i mod n_sm) and the comm CTAs are the last ones, which own
    one tile less when tiles mod n_sm != 0: that tile's time is slack that hides the comm; the
    rest of the comm time delays the end. Fill: the first expert's rows must land before its
    tiles start."""
    g, local, f, h, B, bw, link = _rank_view(cfg, arch, calib, same_gpu)
    gemm1 = _gemm_ms(local, 2 * f, h, g, calib, g.n_sm, calib.gemm_eff, False)
    rows_out = cfg.tokens * cfg.topk
    row_bytes = h * B
    local_rows = rows_out / cfg.ep
    remote_rows = rows_out - local_rows
    route = calib.route_fused_us * 1e-3
    if comm_blocks <= 0:
        copy = 2 * rows_out * row_bytes / bw * 1e3
        a2a = remote_rows * row_bytes / link * 1e3 + (g.launch_us * 2e-3 if cfg.ep > 1 else 0.0)
        return {"total_ms": route + copy + a2a + gemm1, "gemm1_ms": gemm1, "comm_ms": copy + a2a, "exposed_ms": copy + a2a}
    copy_bw = min(bw, comm_blocks * calib.copy_block_gbps * 1e9)
    put_bw = min(link, comm_blocks * g.per_block_gbps * 1e9)
    t_comm = (2 * local_rows * row_bytes / copy_bw + remote_rows * row_bytes / put_bw) * 1e3
    tiles = _gemm1_tiles(local, 2 * f, calib)
    t_tile = gemm1 / max(1, math.ceil(tiles / g.n_sm))
    slack = t_tile if tiles % g.n_sm and comm_blocks <= g.n_sm - tiles % g.n_sm else 0.0
    first = int(local[np.nonzero(local)[0][0]]) if local.sum() else 0
    fill = min(first, calib.bm) * 2 * row_bytes / copy_bw * 1e3
    exposed = max(0.0, t_comm - slack) + fill
    total = route + calib.fused_fixed_us * 1e-3 + gemm1 + exposed
    return {"total_ms": total, "gemm1_ms": gemm1, "comm_ms": t_comm, "exposed_ms": exposed}


COMM_BLOCKS = (0, 4, 8, 16, 32)


def _choose(predict, cfg, arch, choices, calib, same_gpu) -> tuple[int, dict[int, float]]:
    preds = {k: predict(cfg, arch, k, calib, same_gpu)["total_ms"] for k in choices}
    return min(sorted(preds), key=lambda k: preds[k]), preds


def choose_comm_blocks(cfg: MoEConfig, arch="h100", choices=COMM_BLOCKS, calib: Calib = DEFAULT_CALIB,
                       same_gpu: bool = False) -> tuple[int, dict[int, float]]:
    """Adaptive comm-block count of the fused layer0 kernel: the choice (from the set the runtime
    offers) with the lowest predicted layer0 time; ties go to the smaller count."""
    return _choose(predict_layer0, cfg, arch, choices, calib, same_gpu)


def predict_layer1(cfg: MoEConfig, arch="h100", comm_blocks: int = 0, calib: Calib = DEFAULT_CALIB,
                   same_gpu: bool = False) -> dict:
    """layer1 (GEMM2 + return of the rows to their token owners + combine) per rank, ms.
    comm_blocks = 0: GEMM2 on every SM, then (ep > 1) the return kernel (own rows copied inside
    the GPU, the rest over the link), then the combine. comm_blocks = k > 0: the one-kernel
    layer1 (csrc/moe_layer1.cu): GEMM2 on n_sm - k SMs while the k comm CTAs return each finished
    column tile (every row moves: own rows as a copy at k * copy_block_gbps, capped by HBM, the
    rest to peers at k * per_block_gbps, capped by the link); the return ends max(0, comm - GEMM2)
    after the GEMM plus the last item (one column tile of one group), which can only start when
    the GEMM's last tile is done. The combine reads the k rows of every token and writes it in
    both forms. Rows of this rank's experts split evenly over the source ranks (uniform)."""
    g, local, f, h, B, bw, link = _rank_view(cfg, arch, calib, same_gpu)
    row_bytes = h * B
    rows_in = float(local.sum())
    own, remote = rows_in / cfg.ep, rows_in - rows_in / cfg.ep
    combine = (cfg.tokens * cfg.topk + cfg.tokens) * row_bytes / bw * 1e3 + g.launch_us * 1e-3
    if comm_blocks <= 0:
        gemm2 = _gemm_ms(local, h, f, g, calib, g.n_sm, calib.gemm_eff, False)
        ret = 0.0
        if cfg.ep > 1:
            ret = (2 * own * row_bytes / bw + remote * row_bytes / link) * 1e3 + 2 * g.launch_us * 1e-3
        return {"total_ms": gemm2 + ret + combine, "gemm2_ms": gemm2, "comm_ms": ret, "exposed_ms": ret,
                "combine_ms": combine}
    gemm2 = _gemm_ms(local, h, f, g, calib, g.n_sm - comm_blocks, calib.gemm_eff, False)
    copy_bw = min(bw, comm_blocks * calib.copy_block_gbps * 1e9)
    put_bw = min(link, comm_blocks * g.per_block_gbps * 1e9)
    t_comm = (2 * own * row_bytes / copy_bw + remote * row_bytes / put_bw) * 1e3
    items = max(1, int((local > 0).sum()) * math.ceil(h / calib.bn))
    exposed = max(0.0, t_comm - gemm2) + t_comm / items
    total = calib.fused_fixed_us * 1e-3 + gemm2 + exposed + combine
    return {"total_ms": total, "gemm2_ms": gemm2, "comm_ms": t_comm, "exposed_ms": exposed, "combine_ms": combine}


def choose_layer1_comm_blocks(cfg: MoEConfig, arch="h100", choices=COMM_BLOCKS, calib: Calib = DEFAULT_CALIB,
                              same_gpu: bool = False) -> tuple[int, dict[int, float]]:
    """Comm CTAs of the one-kernel layer1 (0 = unfused): the choice with the lowest predicted
    layer1 time; ties go to the smaller count."""
    return _choose(predict_layer1, cfg, arch, choices, calib, same_gpu)
