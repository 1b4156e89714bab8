"""Runtime of the generated tensor-parallel kernels: build (nvcc, cached by source hash), load
(ctypes, plain C ABI), NVSHMEM bootstrap from torch.distributed, symmetric buffers, and the ops

    ag_gemm(x_shard, w)   Y = allgather(X_shard) @ W          (X_shard [Ms, K], W [K, N])
    gemm_rs(x, w_shard)   Y_shard = reducescatter(X @ W_shard) (X [M, K], W_shard [K, N])
    gemm(x, w)            Y = X @ W on all SMs (the generated mainloop alone)

plus `CometTPLinear`, a torch.nn.Module (column-parallel "ag" or row-parallel "rs").

torch is imported lazily (the `gpu` extra); nothing here is needed to compile or emit code.
W is consumed in [N, K] (K-contiguous, nn.Linear) storage: pass `weight.t()` of a [N, K]
tensor for zero copies; any other [K, N] tensor is transposed once per call (a copy).
Waits are bounded by `timeout_s` (env COMET_TIMEOUT_S, default 10 s): a peer that never
signals makes `check()` (called by default after each op when `check=True`) raise CometError.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from comet_ir.errors import CometError, env_int

REPO = Path(__file__).resolve().parents[3]
ERRORS = {1: "a peer's shard chunk did not arrive", 2: "a row block's tiles did not finish",
          3: "a peer did not reach this call (it never signalled 'ready')",
          4: "a stream-K partial tile was not published",
          5: "a cluster's next tile was not posted (dynamic schedule)"}
SCHEDS = ("dynamic", "static")


def sched_mode(sched: str | None = None) -> str:
    """The tile schedule of a launch: `sched`, else $COMET_TP_SCHED, else "static" (cluster c
    takes tiles c, c + clusters, ...). "dynamic": each cluster draws its next tile from a shared
    counter; bit-identical results, and within +-2 % of static on the H100 (neutral at
    8192x7168x4096, benchmarks/RESULTS.md session 7; also with tile orders whose neighbours share
    A, session 9), so it is not the default."""
    mode = sched or os.environ.get("COMET_TP_SCHED") or "static"
    if mode not in SCHEDS:
        src = "sched" if sched else "COMET_TP_SCHED"
        raise CometError(f"cuda: {src} must be one of {', '.join(SCHEDS)} (got {mode!r})")
    return mode


def grouping_spec(spec: str) -> tuple[int, bool, int]:
    """(group_m, snake, group_n) of a measurement spec "G[s][xN]": groups of G cluster rows, s =
    snake order, xN = chunks of N columns walked row by row (e.g. "16", "8s", "8sx8")."""
    m = re.fullmatch(r"(\d+)(s?)(?:x(\d+))?", spec.strip())
    if not m or int(m.group(1)) < 1:
        raise CometError(f"cuda: L2 grouping {spec!r} is not G[s][xN] (e.g. 16, 8s, 8sx8)")
    return int(m.group(1)), m.group(2) == "s", int(m.group(3) or 0)


def grouping_variant(spec: str) -> tuple[tuple[int, bool, int], str]:
    """A measurement variant "G[s][xN][d]": (its grouping_spec, its tile schedule: "dynamic" with a
    trailing d, else "static"), e.g. "8sx8d" -> ((8, True, 8), "dynamic")."""
    spec = spec.strip()
    return grouping_spec(spec.removesuffix("d")), "dynamic" if spec.endswith("d") else "static"


@contextlib.contextmanager
def l2_grouping(group_m: int, snake: bool, group_n: int = 0):
    """Calls inside use another L2 grouping of the tile order (measurement runs): sets
    $COMET_GROUP_M / $COMET_SNAKE / $COMET_GROUP_N and puts back whatever they were (orders are
    cached per value)."""
    keys = {"COMET_GROUP_M": str(group_m), "COMET_SNAKE": str(int(snake)), "COMET_GROUP_N": str(group_n)}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


MODES = {"gemm": 0, "ag_gemm": 1, "gemm_rs": 2}
ORDER_KNOBS = ("COMET_GROUP_M", "COMET_SNAKE", "COMET_GROUP_N")    # read by reschedule.grouped


# ------------------------------------------------------------------ toolchain discovery
def cutlass_root() -> Path | None:
    env = os.environ.get("CUTLASS_DIR")
    cands = [Path(env)] if env else []
    try:
        import cutlass_library  # type: ignore

        cands.append(Path(cutlass_library.__file__).parent / "source")
    except Exception:
        pass
    cands.append(REPO / ".cache" / "cutlass" / "wheel" / "cutlass_library" / "source")
    for c in cands:
        if (c / "include" / "cutlass" / "cutlass.h").is_file():
            return c
    return None


def nvshmem_root() -> Path | None:
    env = os.environ.get("NVSHMEM_HOME")
    cands = [Path(env)] if env else []
    try:
        import nvidia.nvshmem as m  # type: ignore

        cands.append(Path(list(m.__path__)[0]))
    except Exception:
        pass
    cands.append(REPO / ".cache" / "nvshmem" / "wheel" / "nvidia" / "nvshmem")
    for c in cands:
        if (c / "include" / "nvshmem.h").is_file() and (c / "lib" / "libnvshmem_host.so.3").exists():
            return c
    return None


def cache_dir() -> Path:
    d = os.environ.get("COMET_CACHE_DIR")
    return (Path(d) if d else REPO / ".cache") / "cuda"


def nvcc_command(src: Path, out: Path, cutlass: Path, nvshmem: Path | None, shared: bool = True) -> list[str]:
    cmd = ["nvcc", "-O3", "-std=c++17", "-gencode=arch=compute_90a,code=sm_90a", "--expt-relaxed-constexpr",
           "-DNDEBUG", "-diag-suppress=177", f"-I{cutlass / 'include'}", f"-I{cutlass / 'tools' / 'util' / 'include'}",
           f"-DCOMET_WITH_NVSHMEM={1 if nvshmem else 0}"]
    if nvshmem:
        cmd.append(f"-I{nvshmem / 'include'}")
    cmd += ["-Xcompiler", "-fPIC"]
    if shared:
        cmd += ["-shared", str(src), "-o", str(out)]
        if nvshmem:
            cmd += [f"-L{nvshmem / 'lib'}", "-l:libnvshmem_host.so.3", "-Xlinker", "--no-undefined"]
    else:
        cmd += ["-c", str(src), "-o", str(out)]
    return cmd


def build(source: str, name: str = "libcomet_tp.so") -> Path:
    """Compile `source` (cached by its hash and the flags) into a shared library."""
    key = hashlib.sha256((source + "|nvcc-sm90a-v1").encode()).hexdigest()[:16]
    d = cache_dir() / key
    out = d / name
    if out.exists():
        return out
    cutlass, nvshmem = cutlass_root(), nvshmem_root()
    if cutlass is None:
        raise CometError("cuda: CUTLASS headers not found (set CUTLASS_DIR or pip install nvidia-cutlass==4.2.0.0)")
    if nvshmem is None:
        raise CometError("cuda: NVSHMEM not found (set NVSHMEM_HOME or pip install nvidia-nvshmem-cu13)")
    if shutil.which("nvcc") is None:
        raise CometError("cuda: nvcc not found; cannot build the generated kernels")
    d.mkdir(parents=True, exist_ok=True)
    src = d / "kernel.cu"
    src.write_text(source)
    r = subprocess.run(nvcc_command(src, d / (name + ".tmp"), cutlass, nvshmem), capture_output=True, text=True)
    if r.returncode:
        raise CometError("cuda: nvcc failed:\n" + r.stderr[-4000:])
    os.replace(d / (name + ".tmp"), out)
    return out


# Tile shapes of the runtime library, one kernel each (the GPU model picks per shape): 128x256
# for large GEMMs; 128x128 and 128x64 fill more SMs when M x N is small (shorter tile times, more
# tiles), at a lower k-step efficiency. 256x128 with a 1x2 cluster (A tile multicast along N) is
# cuBLAS's configuration at 8192x7168x4096 (benchmarks/RESULTS.md), selectable with tile="256x128".
RUNTIME_TILES = ((128, 256, 64), (128, 128, 64), (128, 64, 64), (256, 128, 64))   # == gpu_model.TILES


# Epilogue of a library tile: (TMA-store subtile columns, cap on the mainloop stages); others take
# CUTLASS's 128x32 subtiles and the stages that fit. 128x256: per-CTA traces show the consumers
# idle 1.8-1.9 us per tile in the 8-subtile epilogue (two CTA-wide barriers and a store wait per
# subtile) against 41 us of mainloop; 4 subtiles of 128x64 (32 KiB, still 4 stages) measured
# 0.6-0.8 % faster at 8192x7168x4096 and no slower at K = 8192. Two 128x128 subtiles (64 KiB) were
# 1 % faster there but leave 3 stages: -3 % at 3072x5120x8192 and -5 % for a single 384-row
# wave (benchmarks/RESULTS.md, session-4 epilogue section). An empty table: CUTLASS's default.
TILE_EPILOGUE = {(128, 256, 64): (64, 0)}


def _tile_sym(tile) -> str:
    return "tp" if tuple(tile) == RUNTIME_TILES[0] else "tp_%dx%d" % tuple(tile[:2])


def runtime_source(arch: str = "h100", tiles=RUNTIME_TILES, cluster_m: int | None = None) -> tuple[str, list[str]]:
    """(source, C prefixes) of the runtime's kernel library: the generated kernel for a canonical
    cometgpu.kernel per tile shape (problem shape and mode are runtime arguments of the code).
    cluster_m (env COMET_TP_CLUSTER; COMET_TP_CLUSTER_N its columns): every kernel's cluster;
    default gpu_model.tile_cluster."""
    from comet_ir.backends.cost.gpu_model import _arch, tile_cluster, tile_cluster_n
    from comet_ir.backends.cuda.codegen import KernelConfig, _cname, emit_kernel

    a = _arch(arch)
    if cluster_m is None:
        cluster_m = env_int("COMET_TP_CLUSTER", 0, what="cuda") or None
    cluster_n = env_int("COMET_TP_CLUSTER_N", 0, what="cuda")     # experiments: columns of every cluster
    # experiments (variant libraries): the epilogue's subtile width and a cap on the stages
    env_epi = (env_int("COMET_TP_EPI_N", 0, what="cuda"), env_int("COMET_TP_STAGES", 0, what="cuda"))
    parts, prefixes = ["#define COMET_WITH_NVSHMEM 1\n" if nvshmem_root() else ""], []
    if os.environ.get("COMET_RS_VEC16") == "0":    # A/B runs: GEMM+RS's reduction with 2-byte accesses only
        parts.append("#define COMET_RS_VEC16 0\n")
    if os.environ.get("COMET_RS_BLOCKS_PER_SM"):     # A/B runs: the reduction's blocks per SM (default 8)
        blocks = env_int("COMET_RS_BLOCKS_PER_SM", 8, low=1, what="cuda")
        parts.append("#define COMET_RS_BLOCKS_PER_SM %d\n" % blocks)
    for tile in tiles:
        sym = _tile_sym(tile)
        epi_n, stages_cap = env_epi if any(env_epi) else TILE_EPILOGUE.get(tuple(tile), (0, 0))
        cfg = KernelConfig(sym, "ag_gemm", 8192, 7168, 4096, 2, tuple(tile), 8, a.sm_count, a.smem_per_sm_kb,
                           cluster_m=cluster_m or tile_cluster(tile),
                           cluster_n=cluster_n or (1 if cluster_m else tile_cluster_n(tile)),
                           ir_text="cometgpu.kernel tp (runtime library: mode and shape are arguments)",
                           location="comet_ir.backends.cuda.runtime", epi_n=epi_n, stages_cap=stages_cap)
        parts.append(emit_kernel(cfg))
        prefixes.append(f"comet_{_cname(sym)}_")
    return "\n".join(parts), prefixes


_LIB: dict = {}


class _Kernel:
    """One tile configuration's entry points in the loaded library."""

    def __init__(self, lib, prefix: str):
        vp, i32, i64, ll = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_longlong
        self.prefix = prefix
        self.tp_gemm = getattr(lib, prefix + "tp_gemm")
        self.tp_gemm.argtypes = [i32, i32, i32, vp, vp, vp, i64, i32, i32, i32, i32, vp, vp, vp, vp, vp, vp, vp, vp,
                                 i32, i32, i32, vp, ll, i32, i32, vp, vp, vp, vp]
        self.tp_gemm.restype = i32
        self.loopback = getattr(lib, prefix + "loopback")
        self.loopback.argtypes = [vp, vp, vp, i32, i32, i32, i32, vp, vp, vp, vp, vp, vp, i32, i32, i32, i32, vp, i32,
                                  i32, vp, vp, vp, vp]
        self.loopback.restype = i32
        # GEMM+RS's reduction alone on one PE (measurement aid; absent from libraries built before it)
        self.rs_reduce_loopback = getattr(lib, prefix + "rs_reduce_loopback", None)
        if self.rs_reduce_loopback is not None:
            self.rs_reduce_loopback.argtypes = [vp, vp, vp, vp, vp, vp, i32, i32, i32, i32, i32, vp]
            self.rs_reduce_loopback.restype = i32
        self.rs_vec16 = getattr(lib, prefix + "rs_vec16", lambda: 0)
        self.sched_words = getattr(lib, prefix + "sched_words")
        self.prepare = getattr(lib, prefix + "prepare")
        self.set_trace = getattr(lib, prefix + "set_trace")
        self.set_trace.argtypes = [vp]
        self.tile = (getattr(lib, prefix + "tile_m")(), getattr(lib, prefix + "tile_n")(),
                     getattr(lib, prefix + "tile_k")())
        self.tile_m, self.tile_n, self.tile_k = self.tile
        self.cluster_m = getattr(lib, prefix + "cluster_m")()
        self.cluster_n = getattr(lib, prefix + "cluster_n")() if hasattr(lib, prefix + "cluster_n") else 1
        self.cluster = (self.cluster_m, self.cluster_n)
        # clusters that fit at once (persistent grids are clamped to it; 0: cluster of one / unknown)
        self.resident_clusters = getattr(lib, prefix + "resident_clusters", lambda: 0)
        self.name = "%dx%d" % self.tile[:2]


