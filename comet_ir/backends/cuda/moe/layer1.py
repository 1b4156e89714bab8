"""The one-kernel layer1 (`csrc/moe_layer1.cu`, library `libcomet_moe_layer1.so`): grouped GEMM2
whose finished column tiles are returned to the token owners by comm CTAs of the same launch,
then a combine that waits per (source PE, column tile). Built with kernels.py's nvcc runner;
lookup: $COMET_MOE_L1_LIB, then the cache, else nvcc.

Error codes the kernels leave in the layer's error word (CometMoE.check_errors):
4 = a GEMM2 tile never completed (comm wait ran out), 5 = a peer never returned its rows.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

from comet_ir.backends.cuda.moe import kernels
from comet_ir.errors import CometError

SRC = Path(__file__).with_name("csrc") / "moe_layer1.cu"
TILE_N = 256          # column tile of the GEMM (and of the return): hidden must be a multiple
P8 = ctypes.c_void_p * 8


class L1Comm(ctypes.Structure):
    """csrc l1::L1Comm: what the comm CTAs return where."""
    _fields_ = [("y", ctypes.c_void_p), ("recv_off", ctypes.c_void_p), ("counts", ctypes.c_void_p),
                ("send_off", ctypes.c_void_p), ("perm", ctypes.c_void_p), ("peer_ret", P8), ("peer_sig", P8),
                ("counters", ctypes.c_void_p), ("err", ctypes.c_void_p), ("timeout_ns", ctypes.c_longlong),
                ("vec", ctypes.c_int), ("experts", ctypes.c_int), ("ep", ctypes.c_int), ("me", ctypes.c_int),
                ("nt", ctypes.c_int), ("sys_scope", ctypes.c_int)]


def build(out: Path | None = None) -> Path:
    cutlass = kernels.cutlass_root()
    if cutlass is None:
        raise CometError("moe: CUTLASS headers not found (set CUTLASS_DIR or pip install nvidia-cutlass)")
    out = out or kernels.cached_lib("libcomet_moe_layer1.so", SRC)
    kernels._run_nvcc(kernels.nvcc_command(out, cutlass, SRC), out, "the layer1 kernel", "moe: nvcc (layer1) failed:\n")
    return out


_LIB = None


def load() -> ctypes.CDLL:
    global _LIB
    if _LIB is not None:
        return _LIB
    path = os.environ.get("COMET_MOE_L1_LIB")
    p = Path(path) if path else kernels.cached_lib("libcomet_moe_layer1.so", SRC)
    if not p.exists():
        p = build(p)
    lib = ctypes.CDLL(str(p))
    vp, i32 = ctypes.c_void_p, ctypes.c_int
    lib.moe_l1_create.argtypes = [i32, i32, i32, i32, ctypes.POINTER(ctypes.c_int)]
    lib.moe_l1_create.restype = vp
    lib.moe_l1_destroy.argtypes = [vp]
    lib.moe_l1_grid_ctas.argtypes = [vp]
    lib.moe_l1_run.argtypes = [vp, vp, vp, vp, vp, ctypes.POINTER(L1Comm), i32, vp]
    lib.moe_l1_combine.argtypes = [vp, vp, vp, vp, i32, i32, i32, vp, vp, i32, i32, i32, vp, ctypes.c_longlong, vp]
    lib.moe_l1_zero.argtypes = [vp, i32, vp]
    for f in (lib.moe_l1_run, lib.moe_l1_combine, lib.moe_l1_zero, lib.moe_l1_desc_size, lib.moe_l1_grid_ctas,
              lib.moe_l1_tile_n):
        f.restype = ctypes.c_int
    if lib.moe_l1_desc_size() != ctypes.sizeof(L1Comm) or lib.moe_l1_tile_n() != TILE_N:
        raise CometError("moe: the layer1 library's descriptor layout does not match layer1.py (stale build?)")
    _LIB = lib
    return lib


class Layer1Gemm:
    """Handle of the fused layer1 kernel for `groups` local experts, y [rows, n] = h [rows, k] @ w2t[g]^T."""

    def __init__(self, groups: int, n: int, k: int, device: int):
        if n % TILE_N or k % 8:
            raise CometError(f"moe: the fused layer1 needs hidden a multiple of {TILE_N} and ffn/tp a multiple of 8 "
                             f"(got hidden={n}, ffn/tp={k})")
        self.lib = load()
        err = ctypes.c_int(0)
        self.h = self.lib.moe_l1_create(groups, n, k, device, ctypes.byref(err))
        if not self.h:
            raise CometError(f"moe: creating the fused layer1 kernel failed (code {err.value})")
        self.groups, self.n, self.k, self.nt = groups, n, k, n // TILE_N
        self.grid_ctas = self.lib.moe_l1_grid_ctas(self.h)

    def run(self, offsets_ptr: int, h_ptr: int, w_ptr: int, y_ptr: int, comm: L1Comm, comm_ctas: int,
            stream: int) -> None:
        rc = self.lib.moe_l1_run(self.h, offsets_ptr, h_ptr, w_ptr, y_ptr, ctypes.byref(comm), comm_ctas, stream)
        if rc == -8:
            raise CometError(f"moe: fused layer1 needs a positive, even comm-CTA count below {self.grid_ctas}, "
                             f"got {comm_ctas}")
        kernels.check(rc, "fused layer1")

    def combine(self, ret_ptr: int, inv_ptr: int | None, gates_ptr: int, out_ptr: int, tokens: int, topk: int,
                sig_ptr: int, my_counts_ptr: int, experts: int, ep: int, sys_scope: bool, err_ptr: int,
                timeout_ns: int, stream: int) -> None:
        kernels.check(self.lib.moe_l1_combine(ret_ptr, inv_ptr, gates_ptr, out_ptr, tokens, self.n, topk, sig_ptr,
                                              my_counts_ptr, experts, ep, int(sys_scope), err_ptr, timeout_ns,
                                              stream), "layer1 combine")

    def __del__(self):
        try:
            if getattr(self, "h", None):
                self.lib.moe_l1_destroy(self.h)
        except Exception:
            pass
