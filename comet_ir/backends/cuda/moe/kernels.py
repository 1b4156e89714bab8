"""Build (nvcc, cached) and load the MoE kernel library `libcomet_moe.so` through ctypes.

The library has a plain C ABI (raw device pointers + a cudaStream_t), so it needs neither torch
headers nor a torch extension build: any framework that hands out device pointers can call it.
Lookup order: $COMET_MOE_LIB, then the cache ($COMET_CACHE_DIR or <repo>/.cache/moe), else build
with nvcc when the CUTLASS headers are found ($CUTLASS_DIR, or the `nvidia-cutlass` wheel's
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
VARIANTS = {"coop_128x256": 0, "pingpong_128x128": 1, "coop_256x128": 2, "coop_128x256_c12": 3,
            "coop_128x256_c11": 4, "swiglu_evt_128x256": 5}
PLAIN_VARIANTS = [v for v in VARIANTS if not v.startswith("swiglu")]


def cache_dir() -> Path:
    d = os.environ.get("COMET_CACHE_DIR")
    return Path(d) / "moe" if d else Path(__file__).resolve().parents[4] / ".cache" / "moe"


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


def nvcc_command(out: Path, cutlass: Path) -> list[str]:
    return ["nvcc", "-O3", "-std=c++17", "-gencode=arch=compute_90a,code=sm_90a", "--expt-relaxed-constexpr",
            "-Xcompiler", "-fPIC", "-shared", "-DNDEBUG", f"-I{cutlass / 'include'}",
            f"-I{cutlass / 'tools' / 'util' / 'include'}", str(SRC), "-o", str(out)]


def build(out: Path | None = None) -> Path:
    cutlass = cutlass_root()
    if cutlass is None:
        raise CometError("moe: CUTLASS headers not found (set CUTLASS_DIR or pip install nvidia-cutlass)")
    if shutil.which("nvcc") is None:
        raise CometError("moe: nvcc not found; cannot build the MoE kernels")
    out = out or cache_dir() / "libcomet_moe.so"
    out.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(nvcc_command(out, cutlass), capture_output=True, text=True)
    if r.returncode:
        raise CometError("moe: nvcc failed:\n" + r.stderr[-4000:])
    (out.parent / "libcomet_moe.src.sha1").write_text(hashlib.sha1(SRC.read_bytes()).hexdigest())
    return out


_LIB = None


def load() -> ctypes.CDLL:
    global _LIB
    if _LIB is not None:
        return _LIB
    path = os.environ.get("COMET_MOE_LIB")
    p = Path(path) if path else cache_dir() / "libcomet_moe.so"
    if not p.exists():
        p = build(p)
    lib = ctypes.CDLL(str(p))
    vp, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.moe_gather.argtypes = [vp, vp, vp, i32, i32, i32, vp]
    lib.moe_swiglu.argtypes = [vp, vp, i64, i32, vp]
    lib.moe_combine.argtypes = [vp, vp, vp, vp, i32, i32, i32, vp]
    lib.moe_route_dispatch.argtypes = [vp, vp, i32, i32, i32, i32, vp, vp, vp, vp, vp, vp, vp, vp]
    lib.moe_route_dispatch.restype = ctypes.c_int
    lib.moe_gg_create.argtypes = [i32, i32, i32, i32, i32, i32, ctypes.POINTER(ctypes.c_int)]
    lib.moe_gg_create.restype = vp
    lib.moe_gg_run.argtypes = [vp, vp, vp, vp, vp, vp, i64, vp]
    lib.moe_gg_destroy.argtypes = [vp]
    for f in (lib.moe_gather, lib.moe_swiglu, lib.moe_combine, lib.moe_gg_run):
        f.restype = ctypes.c_int
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
        if variant not in VARIANTS:
            raise CometError(f"moe: unknown grouped-GEMM variant {variant!r} (one of {sorted(VARIANTS)})")
        self.h = self.lib.moe_gg_create(VARIANTS[variant], groups, n, k, device, sm_count, ctypes.byref(err))
        if not self.h:
            raise CometError(f"moe: creating the CUTLASS grouped GEMM failed (code {err.value})")
        self.groups, self.n, self.k = groups, n, k

    def run(self, offsets_ptr: int, a_ptr: int, b_ptr: int, d_ptr: int, stream: int, c_ptr: int = 0,
            b_group_stride: int = 0) -> None:
        check(self.lib.moe_gg_run(self.h, offsets_ptr, a_ptr, b_ptr, d_ptr, c_ptr or None, b_group_stride, stream),
              "grouped GEMM")

    def __del__(self):
        try:
            if getattr(self, "h", None):
                self.lib.moe_gg_destroy(self.h)
        except Exception:
            pass