def load(arch: str = "h100"):
    key = (arch, os.environ.get("COMET_TP_CLUSTER", ""))
    if key in _LIB:
        return _LIB[key]
    nv = nvshmem_root()
    if nv is None:
        raise CometError("cuda: NVSHMEM not found (set NVSHMEM_HOME or pip install nvidia-nvshmem-cu13)")
    ctypes.CDLL(str(nv / "lib" / "libnvshmem_host.so.3"), mode=ctypes.RTLD_GLOBAL)
    pre = os.environ.get("COMET_TP_LIB")
    src, prefixes = runtime_source(arch)
    path = Path(pre) if pre else build(src)
    lib = ctypes.CDLL(str(path))
    vp, i32 = ctypes.c_void_p, ctypes.c_int
    lib.kernels = [_Kernel(lib, pfx) for pfx in prefixes if hasattr(lib, pfx + "tp_gemm")]
    if not lib.kernels:
        raise CometError(f"cuda: {path} holds none of the kernels {prefixes}")
    lib.comet_symm_malloc.restype = vp
    lib.comet_symm_malloc.argtypes = [ctypes.c_size_t]
    lib.comet_symm_free.argtypes = [vp]
    lib.comet_read_error.argtypes = [vp, vp]
    lib.comet_init.argtypes = [i32, i32, vp]
    lib.comet_get_uid.argtypes = [vp]
    _LIB[key] = lib
    return lib


