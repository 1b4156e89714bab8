"""cometgpu.kernel -> CUDA source (CUTLASS 3.x collective mainloop + NVSHMEM symmetric buffers).

Every constant in the emitted source is computed here from the IR (tile shape, pipeline depth
from the SMEM budget of the arch, comm-block count, problem shape of the IR types) and the
emitted code names the IR op it came from. The kernel body is the template
`templates/tp_gemm.cu.in`; each kernel gets its own namespace and C-ABI prefix, so a module
with several kernels is one translation unit.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from comet_ir.errors import CometError

TEMPLATE = Path(__file__).with_name("templates") / "tp_gemm.cu.in"
# bytes of SMEM kept from the mainloop stages: the TMA-store epilogue's D buffers (CUTLASS's
# default, 2 x 128x32 bf16 = 16 KiB; a wider subtile takes more, KernelConfig.epi_bytes), the hand
# alignment of the base to 1024 B, pipeline barriers
SMEM_RESERVE = 16 * 1024 + 1024 + 1024
EPI_DEFAULT_BYTES = 16 * 1024
MAX_STAGES = 8


@dataclass(frozen=True)
class KernelConfig:
    sym: str
    pattern: str
    m: int
    n: int
    k: int
    world: int
    tile: tuple[int, int, int]
    comm: int
    sms: int
    smem_per_sm_kb: float
    elem: str = "bf16"
    cluster_m: int = 1
    cluster_n: int = 1           # > 1: adjacent column blocks share the A tile (multicast along N)
    ir_text: str = ""
    location: str = "<generated>"
    epi_n: int = 0               # TMA-store epilogue subtile 128 x epi_n (0: CUTLASS's choice, 128 x 32)
    stages_cap: int = 0          # > 0: at most this many mainloop stages (frees SMEM for the epilogue)

    @property
    def epi_bytes(self) -> int:
        """SMEM of the epilogue's D buffers: min(subtiles, 2) subtiles of 128 x epi_n bf16."""
        en = self.epi_n or 32
        return min(2, self.tile[1] // en * max(1, self.tile[0] // 128)) * 128 * en * 2

    @property
    def stage_bytes(self) -> int:
        bm, bn, bk = self.tile
        return (bm + bn) * bk * 2

    @property
    def stages(self) -> int:
        budget = int(self.smem_per_sm_kb * 1024) - SMEM_RESERVE - max(0, self.epi_bytes - EPI_DEFAULT_BYTES)
        s = min(self.stages_cap or MAX_STAGES, MAX_STAGES, budget // self.stage_bytes)
        if s < 2:
            raise CometError(f"cuda: tile {list(self.tile)} needs {self.stage_bytes} B per stage; "
                             f"{self.smem_per_sm_kb} KiB of SMEM holds fewer than 2 stages")
        return s


def config_from_kernel(kernel, arch=None) -> KernelConfig:
    from comet_ir.backends.cost.gpu_model import _arch, _module_arch

    a = _arch(arch or _module_arch(kernel) or "h100")
    m, n, k = kernel.shape_mnk
    et = kernel.x.type.element_type
    if "bf16" not in str(et):
        raise CometError(f"cuda: the generated kernel is bf16-only for now (got {et})")
    loc = "<generated>"
    text = " ".join(str(kernel).split("{")[0].split())
    return KernelConfig(kernel.field("sym"), kernel.field("pattern"), m, n, k, kernel.field("world"),
                        tuple(kernel.field("tile")), kernel.field("comm") or 8, kernel.field("sms"),
                        a.smem_per_sm_kb, "bf16", kernel.field("cluster")[0], kernel.field("cluster")[1], text, loc)


def _cname(sym: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in sym)
    return out if out and not out[0].isdigit() else "k_" + out


def emit_kernel(cfg: KernelConfig) -> str:
    bm, bn, bk = cfg.tile
    if bm not in (64, 128, 256) or bn % 16 or bn > 256 or bk % 16:
        raise CometError(f"cuda: tile {list(cfg.tile)} has no Hopper cooperative mainloop here "
                         "(BM in {128, 256}, BN a multiple of 16 up to 256, BK a multiple of 16)")
    if bm < 128:
        raise CometError(f"cuda: the cooperative schedule needs BM >= 128 (got {bm})")
    if cfg.epi_n and (cfg.epi_n % 16 or bn % cfg.epi_n):
        raise CometError(f"cuda: epilogue subtile width {cfg.epi_n} must be a multiple of 16 dividing BN={bn}")
    epi = "cutlass::epilogue::collective::EpilogueTileAuto" if not cfg.epi_n else f"Shape<_128, Int<{cfg.epi_n}>>"
    vals = dict(
        IR_LOCATION=cfg.location, IR_OP=cfg.ir_text[:300], KERNEL_SYM=cfg.sym, ELEM_IR=cfg.elem,
        TILE_M=bm, TILE_N=bn, TILE_K=bk, STAGES=cfg.stages, STAGE_KB=cfg.stage_bytes // 1024,
        SMEM_KB=int(cfg.smem_per_sm_kb), COMM_BLOCKS=cfg.comm, SM_COUNT=cfg.sms,
        M=cfg.m, N=cfg.n, K=cfg.k, WORLD=cfg.world, CLUSTER_M=cfg.cluster_m, CLUSTER_N=cfg.cluster_n, NS=f"comet_{_cname(cfg.sym)}",
        PREFIX=f"comet_{_cname(cfg.sym)}_", EPI_TILE=epi, EPI_TILE_DOC=f"128x{cfg.epi_n or 32}")
    return string.Template(TEMPLATE.read_text()).substitute(vals)


def emit_module(module, arch=None) -> str:
    """CUDA source for every cometgpu.kernel of `module` (lowering comet form first)."""
    from comet_ir.dialects.cometgpu import KernelOp

    kernels = [op for op in module.walk() if isinstance(op, KernelOp)]
    if not kernels:
        raise CometError("cuda: no cometgpu.kernel in the input (and nothing comet-lower-gpu could lower)")
    parts = [f"// comet_ir CUDA backend: {len(kernels)} kernel(s): "
             + ", ".join(k.field("sym") for k in kernels) + "\n"
             "// build: nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr\n"
             "//        -DCOMET_WITH_NVSHMEM=1 -I<cutlass>/include -I<cutlass>/tools/util/include\n"
             "//        -I<nvshmem>/include -Xcompiler -fPIC -shared x.cu -L<nvshmem>/lib -l:libnvshmem_host.so.3\n"
             "#ifndef COMET_WITH_NVSHMEM\n#define COMET_WITH_NVSHMEM 1\n#endif\n"]
    seen = set()
    for k in kernels:
        cfg = config_from_kernel(k, arch)
        if cfg.sym in seen:
            raise CometError(f"cuda: two kernels named '{cfg.sym}'")
        seen.add(cfg.sym)
        parts.append(emit_kernel(cfg))
    return "\n".join(parts)
