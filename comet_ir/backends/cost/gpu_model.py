"""Cost model of the cometgpu tensor-parallel kernels on a `GpuArch` (h100 / h200 presets).

Pure functions of (shape, config, arch) -> microseconds; one formula each:

* GEMM on `c` compute blocks (`gemm_us`): cluster tiles (CLUSTER_M row blocks of BM x BN) on
  c / CLUSTER_M clusters, in k-steps of BK: whole rounds of tiles, plus the stream-K split of
  the last partial round that the runtime would pick (backends/cuda/stream_k.py: the same
  `plan` and `steps`); one k-step takes 2*BM*BN*BK / (rate per SM), the rate per SM being the
  arch's sustained GEMM rate (measured cuBLAS figure where the preset has one, else the
  datasheet peak) / sm_count. A GEMM is never faster than streaming its operands once from HBM.
* communication on `k` comm blocks (`comm_us`): bytes / min(link, k * per_block_rate). The link
  is NVLink per direction (measured NVSHMEM put where present) or, for several PEs sharing one
  GPU, half the measured HBM copy rate; per_block_rate is what one block of stores sustains
  (measured: 351 GB/s with 32 blocks on NV18 -> ~11 GB/s per block). On one GPU, copies that run
  beside the GEMM share HBM with it: each byte costs 1 / (k * per_block) + 1 / SAME_GPU_BESIDE_GEMM_GBPS
  (the blocks' issue time plus the HBM share left by the GEMM), so extra comm blocks stop helping
  at ~200 GB/s instead of at the link; the sequential comm kernel runs alone (link, shorter per-peer cost).
* contention: the comm role's HBM traffic slows the GEMM by CONTENTION x bytes / HBM bandwidth
  (fitted on the single-GPU loopback measurement, benchmarks/RESULTS.md 2026-11-24).
* overlap kernel: max(g, g / world + comm(k)) + launch, g = gemm(SM - k) + contention. For AG+GEMM the
  last shard to arrive gates the last 1/world of the tiles; for GEMM+RS the first 1/world of the
  tiles must be computed before anything can be sent. GEMM+RS adds the reduction (HBM-bound).
* sequential fallback: comm(32 blocks) + gemm(all SMs) + two launches; overlap is chosen only
  when predicted DECISION_MARGIN faster (the model's error is larger than most gains). On one GPU
  the overlap kernel gets at least MIN_COMM_BLOCKS_SAME_GPU comm blocks.

`choose(...)` picks overlap vs sequential and the comm-block count per shape; `estimate_gpu`
prices cometgpu kernels in a module (for `--target=cost-report` style reports).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from comet_ir.errors import CometError

LAUNCH_US = 6.0           # one kernel launch + tail, measured order of magnitude on H100
PER_BLOCK_GBPS = 11.0     # one comm block's put bandwidth over NVLink (351 GB/s / 32 blocks, gpu.md)
# Same-GPU constants, refitted 2026-11-24 (session 4) on the waiting single-PE loopback of AG+GEMM
# (20 shapes x W=2,4 x 8 comm-block counts; checked on the earlier run's 16 other shapes:
# tools/gpu_fit_overlap.py, benchmarks/RESULTS.md):
PER_BLOCK_GBPS_SAME_GPU = 40.0  # one comm block copying within one GPU's HBM
SAME_GPU_BESIDE_GEMM_GBPS = 200.0  # HBM share the copies get beside a running GEMM: with 2-4 comm
                                # blocks the measured rate was 16-38 GB/s per block, and 8-32 blocks
                                # beside a GEMM never passed ~150 GB/s (alone, 32 blocks reach ~500)
PER_PEER_US_SAME_GPU = 12.0     # fixed cost per peer of a comm block's put+signal beside the GEMM
PER_PEER_US_SAME_GPU_ALONE = 4.0  # ... in the sequential path's comm kernel, which runs alone
MIN_COMM_BLOCKS_SAME_GPU = 4    # 2 blocks copied at 16-38 GB/s each depending on the shape: up to
                                # 2x slower when comm-bound, never more than 10 % faster than 4
CONTENTION = 0.0          # HBM bytes the comm role moves slow the GEMM by bytes / (hbm / CONTENTION);
                          # the 2026-11-24 fit found no measurable term once the per-peer cost is in
DECISION_MARGIN = 0.05    # overlap only when predicted >= 5 % faster than sequential: the model's
                          # error on the overlap kernel (mean 9 %) is larger than most gains
COMM_CANDIDATES = (2, 4, 8, 12, 16, 20, 24, 32)
DEFAULT_TILE = (128, 256, 64)
# the runtime library's kernels; 256x128 (cluster 1x2, cuBLAS's configuration at 8192x7168x4096)
# comes last, so that on a predicted tie the 128x256 kernel keeps being picked
TILES = ((128, 256, 64), (128, 128, 64), (128, 64, 64), (256, 128, 64))
# k-step rate of a tile relative to the arch's sustained GEMM rate (smaller tiles re-read the
# operands from shared memory and L2 for fewer outputs). 128x128: 0.44-0.48 us per k-step vs
# 0.397 at the cuBLAS rate on the H100, multi-round shapes (benchmarks/RESULTS.md 2026-11-24).
TILE_EFFICIENCY = {(128, 256, 64): 1.0, (128, 128, 64): 0.88, (128, 64, 64): 0.75, (256, 128, 64): 1.0}
CLUSTER_M = 2             # the runtime library's cluster (two row blocks share B by multicast)
# ... except for the 128x64 tile, which serves M <= 256: with 128 rows a 2x1 cluster's second CTA
# reads only TMA zero-fill, and that pair ran 0.375 us per k-step against 0.24 with 256 rows
TILE_CLUSTER = {(128, 64, 64): 1, (256, 128, 64): 1}
# clusters along N (adjacent column blocks share the A tile): the 256x128 kernel's 1x2 cluster
TILE_CLUSTER_N = {(256, 128, 64): 2}


def tile_cluster(tile) -> int:
    return TILE_CLUSTER.get(tuple(tile), CLUSTER_M)


def tile_cluster_n(tile) -> int:
    return TILE_CLUSTER_N.get(tuple(tile), 1)


def _cluster(tile, cluster) -> tuple[int, int]:
    """(rows, columns) of a tile's cluster: `cluster` an int (rows; columns from TILE_CLUSTER_N),
    a pair, or None (the library's cluster of that tile)."""
    if cluster is None:
        return tile_cluster(tile), tile_cluster_n(tile)
    if isinstance(cluster, int):
        return cluster, tile_cluster_n(tile)
    return int(cluster[0]), int(cluster[1])
# Clocks: the preset's sustained rate is what the H100 holds under continuous GEMM load (power
# limit). A short GEMM runs at boost: per-CTA traces of one call after idle gave 0.68 us per
# 128x256x64 k-step against 0.79 sustained (x1.17); graph-replayed GEMMs of < ~100 us of work
# (1024x4096x4096: 50 us) keep that rate. So the first BURST_US of work run BURST_SPEEDUP faster.
BURST_US = 100.0
BURST_SPEEDUP = 1.17
GEMM_LAUNCH_US = 3.0      # one GEMM kernel replayed in a CUDA graph (the TP estimates use LAUNCH_US)
MEM_EFFICIENCY = 0.7      # share of the HBM bandwidth this kernel streams the operands at (128 x
                          # 7168 x 4096 on 128x64 tiles: 28.0 us, ~2.4 TB/s, on the H100)
# A 2x1 cluster over a single row block (M <= BM): the second CTA of each pair computes on TMA
# zero-fill and the pair runs slower per k-step (128x64 tiles: 0.375 us vs 0.24 with 256 rows)
ZERO_FILL_PENALTY = 1.56


def _arch(arch):
    if isinstance(arch, str):
        from comet_ir.spec.presets import load_arch

        a = load_arch(arch)
    else:
        a = arch
    if not hasattr(a, "sm_count"):
        raise CometError(f"gpu cost model: {getattr(a, 'name', arch)!r} is not a GPU architecture (kind: gpu)")
    return a


def step_us(tile, arch) -> float:
    """One k-step of one CTA's tile at the sustained rate."""
    a = _arch(arch)
    bm, bn, bk = tile
    per_sm = a.gemm_tflops("bf16") * 1e12 / a.sm_count * TILE_EFFICIENCY.get(tuple(tile), 1.0)
    return 2.0 * bm * bn * bk / per_sm * 1e6


def split_plan(m: int, n: int, k: int, blocks: int, arch, tile=DEFAULT_TILE, cluster_m=None):
    """The stream-K split the runtime runs for this GEMM (backends/cuda/stream_k.plan).
    cluster_m: rows of the cluster, or a (rows, columns) pair; None: the library's."""
    from comet_ir.backends.cuda import stream_k

    cm, cn = _cluster(tile, cluster_m)
    bm, bn, bk = tile
    tiles = math.ceil(m / (bm * cm)) * math.ceil(n / (bn * cn))
    return stream_k.plan(tiles, math.ceil(k / bk), max(blocks // (cm * cn), 1), step_us(tile, arch))


def gemm_us(m: int, n: int, k: int, blocks: int, arch, tile=DEFAULT_TILE, split: bool = True,
            cluster_m=1) -> float:
    """cluster_m: rows of the cluster, or a (rows, columns) pair."""
    from comet_ir.backends.cuda import stream_k

    a = _arch(arch)
    bm, bn, bk = tile
    cm, cn = _cluster(tile, cluster_m) if not isinstance(cluster_m, int) else (cluster_m, 1)
    tiles = math.ceil(m / (bm * cm)) * math.ceil(n / (bn * cn))
    k_steps = math.ceil(k / bk)
    clusters = max(blocks // (cm * cn), 1)
    zero_fill = math.ceil(m / bm) < cm or math.ceil(n / bn) < cn
    t_step = step_us(tile, a) * (ZERO_FILL_PENALTY if zero_fill else 1.0)
    sp = split_plan(m, n, k, blocks, a, tile, (cm, cn)) if split else stream_k.Split()
    t_sust = stream_k.steps(tiles, k_steps, clusters, sp, t_step) * t_step
    t_compute = t_sust / BURST_SPEEDUP if t_sust <= BURST_US else BURST_US / BURST_SPEEDUP + t_sust - BURST_US
    t_mem = (m * k + k * n + m * n) * 2 / (a.hbm_gbps * MEM_EFFICIENCY * 1e9) * 1e6
    return max(t_compute, t_mem)


def gemm_best(m: int, n: int, k: int, blocks: int, arch, tiles=TILES, split: bool = True,
              clusters: dict | None = None) -> tuple[float, tuple[int, int, int]]:
    """(time, tile) of the fastest library tile for this GEMM on `blocks` blocks; ties keep
    the first (largest) tile. `clusters`: tile -> cluster rows or (rows, columns) (default
    TILE_CLUSTER / TILE_CLUSTER_N)."""
    best = None
    for t in tiles:
        cm = _cluster(t, (clusters or {}).get(tuple(t)))
        us = gemm_us(m, n, k, blocks, arch, tuple(t), split, cm)
        if best is None or us < best[0] * (1 - 1e-9):
            best = (us, tuple(t))
    return best


def rs_reduce_gbps(arch) -> float:
    """GEMM+RS's reduction (own + received partial rows read, output written, all in local HBM):
    the preset's measured rate (h100: rs_reduce_loopback, 4096 x 7168, world 2, session 6), else the
    datasheet HBM rate scaled by the fraction of it the H100 measurement reached."""
    a = _arch(arch)
    if "rs_reduce_gbps" in a.measured:
        return a.measured["rs_reduce_gbps"]
    h = _arch("h100")
    return a.hbm_gbps * h.measured["rs_reduce_gbps"] / h.hbm_gbps


def link_gbps(arch, same_gpu: bool = False) -> float:
    a = _arch(arch)
    if same_gpu:
        return a.measured.get("hbm_copy_gbps", a.hbm_gbps * 0.3) / 2
    return a.measured.get("nvshmem_put_gbps_per_direction", a.nvlink_gbps_per_direction * 0.78)


def comm_us(nbytes: float, blocks: int, arch, same_gpu: bool = False, peers: int = 1,
            alone: bool = False) -> float:
    """alone: the comm kernel runs by itself (the sequential path), not beside the GEMM; it only
    matters on one GPU, where the copies and the GEMM share HBM."""
    if nbytes <= 0:
        return 0.0
    if not same_gpu:
        bw = min(link_gbps(arch), blocks * PER_BLOCK_GBPS)
        return nbytes / (bw * 1e9) * 1e6 + _arch(arch).nvlink_latency_us
    rate = blocks * PER_BLOCK_GBPS_SAME_GPU
    if not alone:
        rate = 1.0 / (1.0 / rate + 1.0 / SAME_GPU_BESIDE_GEMM_GBPS)
    bw = min(link_gbps(arch, True), rate)
    latency = (PER_PEER_US_SAME_GPU_ALONE if alone else PER_PEER_US_SAME_GPU) * max(peers, 1)
    return nbytes / (bw * 1e9) * 1e6 + latency


def contention_us(nbytes: float, arch, same_gpu: bool = False) -> float:
    """GEMM slowdown from the comm role's HBM traffic (a local copy reads and writes HBM; a
    put over NVLink reads it here and writes it at the peer)."""
    hbm_bytes = nbytes * (2 if same_gpu else 1)
    return hbm_bytes * CONTENTION / (_arch(arch).hbm_gbps * 1e9) * 1e6


def overlap_no_wait_us(m: int, n: int, k: int, nbytes: float, blocks: int, arch, same_gpu: bool = False,
                       tile=DEFAULT_TILE, split: bool = True) -> float:
    """Comm blocks beside a GEMM that never waits for them (the loopback measurement):
    max(gemm(SM - k) + contention, comm(k)) + launch."""
    a = _arch(arch)
    g = gemm_us(m, n, k, a.sm_count - blocks, a, tile, split, CLUSTER_M) + contention_us(nbytes, a, same_gpu)
    return max(g, comm_us(nbytes, blocks, a, same_gpu)) + LAUNCH_US


@dataclass
class GpuEstimate:
    pattern: str
    m: int
    n: int
    k: int
    world: int
    arch: str
    comm_blocks: int
    gemm_us: float
    comm_us: float
    reduce_us: float
    overlap_us: float
    sequential_us: float
    choice: str
    candidates: dict[int, float] = field(default_factory=dict)

    @property
    def latency_us(self) -> float:
        return self.overlap_us if self.choice == "overlap" else self.sequential_us

    @property
    def exposed_comm_us(self) -> float:
        return max(0.0, self.overlap_us - LAUNCH_US - self.reduce_us - self.gemm_us)

    def render(self) -> str:
        g = lambda x: f"{x:9.1f} us"  # noqa: E731
        rows = [f"cometgpu {self.pattern}  M={self.m} N={self.n} K={self.k} world={self.world} on {self.arch}",
                f"  GEMM on {self.comm_blocks and 'SM - comm' or 'all'} blocks      {g(self.gemm_us)}",
                f"  communication ({self.comm_blocks} comm blocks) {g(self.comm_us)}",
                f"  exposed communication       {g(self.exposed_comm_us)}"]
        if self.reduce_us:
            rows.append(f"  reduction (RS epilogue)     {g(self.reduce_us)}")
        rows += [f"  overlap kernel              {g(self.overlap_us)}",
                 f"  sequential fallback         {g(self.sequential_us)}",
                 f"  choice: {self.choice} (comm blocks {self.comm_blocks}), latency {self.latency_us:.1f} us"]
        return "\n".join(rows)


def estimate(pattern: str, m: int, n: int, k: int, world: int, arch, comm_blocks: int | None = None,
             same_gpu: bool = False, tile=None, split: bool = True) -> GpuEstimate:
    """m, n, k of the whole GEMM (AG: gathered rows; RS: rows before the scatter). split=False:
    whole tiles only (the runtime's split="off"); tile=None: the library's fastest tile for each
    block count (what the runtime picks)."""
    a = _arch(arch)
    sms = a.sm_count

    def gemm_on(blocks: int) -> float:
        if tile is not None:
            return gemm_us(m, n, k, blocks, a, tile, split, _cluster(tile, None))
        return gemm_best(m, n, k, blocks, a, TILES, split)[0]

    if world == 1 or pattern == "gemm":
        t = gemm_on(sms) + GEMM_LAUNCH_US
        return GpuEstimate(pattern, m, n, k, world, a.name, 0, t - GEMM_LAUNCH_US, 0.0, 0.0, t, t, "overlap")
    shard = m // world
    nbytes = (world - 1) * shard * (k if pattern == "ag_gemm" else n) * 2
    red = 0.0
    if pattern == "gemm_rs":
        red = (world + 1) * shard * n * 2 / (rs_reduce_gbps(a) * 1e9) * 1e6 + LAUNCH_US
    cands = {}
    if comm_blocks is not None:
        pool = (comm_blocks,)
    else:
        pool = tuple(c for c in COMM_CANDIDATES if not same_gpu or c >= MIN_COMM_BLOCKS_SAME_GPU)
    for c in pool:
        g = gemm_on(sms - c) + contention_us(nbytes, a, same_gpu)
        cands[c] = max(g, g / world + comm_us(nbytes, c, a, same_gpu, world - 1)) + red + LAUNCH_US
    best = min(cands, key=cands.get)
    g_best = gemm_on(sms - best)
    # the runtime's fallback: a comm kernel on 32 blocks, then the GEMM on all SMs
    seq = comm_us(nbytes, 32, a, same_gpu, world - 1, alone=True) + gemm_on(sms) + red + 2 * LAUNCH_US
    choice = "overlap" if cands[best] <= (1 - DECISION_MARGIN) * seq else "sequential"
    return GpuEstimate(pattern, m, n, k, world, a.name, best, g_best,
                       comm_us(nbytes, best, a, same_gpu, world - 1), red, cands[best], seq, choice, cands)


def choose(pattern: str, m: int, n: int, k: int, world: int, arch, same_gpu: bool = False) -> tuple[str, int]:
    """(strategy, comm blocks) the model prefers for this shape."""
    e = estimate(pattern, m, n, k, world, arch, same_gpu=same_gpu)
    return e.choice, e.comm_blocks


def estimate_kernel(kernel, arch=None) -> GpuEstimate:
    m, n, k = kernel.shape_mnk
    a = arch or _module_arch(kernel) or "h100"
    return estimate(kernel.field("pattern"), m, n, k, kernel.field("world"), a,
                    comm_blocks=kernel.field("comm") or None, tile=tuple(kernel.field("tile")))


def _module_arch(op) -> str | None:
    while op is not None:
        attr = getattr(op, "attributes", {}).get("comet.arch")
        if attr is not None:
            return attr.data
        op = op.parent_op()
    return None


@dataclass
class GpuCostReport:
    estimates: list[GpuEstimate]

    @property
    def latency_us(self) -> float:
        return sum(e.latency_us for e in self.estimates)

    def render(self) -> str:
        return "\n".join(e.render() for e in self.estimates) + f"\ntotal {self.latency_us:.1f} us\n"


def estimate_gpu(module_or_kernel, arch=None) -> GpuCostReport:
    """Price every cometgpu.kernel in a module (or one kernel)."""
    from comet_ir.dialects.cometgpu import KernelOp

    if isinstance(module_or_kernel, KernelOp):
        kernels = [module_or_kernel]
    else:
        kernels = [op for op in module_or_kernel.walk() if isinstance(op, KernelOp)]
    if not kernels:
        raise CometError("gpu cost model: no cometgpu.kernel in the input (run comet-lower-gpu first)")
    return GpuCostReport([estimate_kernel(kn, arch) for kn in kernels])


# ---- `--target=gpu-cost-report`: the report of estimate_gpu on cometgpu IR (comet form is
# lowered with comet-lower-gpu first)
from dataclasses import dataclass as _dc  # noqa: E402

from xdsl.utils.target import Target  # noqa: E402


@_dc(frozen=True)
class GpuCostReportTarget(Target):
    name = "gpu-cost-report"
    arch: str = ""

    def emit(self, ctx, module, output) -> None:
        from comet_ir.dialects.cometgpu import KernelOp
        from comet_ir.passes.lower_gpu import LowerToGpu

        if not any(isinstance(op, KernelOp) for op in module.walk()):
            module = module.clone()
            LowerToGpu(arch=self.arch).apply(ctx, module)
        output.write(estimate_gpu(module, self.arch or None).render())