# ------------------------------------------------------------------ torch side
def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover
        raise CometError("cuda runtime needs torch (pip install comet-ir[gpu])") from e
    return torch


class _CudaArray:
    def __init__(self, ptr: int, nbytes: int):
        self.__cuda_array_interface__ = {"shape": (nbytes // 2,), "typestr": "<i2", "data": (ptr, False),
                                         "version": 3, "strides": None}


def arch_for_device(name: str) -> str:
    """GPU preset for a CUDA device name: the cost model's constants (HBM, NVLink, clocks) differ
    between H100 and H200 although the kernels are the same sm_90a code."""
    return "h200" if "H200" in name.upper() else "h100"


class TPContext:
    """One per process: NVSHMEM PE of a torch.distributed group, symmetric buffers, op cache."""

    def __init__(self, group=None, arch: str | None = None, timeout_s: float | None = None, check: bool = True):
        torch = _torch()
        if arch is None:
            arch = arch_for_device(torch.cuda.get_device_name())
        import torch.distributed as dist

        self.torch = torch
        if dist.is_available() and dist.is_initialized():
            self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        else:
            self.rank, self.world = 0, 1
        if self.world > 8:
            raise CometError(f"cuda: at most 8 ranks per kernel (got {self.world})")
        self.arch = arch
        self.check_each = check
        self.timeout_ns = int(1e9 * (timeout_s if timeout_s is not None else float(os.environ.get("COMET_TIMEOUT_S", "10"))))
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.same_gpu = self.world > 1 and torch.cuda.device_count() < self.world
        os.environ.setdefault("NVSHMEM_SYMMETRIC_SIZE", "3G")
        os.environ.setdefault("NVSHMEM_DISABLE_NVLS", "1")
        self.lib = load(arch)
        self.kernels = self.lib.kernels
        for kern in self.kernels:
            rc = kern.prepare()
            if rc:
                raise CometError(f"cuda: preparing the kernel {kern.name} failed (cudaError {rc})")
        self.sms = torch.cuda.get_device_properties(self.device).multi_processor_count
        k0 = self.kernels[0]                    # the default (largest) tile
        self.tile_m, self.tile_n, self.tile_k = k0.tile
        self.cluster_m = k0.cluster_m
        uid = (ctypes.c_char * self.lib.comet_uid_size())()
        if self.rank == 0 and self.lib.comet_get_uid(uid):
            raise CometError("cuda: nvshmemx_get_uniqueid failed")
        if self.world > 1:
            obj = [bytes(uid)]
            dist.broadcast_object_list(obj, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
            ctypes.memmove(uid, obj[0], len(obj[0]))
        rc = self.lib.comet_init(self.rank, self.world, uid)
        if rc:
            raise CometError(f"cuda: NVSHMEM init failed (code {rc}) for PE {self.rank} of {self.world}")
        self.epoch = torch.zeros(1, dtype=torch.int64, device=self.device)
        self.err = torch.zeros(1, dtype=torch.int32, device=self.device)
        self.tile_done = torch.zeros(1024, dtype=torch.int64, device=self.device)
        # stream-K: one fp32 partial tile per compute CTA, a flag per split cluster tile and CTA
        self.sk_ws = torch.empty(self.sms * max(kn.tile_m * kn.tile_n for kn in self.kernels), dtype=torch.float32,
                                 device=self.device)
        self.sk_flags = torch.zeros(self.sms * self.cluster_m, dtype=torch.int64, device=self.device)
        # dynamic tile schedule (sched="dynamic"): a shared counter, a launch epoch and one ring
        # per compute cluster; the kernel leaves it ready for the next launch
        self.sched = sched_mode()
        self.sched_buf = torch.zeros(max(kn.sched_words(self.sms) for kn in self.kernels), dtype=torch.int64,
                                     device=self.device)
        self._symm: dict[str, tuple[int, int]] = {}
        self._orders: dict = {}
        self._tuned: dict = {}
        self._wt: dict = {}
        self.flags = self._alloc("flags", 8 * 8 * 256)
        self.ready = self._alloc("ready", 8 * 8)

    # symmetric buffers: collective; every rank asks for the same sizes in the same order
    def _alloc(self, name: str, nbytes: int) -> int:
        have = self._symm.get(name)
        if have and have[1] >= nbytes:
            return have[0]
        self.torch.cuda.synchronize()
        if have:
            self.lib.comet_symm_free(ctypes.c_void_p(have[0]))
        nbytes = max(nbytes, 1 << 20)
        p = self.lib.comet_symm_malloc(nbytes)
        if not p:
            raise CometError(f"cuda: nvshmem_malloc({nbytes}) failed (raise NVSHMEM_SYMMETRIC_SIZE)")
        self._symm[name] = (p, nbytes)
        return p

    def _view(self, ptr: int, rows: int, cols: int):
        t = self.torch.as_tensor(_CudaArray(ptr, rows * cols * 2), device=self.device)
        return t.view(self.torch.bfloat16)[: rows * cols].view(rows, cols)

    def _order(self, pattern: str, m: int, n: int, policy: str, kern=None):
        from comet_ir.passes.reschedule import order_tiles

        kern = kern or self.kernels[0]
        # the L2 grouping's environment knobs are read per order (measurement runs change them)
        key = (pattern, m, n, policy, kern.tile) + tuple(os.environ.get(k) for k in ORDER_KNOBS)
        if key not in self._orders:
            # ids over the grid of cluster tiles (cluster_m x cluster_n adjacent tiles each)
            o = order_tiles(pattern, m, n, kern.tile_m * kern.cluster_m, kern.tile_n * kern.cluster_n, self.world,
                            self.rank, policy)
            self._orders[key] = self.torch.tensor(o, dtype=self.torch.int32, device=self.device)
        return self._orders[key]

    def _nk(self, w):
        """W [K, N] as [N, K] K-contiguous storage."""
        if w.dim() == 2 and w.stride(0) == 1 and w.stride(1) == w.shape[0]:
            return w.t()
        return w.t().contiguous()

    def _checks(self, name: str, *ts) -> None:
        torch = self.torch
        for t in ts:
            if t.dtype != torch.bfloat16:
                raise CometError(f"cuda {name}: only bf16 tensors are supported (got {t.dtype})")
            if not t.is_cuda:
                raise CometError(f"cuda {name}: tensors must be on the GPU")
            if t.dim() != 2:
                raise CometError(f"cuda {name}: 2-D tensors expected (got shape {tuple(t.shape)})")

    def kernel(self, m: int, n: int, k: int, compute_blocks: int, tile=None):
        """The library kernel for this GEMM: tile="128x256" / "128x128" (or a tuple), or None:
        the GPU model's fastest tile on `compute_blocks` blocks (env COMET_TP_TILE overrides)."""
        from comet_ir.backends.cost.gpu_model import gemm_best

        tile = tile or os.environ.get("COMET_TP_TILE") or None
        if tile is None:
            _, best = gemm_best(m, n, k, compute_blocks, self.arch, [kn.tile for kn in self.kernels],
                                clusters={kn.tile: kn.cluster for kn in self.kernels})
            return next(kn for kn in self.kernels if kn.tile == best)
        name = tile if isinstance(tile, str) else "%dx%d" % tuple(tile)[:2]
        for kn in self.kernels:
            if kn.name == name:
                return kn
        raise CometError(f"cuda: no kernel with tile {name} (have {', '.join(kn.name for kn in self.kernels)})")

    def split(self, m: int, n: int, k: int, compute_blocks: int, split="auto", kern=None):
        """The stream-K split (stream_k.Split) of the GEMM launch on `compute_blocks` blocks:
        split="auto" (stream_k.plan), "off" (whole tiles only) or a Split."""
        from comet_ir.backends.cuda import stream_k

        if isinstance(split, stream_k.Split):
            return split
        if split == "off":
            return stream_k.Split()
        if split != "auto":
            raise CometError(f"cuda: split must be 'auto', 'off' or a stream_k.Split (got {split!r})")
        from comet_ir.backends.cost.gpu_model import split_plan

        kern = kern or self.kernels[0]
        return split_plan(m, n, k, compute_blocks, self.arch, kern.tile, kern.cluster)

    def set_trace(self, buf) -> int:
        """Measurement aid: later launches stamp per-CTA global-timer events into `buf` (an int64
        CUDA tensor of sms x slots; None turns it off). Returns the slots per CTA."""
        ptr = buf.data_ptr() if buf is not None else None
        return [kn.set_trace(ptr) for kn in self.kernels][0]

    def _split_args(self, sp):
        if sp.sk_units > self.sms:
            raise CometError(f"cuda: stream-K split {sp} has more runs than the {self.sms} SMs")
        per_tile = max(kn.cluster_m * kn.cluster_n for kn in self.kernels)   # one flag per CTA of a cluster
        if sp.sk_tiles * per_tile > self.sk_flags.numel():  # zeros: the kernel resets what it uses
            self.sk_flags = self.torch.zeros(sp.sk_tiles * per_tile, dtype=self.torch.int64, device=self.device)
        return (sp.sk_tiles, sp.sk_units, self.sk_ws.data_ptr() if sp.on else None,
                self.sk_flags.data_ptr() if sp.on else None)

    def plan(self, pattern: str, m: int, n: int, k: int, strategy: str = "auto", comm_blocks: int | None = None):
        from comet_ir.backends.cost.gpu_model import estimate

        if self.world == 1:
            return "overlap", 0
        if strategy not in ("auto", "tuned", "overlap", "sequential"):
            raise CometError(f"cuda: strategy must be auto, tuned, overlap or sequential (got {strategy!r})")
        if strategy == "tuned" and comm_blocks is None:
            hit = self._tuned.get((pattern, m, n, k))
            if hit:
                return hit
            strategy = "auto"           # not measured yet (or capturing a graph): the model decides
        e = estimate(pattern, m, n, k, self.world, self.arch, comm_blocks=comm_blocks, same_gpu=self.same_gpu)
        c = comm_blocks or e.comm_blocks
        s = e.choice if strategy in ("auto", "tuned") else strategy
        return s, c

    def shortlist(self, pattern: str, m: int, n: int, k: int, top: int = 3) -> list[tuple[str, int]]:
        """The cost model's `top` best overlap configurations and the sequential fallback."""
        from comet_ir.backends.cost.gpu_model import estimate

        e = estimate(pattern, m, n, k, self.world, self.arch, same_gpu=self.same_gpu)
        best = sorted(e.candidates, key=e.candidates.get)[:top]
        return [("overlap", c) for c in best] + [("sequential", 32)]

    def tune(self, pattern: str, x, w, reps: int = 3) -> tuple[str, int]:
        """Time the model's shortlist on these operands (every rank, same order; the slowest
        rank's time counts) and remember the winner for strategy="tuned". The model narrows the
        choice; the measurement settles what the model's ~10 % error cannot."""
        torch = self.torch
        import torch.distributed as dist

        ms, k = x.shape
        n = w.shape[1]
        m = ms * self.world if pattern == "ag_gemm" else ms
        cands = self.shortlist(pattern, m, n, k)
        times = []
        for strat, c in cands:
            self.run(pattern, x, w, strategy=strat, comm_blocks=c)            # warm-up
            ts = []
            for _ in range(reps):
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                self.run(pattern, x, w, strategy=strat, comm_blocks=c, check=False)
                e.record()
                e.synchronize()
                ts.append(s.elapsed_time(e))
            times.append(sorted(ts)[len(ts) // 2])
        self.check()
        t = torch.tensor(times, dtype=torch.float64)
        if self.world > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        win = cands[int(t.argmin())]
        self._tuned[(pattern, m, n, k)] = win
        return win

    def run(self, pattern: str, x, w, strategy: str = "tuned", comm_blocks: int | None = None,
            order: str | None = None, out=None, check: bool | None = None, split="auto", tile=None,
            sched: str | None = None):
        torch = self.torch
        self._checks(pattern, x, w)
        sched = sched_mode(sched or self.sched)
        x = x.contiguous()
        ms, k = x.shape
        if w.shape[0] != k:
            raise CometError(f"cuda {pattern}: W has {w.shape[0]} rows, X has K={k}")
        n = w.shape[1]
        if k % 8 or n % 8:
            raise CometError(f"cuda {pattern}: K and N must be multiples of 8 (16-byte TMA rows); got K={k} N={n}")
        bnk = self._nk(w)
        world = self.world if pattern != "gemm" else 1
        m = ms * world if pattern == "ag_gemm" else ms
        if pattern == "gemm_rs" and m % world:
            raise CometError(f"cuda gemm_rs: M={m} is not divisible by world={world}")
        # before any tuning run: a wrong out is refused, never written past
        want = (m // world if pattern == "gemm_rs" else m, n)
        if out is not None and (tuple(out.shape) != want or out.dtype != torch.bfloat16
                                or not out.is_contiguous() or out.device != self.device):
            raise CometError(f"cuda {pattern}: out must be a contiguous bf16 tensor of shape {want} on "
                             f"{self.device} (got {out.dtype} {tuple(out.shape)} on {out.device}"
                             + ("" if out.is_contiguous() else ", not contiguous") + ")")
        if strategy == "tuned" and world > 1 and comm_blocks is None and (pattern, m, n, k) not in self._tuned \
                and not torch.cuda.is_current_stream_capturing():
            self.tune(pattern, x, w)
        strat, comm = self.plan(pattern, m, n, k, strategy, comm_blocks) if world > 1 else ("overlap", 0)
        if strat == "sequential":
            comm = max(comm, 32)
        cm = self.cluster_m
        gemm_blocks = self.sms if (world == 1 or strat == "sequential") else \
            (self.sms - -(-comm // cm) * cm) // cm * cm
        kern = self.kernel(m, n, k, gemm_blocks, tile)
        policy = order or {"ag_gemm": "local-first", "gemm_rs": "arrival"}.get(pattern, "natural")
        tile_order = self._order(pattern if world > 1 else "gemm", m, n, policy if world > 1 else (order or "natural"),
                                 kern)
        stream = torch.cuda.current_stream().cuda_stream
        shard = recv = 0
        y = None
        if world == 1:
            a = x
            d = out if out is not None else torch.empty(m, n, dtype=torch.bfloat16, device=self.device)
            y = d
        elif pattern == "ag_gemm":
            shard = self._alloc("shard", m * k * 2)
            full = self._view(shard, m, k)
            full[self.rank * ms:(self.rank + 1) * ms].copy_(x)
            a = full
            d = out if out is not None else torch.empty(m, n, dtype=torch.bfloat16, device=self.device)
            y = d
        else:
            shard = self._alloc("partial", m * n * 2)
            recv = self._alloc("recv", m * n * 2)
            a = x
            d = self._view(shard, m, n)
            y = out if out is not None else torch.empty(m // world, n, dtype=torch.bfloat16, device=self.device)
        if world > 1 and comm > 256:
            raise CometError("cuda: at most 256 comm chunks")
        if self.tile_done.numel() < -(-m // kern.tile_m):
            self.tile_done = torch.zeros(-(-m // kern.tile_m), dtype=torch.int64, device=self.device)
        sk = self._split_args(self.split(m, n, k, gemm_blocks, split, kern))
        rc = kern.tp_gemm(MODES[pattern] if world > 1 else 0, self.rank, world, a.data_ptr(), bnk.data_ptr(),
                              d.data_ptr(), n, m, n, k, m // world if world > 1 else m,
                              shard or None, recv or None, y.data_ptr(), self.flags, self.ready,
                              self.tile_done.data_ptr(), self.epoch.data_ptr(), tile_order.data_ptr(), comm,
                              self.sms, 1 if strat == "sequential" else 0, self.err.data_ptr(), self.timeout_ns,
                              *sk, self.sched_buf.data_ptr() if sched == "dynamic" else None, stream)
        if rc:
            raise CometError(f"cuda {pattern}: launch failed (code {rc}"
                             + (": a peer's buffers are not P2P-reachable)" if rc == -3 else ")"))
        if (self.check_each if check is None else check) and world > 1 and not torch.cuda.is_current_stream_capturing():
            self.check()
        return y

    def loopback(self, x_full, w, world: int, comm_blocks: int, sequential: bool = False, out=None,
                 wait: bool = False, order: str = "natural", split="auto", tile=None, sched: str | None = None):
        """Measurement aid, one PE: the AG+GEMM overlap kernel as rank 0 of a simulated `world`,
        its comm blocks copying (world-1) shard copies through local HBM beside the GEMM. wait=False:
        no waits (interference only). wait=True: the copies land in x_full's rows of shards
        1..world-1 and the GEMM tiles wait for them (x_full must hold `world` identical shards).
        Y = x_full @ w."""
        torch = self.torch
        self._checks("loopback", x_full, w)
        m, k = x_full.shape
        n = w.shape[1]
        bnk = self._nk(w)
        key = ("loopback", m, k)
        if getattr(self, "_lb_key", None) != key:
            self._lb = (torch.empty(m // world, k, dtype=torch.bfloat16, device=self.device),
                        torch.zeros(8 * 256, dtype=torch.int64, device=self.device),
                        torch.zeros(8 * 256, dtype=torch.int64, device=self.device),
                        torch.zeros(8, dtype=torch.int64, device=self.device))
            self._lb_key = key
        sink, flags, sink_flags, ready = self._lb
        y = out if out is not None else torch.empty(m, n, dtype=torch.bfloat16, device=self.device)
        cm = self.cluster_m
        gemm_blocks = self.sms if sequential else (self.sms - -(-comm_blocks // cm) * cm) // cm * cm
        kern = self.kernel(m, n, k, gemm_blocks, tile)
        if order == "natural":
            order_t = self._order("gemm", m, n, "natural", kern)
        else:
            from comet_ir.passes.reschedule import order_tiles

            okey = ("loopback", m, n, world, order, kern.tile)
            if okey not in self._orders:
                ids = order_tiles("ag_gemm", m, n, kern.tile_m * kern.cluster_m, kern.tile_n * kern.cluster_n, world, 0,
                                  order)
                self._orders[okey] = self.torch.tensor(ids, dtype=self.torch.int32, device=self.device)
            order_t = self._orders[okey]
        sk = self._split_args(self.split(m, n, k, gemm_blocks, split, kern))
        rc = kern.loopback(x_full.data_ptr(), bnk.data_ptr(), y.data_ptr(), m, n, k, world, sink.data_ptr(),
                               flags.data_ptr(), sink_flags.data_ptr(), ready.data_ptr(), self.epoch.data_ptr(),
                               order_t.data_ptr(), comm_blocks, self.sms, 1 if sequential else 0,
                               1 if wait else 0, self.err.data_ptr(), *sk,
                               self.sched_buf.data_ptr() if sched_mode(sched or self.sched) == "dynamic" else None,
                               torch.cuda.current_stream().cuda_stream)
        if rc:
            raise CometError(f"cuda loopback: launch failed (code {rc})")
        return y

    def check(self) -> None:
        code = self.lib.comet_read_error(self.err.data_ptr(), self.torch.cuda.current_stream().cuda_stream)
        if code:
            self.err.zero_()
            self.sk_flags.zero_()        # a late partial may have counted after its reducer gave up
            self.sched_buf.zero_()       # a cluster that gave up waiting may have left the counter set
            raise CometError(f"cuda: PE {self.rank}: {ERRORS.get(code, 'error')} within "
                             f"{self.timeout_ns / 1e9:g} s (code {code}); a peer is missing or stalled")


_CTX: TPContext | None = None


def context(**kw) -> TPContext:
    global _CTX
    if _CTX is None:
        _CTX = TPContext(**kw)
    return _CTX


def ag_gemm(x_shard, w, **kw):
    """Y[world*Ms, N] = allgather(X_shard[Ms, K]) @ W[K, N] over the default process group."""
    return context().run("ag_gemm", x_shard, w, **kw)


def gemm_rs(x, w_shard, **kw):
    """Y_shard[M/world, N] = reducescatter(X[M, K] @ W_shard[K, N]) (sum) over the default group."""
    return context().run("gemm_rs", x, w_shard, **kw)


def gemm(x, w, **kw):
    """Y = X @ W with the generated mainloop on all SMs (no communication)."""
    return context().run("gemm", x, w, **kw)


def CometTPLinear(in_features: int, out_features: int, mode: str = "ag", **kw):
    """torch.nn.Module over the default process group. mode="ag" (column-parallel): input rows
    are sharded over the ranks and gathered, `out_features` is this rank's slice of the output
    columns. mode="rs" (row-parallel): `in_features` is this rank's slice of the input columns,
    the output rows are reduce-scattered (summed). The weight is stored [out, in] like
    nn.Linear, which the kernel reads without a copy. `kw` go to ag_gemm / gemm_rs."""
    torch = _torch()

    class _CometTPLinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if mode not in ("ag", "rs"):
                raise CometError(f"CometTPLinear: mode must be 'ag' or 'rs' (got {mode!r})")
            self.mode = mode
            self.kw = kw
            self.weight = torch.nn.Parameter(torch.empty(out_features, in_features, dtype=torch.bfloat16,
                                                         device="cuda"))
            torch.nn.init.normal_(self.weight, std=in_features ** -0.5)

        def forward(self, x):
            w = self.weight.t()          # [in, out] view of [out, in] storage: zero copy
            if self.mode == "ag":
                return ag_gemm(x, w, **self.kw)
            return gemm_rs(x, w, **self.kw)

    return _CometTPLinear()
