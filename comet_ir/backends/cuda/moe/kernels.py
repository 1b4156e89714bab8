"""Build (nvcc, cached) and load the MoE kernel library `libcomet_moe.so` through ctypes.

The library has a plain C ABI (raw device pointers + a cudaStream_t), so it needs neither torch
headers nor a torch extension build: any framework that hands out device pointers can call it.
Lookup order: $COMET_MOE_LIB, then the cache ($COMET_CACHE_DIR or <repo>/.cache/moe, in a folder
named by the hash of the sources, so an edited kernel never loads a stale build), else build with
nvcc when the CUTLASS headers are found ($CUTLASS_DIR, or the `nvidia-cutlass` wheel's
`cutlass_library/source`).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from comet_ir.errors import CometError

SRC = Path(__file__).with_name("csrc") / "moe_kernels.cu"
SHMEM_SRC = Path(__file__).with_name("csrc") / "moe_shmem.cu"
# plain: D = A @ B^T (any GEMM); swiglu_pair: GEMM1 over [w1|w3] interleaved in blocks of 8
# columns with h = silu(gate) * up in the epilogue (D is [rows, F]); the pair variants also run
# the fused layer0 kernel (comm blocks + readiness flags).
VARIANTS = {"coop_128x256": 0, "coop_128x256_c12": 1, "coop_128x256_c11": 2,
            "swiglu_pair_c21": 3, "swiglu_pair_c12": 4, "coop_128x256_c22": 5, "swiglu_pair_c22": 6,
            "combine_c21": 7, "coop_128x128_c12": 8, "coop_128x256_c12_gang": 9, "swiglu_pair_c12_gang": 10,
            "coop_128x256_c12_dyn": 11, "coop_128x256_dyn": 12, "swiglu_pair_c12_dyn": 13, "swiglu_pair_c21_dyn": 14}
# combine_c21: GEMM2 with the gate-weighted combine in its epilogue (bf16x2 atomics into the
# layer output; top-k <= 2, ep == 1); coop_128x128_c12: 128x128 tiles, cluster 1x2 (a GEMM2
# candidate: at N = 4096 twice the tiles, so no split-K and no fold at T = 2048); *_gang: the c12
# kernels in gang order (csrc MoeSched::gang: the row tiles sharing a weight strip start together);
# *_dyn: the default kernels (and their cluster-2x1 forms) with the dynamic tile schedule (csrc
# moe_dyn_next_item: a cluster takes the next item of the same order from a global counter when it
# starts the item before), compiled apart so the static kernels are unchanged
PLAIN_VARIANTS = [v for v in VARIANTS if not v.startswith(("swiglu", "combine"))]
PAIR_VARIANTS = [v for v in VARIANTS if v.startswith("swiglu")]
# "<plain variant>_sk2": the same kernel with split-K in two halves, decided per call on the
# device (csrc moe_group_args_kernel, plan.split_k_pays): the output then has 2 x rows rows
# and the combine (or `fold`) adds the second half.
SPLIT_SUFFIX = "_sk2"
DYN_SUFFIX = "_dyn"


def parse_variant(name: str) -> tuple[str, int]:
    """(kernel variant, ksplit) of a variant name; CometError for unknown names."""
    base, ksplit = (name[:-len(SPLIT_SUFFIX)], 2) if name.endswith(SPLIT_SUFFIX) else (name, 1)
    if base not in VARIANTS or (ksplit == 2 and base not in PLAIN_VARIANTS):
        raise CometError(f"moe: unknown grouped-GEMM variant {name!r} (one of {sorted(VARIANTS)}, or a plain one "
                         f"+ {SPLIT_SUFFIX!r})")
    return base, ksplit


def dynamic_variant(name: str) -> str:
    """The variant with the dynamic tile schedule: "coop_128x256_c12_sk2" -> "coop_128x256_c12_dyn_sk2";
    CometError where the library has no such kernel."""
    base, ksplit = parse_variant(name)
    if base + DYN_SUFFIX not in VARIANTS:
        raise CometError(f"moe: no dynamic-schedule kernel for {name!r} (those of "
                         f"{sorted(v for v in VARIANTS if v.endswith(DYN_SUFFIX))})")
    return base + DYN_SUFFIX + (SPLIT_SUFFIX if ksplit == 2 else "")


def cache_dir() -> Path:
    d = os.environ.get("COMET_CACHE_DIR")
    return Path(d) / "moe" if d else Path(__file__).resolve().parents[4] / ".cache" / "moe"


def cached_lib(name: str, src: Path) -> Path:
    """Default path of library `name` built from `src`: keyed by the source and the shared
    headers beside it (csrc/*.cuh), which every MoE library may include."""
    h = hashlib.sha1()
    for f in [src, *sorted(src.parent.glob("*.cuh"))]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return cache_dir() / h.hexdigest()[:16] / name


def cutlass_root() -> Path | None:
    env = os.environ.get("CUTLASS_DIR")
    if env and (Path(env) / "include" / "cutlass").is_dir():
        return Path(env)
    try:
        import cutlass_library  # type: ignore
        p = Path(cutlass_library.__file__).parent / "source"
        if (p / "include" / "cutlass").is_dir():
            return p
    except Exception:
        pass
    return None


def nvcc_command(out: Path, cutlass: Path, src: Path = SRC) -> list[str]:
    return ["nvcc", "-O3", "-std=c++17", "-gencode=arch=compute_90a,code=sm_90a", "--expt-relaxed-constexpr",
            "-Xcompiler", "-fPIC", "-shared", "-DNDEBUG", f"-I{cutlass / 'include'}",
            f"-I{cutlass / 'tools' / 'util' / 'include'}", str(src), "-o", str(out)]


def _run_nvcc(cmd: list[str], out: Path, what: str, failed: str) -> None:
    if shutil.which("nvcc") is None:
        raise CometError(f"moe: nvcc not found; cannot build {what}")
    out.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise CometError(failed + r.stderr[-4000:])


def build(out: Path | None = None) -> Path:
    cutlass = cutlass_root()
    if cutlass is None:
        raise CometError("moe: CUTLASS headers not found (set CUTLASS_DIR or pip install nvidia-cutlass)")
    out = out or cached_lib("libcomet_moe.so", SRC)
    _run_nvcc(nvcc_command(out, cutlass), out, "the MoE kernels", "moe: nvcc failed:\n")
    return out


def nvshmem_root() -> Path | None:
    from comet_ir.backends.cuda.runtime import nvshmem_root as root
    return root()


def shmem_nvcc_command(out: Path, nvshmem: Path) -> list[str]:
    return ["nvcc", "-O2", "-std=c++17", "-gencode=arch=compute_90a,code=sm_90a", "-Xcompiler", "-fPIC", "-shared",
            f"-I{nvshmem / 'include'}", str(SHMEM_SRC), "-o", str(out), f"-L{nvshmem / 'lib'}",
            "-l:libnvshmem_host.so.3", "-Xlinker", "--no-undefined", "-Xlinker", f"-rpath={nvshmem / 'lib'}"]


def build_shmem(out: Path | None = None) -> Path:
    nv = nvshmem_root()
    if nv is None:
        raise CometError("moe: NVSHMEM not found (set NVSHMEM_HOME or pip install nvidia-nvshmem-cu13)")
    out = out or cached_lib("libcomet_moe_shmem.so", SHMEM_SRC)
    _run_nvcc(shmem_nvcc_command(out, nv), out, "the NVSHMEM transport", "moe: nvcc (NVSHMEM transport) failed:\n")
    return out


_SHMEM = None


def load_shmem() -> ctypes.CDLL:
    global _SHMEM
    if _SHMEM is not None:
        return _SHMEM
    nv = nvshmem_root()
    if nv is None:
        raise CometError("moe: NVSHMEM not found (set NVSHMEM_HOME or pip install nvidia-nvshmem-cu13)")
    ctypes.CDLL(str(nv / "lib" / "libnvshmem_host.so.3"), mode=ctypes.RTLD_GLOBAL)
    path = os.environ.get("COMET_MOE_SHMEM_LIB")
    p = Path(path) if path else cached_lib("libcomet_moe_shmem.so", SHMEM_SRC)
    if not p.exists():
        p = build_shmem(p)
    lib = ctypes.CDLL(str(p))
    vp = ctypes.c_void_p
    lib.moe_shmem_get_uid.argtypes = [vp]
    lib.moe_shmem_init.argtypes = [ctypes.c_int, ctypes.c_int, vp]
    lib.moe_shmem_malloc.argtypes = [ctypes.c_size_t]
    lib.moe_shmem_malloc.restype = vp
    lib.moe_shmem_ptr.argtypes = [vp, ctypes.c_int]
    lib.moe_shmem_ptr.restype = vp
    lib.moe_shmem_free.argtypes = [vp]
    _SHMEM = lib
    return lib


P8 = ctypes.c_void_p * 8


class CommDesc(ctypes.Structure):
    """csrc CommDesc: what layer0's comm blocks move where (token rows -> owner's expert buffer)."""
    _fields_ = [("x", ctypes.c_void_p), ("idx", ctypes.c_void_p), ("perm", ctypes.c_void_p),
                ("send_off", ctypes.c_void_p), ("abs_base", ctypes.c_void_p), ("grp_base", ctypes.c_void_p),
                ("peer_xs", P8), ("peer_flags", P8),
                ("rows", ctypes.c_int), ("vec", ctypes.c_int), ("topk", ctypes.c_int), ("experts", ctypes.c_int),
                ("ep", ctypes.c_int), ("me", ctypes.c_int), ("max_mt", ctypes.c_int), ("sys_scope", ctypes.c_int)]


class EpDesc(ctypes.Structure):
    """csrc EpDesc: symmetric buffers and counters of the EP transport."""
    _fields_ = [("peer_counts", P8), ("peer_arrive", P8), ("peer_retcnt", P8), ("peer_ret", P8),
                ("counts", ctypes.c_void_p), ("counts_local", ctypes.c_void_p), ("arrive", ctypes.c_void_p),
                ("retcnt", ctypes.c_void_p), ("flags", ctypes.c_void_p), ("seq", ctypes.c_void_p),
                ("err", ctypes.c_void_p), ("ep", ctypes.c_int), ("me", ctypes.c_int), ("experts", ctypes.c_int),
                ("nflags", ctypes.c_int), ("timeout_ns", ctypes.c_longlong)]


_LIB = None


def load() -> ctypes.CDLL:
    global _LIB
    if _LIB is not None:
        return _LIB
    path = os.environ.get("COMET_MOE_LIB")
    p = Path(path) if path else cached_lib("libcomet_moe.so", SRC)
    if not p.exists():
        p = build(p)
    lib = ctypes.CDLL(str(p))
    vp, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.moe_gather.argtypes = [vp, vp, vp, i32, i32, i32, vp]
    lib.moe_swiglu.argtypes = [vp, vp, i64, i32, vp]
    lib.moe_combine.argtypes = [vp, vp, vp, vp, i32, i32, i32, vp]
    lib.moe_combine2.argtypes = [vp, vp, vp, vp, vp, vp, i32, i32, i32, vp]
    lib.moe_fold.argtypes = [vp, vp, vp, i64, vp]
    lib.moe_route_dispatch.argtypes = [vp, vp, i32, i32, i32, i32, vp, vp, vp, vp, vp, vp, vp, vp]
    lib.moe_route_dispatch.restype = ctypes.c_int
    lib.moe_gg_create.argtypes = [i32, i32, i32, i32, i32, i32, ctypes.POINTER(ctypes.c_int)]
    lib.moe_gg_create.restype = vp
    lib.moe_gg_create2.argtypes = [i32, i32, i32, i32, i32, i32, i32, ctypes.POINTER(ctypes.c_int)]
    lib.moe_gg_create2.restype = vp
    lib.moe_gg_set_schedule.argtypes = [vp, i32, i32]
    lib.moe_gg_set_schedule.restype = None
    lib.moe_gg_get_schedule.argtypes = [vp] + [ctypes.POINTER(ctypes.c_int)] * 3
    lib.moe_gg_get_schedule.restype = None
    lib.moe_gg_set_scalar_stores.argtypes = [vp, i32]
    lib.moe_gg_set_scalar_stores.restype = None
    lib.moe_gg_set_silu_tanh.argtypes = [vp, i32]
    lib.moe_gg_set_silu_tanh.restype = None
    lib.moe_gg_set_profile.argtypes = [vp, vp]
    lib.moe_gg_set_profile.restype = None
    lib.moe_gg_split_flag.argtypes = [vp]
    lib.moe_gg_split_flag.restype = vp
    lib.moe_gg_last_split.argtypes = [vp]
    lib.moe_gg_last_split.restype = i32
    lib.moe_gg_run.argtypes = [vp, vp, vp, vp, vp, i64, vp]
    lib.moe_gg_destroy.argtypes = [vp]
    lib.moe_gg_run_combine.argtypes = [vp, vp, vp, vp, vp, vp, vp, i32, i32, vp]
    lib.moe_layer0_run.argtypes = [vp, vp, vp, vp, vp, ctypes.POINTER(CommDesc), i32, vp, i32, i32, vp,
                                   ctypes.c_longlong, vp]
    lib.moe_ep_exchange.argtypes = [ctypes.POINTER(EpDesc), vp, vp, vp, vp, vp, vp]
    lib.moe_ep_return.argtypes = [ctypes.POINTER(EpDesc), vp, vp, vp, i32, i64, i32, vp]
    lib.moe_local_bases.argtypes = [vp, i32, vp, vp, vp, i32, vp]
    for f in (lib.moe_gather, lib.moe_swiglu, lib.moe_combine, lib.moe_combine2, lib.moe_fold, lib.moe_gg_run,
              lib.moe_layer0_run, lib.moe_gg_run_combine,
              lib.moe_ep_exchange, lib.moe_ep_return, lib.moe_local_bases, lib.moe_comm_desc_size,
              lib.moe_ep_desc_size):
        f.restype = ctypes.c_int
    if lib.moe_comm_desc_size() != ctypes.sizeof(CommDesc) or lib.moe_ep_desc_size() != ctypes.sizeof(EpDesc):
        raise CometError("moe: the kernel library's descriptor layout does not match kernels.py (stale build?)")
    _LIB = lib
    return lib


def check(rc: int, what: str) -> None:
    if rc:
        raise CometError(f"moe: {what} failed with code {rc}")


class GroupedGemm:
    """D[offsets[g]:offsets[g+1]] = A[rows of g] @ B[g]^T for every group g (B stored [G, N, K])."""

    def __init__(self, groups: int, n: int, k: int, device: int, variant: str = "coop_128x256",
                 sm_count: int = 0):
        if n % 8 or k % 8:
            raise CometError(f"moe: grouped GEMM needs N and K multiples of 8 (got N={n}, K={k})")
        self.lib = load()
        err = ctypes.c_int(0)
        base, self.ksplit = parse_variant(variant)
        if self.ksplit == 2 and k % 16:
            raise CometError(f"moe: split-K variant {variant!r} needs K a multiple of 16 (got K={k})")
        self.h = self.lib.moe_gg_create2(VARIANTS[base], groups, n, k, device, sm_count, self.ksplit, ctypes.byref(err))
        if not self.h:
            raise CometError(f"moe: creating the CUTLASS grouped GEMM failed (code {err.value})")
        self.groups, self.n, self.k = groups, n, k
        self.variant = base

    def set_schedule(self, strip: int = 0, light: int = -1) -> None:
        """Tile order (plan.tile_schedule): strip = N-clusters per strip of a heavy group (0: the
        L2-sized default, >= N-clusters: CUTLASS's AlongM order); light = groups of at most this
        many M-clusters are spread over the heavy ones (0: none, -1: the default)."""
        self.lib.moe_gg_set_schedule(self.h, strip, light)

    def schedule(self) -> tuple[int, int, int]:
        """(strip, light, clusters of the persistent grid)."""
        v = [ctypes.c_int(0) for _ in range(3)]
        self.lib.moe_gg_get_schedule(self.h, *[ctypes.byref(x) for x in v])
        return tuple(x.value for x in v)

    def set_scalar_stores(self, on: bool) -> None:
        """swiglu_pair: the first epilogue version (4-byte stores), for A/B timing."""
        self.lib.moe_gg_set_scalar_stores(self.h, int(on))

    def set_silu_tanh(self, on: bool) -> None:
        """swiglu_pair (16-byte stores): silu through tanh.approx, one MUFU op per value instead
        of ex2 + rcp (on by default). Applies to the runs issued (or graphs captured) after the call."""
        self.lib.moe_gg_set_silu_tanh(self.h, int(on))

    def set_profile(self, prof_ptr: int) -> None:
        """CTA timing profile: prof_ptr = device int64 [3 x CTAs] (start ns, end ns, tiles per CTA,
        from the GPU's global timer), 0 = off. Applies to the runs issued after the call."""
        self.lib.moe_gg_set_profile(self.h, prof_ptr or None)

    def last_split(self) -> int:
        """Whether the last run split K (synchronises with the device)."""
        return self.lib.moe_gg_last_split(self.h)

    def split_flag_ptr(self) -> int:
        """Device int: 1 when the last run split K (the second half of D was written)."""
        return self.lib.moe_gg_split_flag(self.h)

    def run(self, offsets_ptr: int, a_ptr: int, b_ptr: int, d_ptr: int, stream: int, b_group_stride: int = 0) -> None:
        check(self.lib.moe_gg_run(self.h, offsets_ptr, a_ptr, b_ptr, d_ptr, b_group_stride, stream), "grouped GEMM")

    def run_combine(self, offsets_ptr: int, a_ptr: int, b_ptr: int, out_ptr: int, perm_ptr: int, gates_ptr: int,
                    tokens: int, topk: int, stream: int) -> None:
        """combine_c21: out[tokens, N] = sum_s gate * (A @ B^T)[row of (token, s)] (zeroed first)."""
        check(self.lib.moe_gg_run_combine(self.h, offsets_ptr, a_ptr, b_ptr, out_ptr, perm_ptr, gates_ptr, tokens,
                                          topk, stream), "grouped GEMM + combine")

    def run_layer0(self, offsets_ptr: int, a_ptr: int, b_ptr: int, d_ptr: int, stream: int, comm: CommDesc | None,
                   comm_clusters: int, flags_ptr: int, max_mt: int, sys_scope: bool, err_ptr: int,
                   timeout_ns: int) -> None:
        """The fused layer0 kernel (pair variants): comm_clusters clusters of comm blocks move rows
        per `comm` and bump `flags`; the grouped GEMM waits on the flags (bounded; *err_ptr set)."""
        if self.variant not in PAIR_VARIANTS:
            raise CometError(f"moe: the fused layer0 kernel needs a swiglu_pair variant, not {self.variant!r}")
        rc = self.lib.moe_layer0_run(self.h, offsets_ptr, a_ptr, b_ptr, d_ptr,
                                     ctypes.byref(comm) if comm is not None else None, comm_clusters,
                                     flags_ptr or None, max_mt, int(sys_scope), err_ptr or None, timeout_ns, stream)
        if rc == -8:
            raise CometError(f"moe: {comm_clusters} comm clusters leave no compute blocks")
        check(rc, "fused layer0")

    def __del__(self):
        try:
            if getattr(self, "h", None):
                self.lib.moe_gg_destroy(self.h)
        except Exception:
            pass
