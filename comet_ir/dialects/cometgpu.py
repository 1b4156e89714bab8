"""`cometgpu`: one persistent GPU kernel with thread-block specialisation (Comet / Flux ideas).

    %y = cometgpu.kernel ag_gemm %x, %w pattern ag_gemm world 2 tile [128, 256, 64]
           grid [64, 28] sms 132 comm 8 order local_first tiles [...]
           : (tensor<4096x4096xbf16>, tensor<4096x7168xbf16>) -> tensor<8192x7168xbf16> {
      cometgpu.signal ready count 2 scope rank
      cometgpu.signal shard_chunks count 16 scope chunk
      cometgpu.put_signal shard chunks 8 peers ring signal shard_chunks after ready
      cometgpu.wait shard_chunks role compute scope tile
    }

The kernel op holds the output tile grid (`grid`, over the GEMM the kernel computes) and tile
shape (`tile` = [BM, BN, BK]), the order compute blocks visit tiles (`order` names the policy,
`tiles` is the resulting list of linear tile ids m_blk * grid[1] + n_blk for rank 0; other ranks
apply the same policy relative to their rank), and the partition of the `sms` thread blocks into
`comm` blocks and `sms - comm` compute blocks (`comm_ratio`, when non-zero, is the ratio the
count came from). `cluster` = [2, 1] pairs adjacent row blocks in a thread-block cluster that
multicasts the shared B tile (TMA); tile ids then index the grid of cluster tiles. Its body lists the signals (per-tile / per-chunk / per-rank readiness flags)
and the comm ops that move data between PEs: `put_signal` (one-sided put + remote signal),
`wait` (bounded wait on a signal), `arrive` (a compute tile counts into a local signal),
`reduce` (sum of received partials) and token-level `gather` / `scatter` (MoE dispatch/combine).

Patterns: `ag_gemm`  Y[world*Ms, N] = allgather(X_shard[Ms, K]) @ W[K, N]
          `gemm_rs`  Y_shard[M/world, N] = reducescatter(X[M, K] @ W[K, N])
          `gemm`     Y[M, N] = X @ W (no communication; world must be 1)
"""
from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import IntegerAttr, StringAttr, FloatAttr, ArrayAttr, TensorType, BFloat16Type, Float16Type
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import Dialect, SpacedOpaqueSyntaxAttribute
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
)
from xdsl.traits import HasParent, NoTerminator
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from comet_ir.dialects.syntax import FLOAT, INT, INTS, NAME, NAMES, Field, FieldSyntax, enum_kind


class Pattern(StrEnum):
    AG_GEMM = "ag_gemm"
    GEMM_RS = "gemm_rs"
    GEMM = "gemm"


class Order(StrEnum):
    NATURAL = "natural"          # row-major over the grid
    LOCAL_FIRST = "local_first"  # tiles that need no remote data first, then arrival order
    ARRIVAL = "arrival"          # in the order their data arrive (or, for RS, are needed remotely)
    GIVEN = "given"              # `tiles` as written


class SignalScope(StrEnum):
    TILE = "tile"
    ROW_BLOCK = "row_block"
    CHUNK = "chunk"
    RANK = "rank"


class Role(StrEnum):
    COMPUTE = "compute"
    COMM = "comm"


class Peers(StrEnum):
    RING = "ring"    # peer (rank + i) % world for i = 1 .. world-1 (arrival order at the peers)
    ALL = "all"


class Payload(StrEnum):
    SHARD = "shard"      # this rank's input rows (all-gather)
    PARTIAL = "partial"  # rows of the partial result owned by the peer (reduce-scatter)


@irdl_attr_definition
class PatternAttr(EnumAttribute[Pattern], SpacedOpaqueSyntaxAttribute):
    name = "cometgpu.pattern"


@irdl_attr_definition
class OrderAttr(EnumAttribute[Order], SpacedOpaqueSyntaxAttribute):
    name = "cometgpu.order"


@irdl_attr_definition
class SignalScopeAttr(EnumAttribute[SignalScope], SpacedOpaqueSyntaxAttribute):
    name = "cometgpu.scope"


@irdl_attr_definition
class RoleAttr(EnumAttribute[Role], SpacedOpaqueSyntaxAttribute):
    name = "cometgpu.role"


@irdl_attr_definition
class PeersAttr(EnumAttribute[Peers], SpacedOpaqueSyntaxAttribute):
    name = "cometgpu.peers"


@irdl_attr_definition
class PayloadAttr(EnumAttribute[Payload], SpacedOpaqueSyntaxAttribute):
    name = "cometgpu.payload"


PATTERN = enum_kind(PatternAttr, Pattern)
ORDER = enum_kind(OrderAttr, Order)
SCOPE = enum_kind(SignalScopeAttr, SignalScope)
ROLE = enum_kind(RoleAttr, Role)
PEERS = enum_kind(PeersAttr, Peers)
PAYLOAD = enum_kind(PayloadAttr, Payload)


def _fail(op, field: str, msg: str) -> None:
    raise VerifyException(f"{op.name}: {field}: {msg}")


def _shape(op, v, what: str) -> tuple[int, ...]:
    t = v.type
    if not isinstance(t, TensorType) or len(t.get_shape()) != 2:
        _fail(op, what, f"must be a rank-2 tensor, got {t}")
    if any(d < 0 for d in t.get_shape()):
        _fail(op, what, f"must have a static shape, got {t}")
    return tuple(t.get_shape())


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def gemm_extent(pattern: str, x: tuple[int, int], w: tuple[int, int], world: int) -> tuple[int, int, int]:
    """(M, N, K) of the GEMM the kernel computes (AG: the gathered rows)."""
    if pattern == Pattern.AG_GEMM:
        return x[0] * world, w[1], x[1]
    return x[0], w[1], x[1]


class _GpuOp(FieldSyntax, IRDLOperation):
    pass


@irdl_op_definition
class KernelOp(_GpuOp):
    name = "cometgpu.kernel"
    x = operand_def(TensorType)
    w = operand_def(TensorType)
    res = result_def(TensorType)
    sym = prop_def(StringAttr)
    pattern = prop_def(PatternAttr)
    world = prop_def(IntegerAttr)
    tile = prop_def(ArrayAttr)
    grid = prop_def(ArrayAttr)
    sms = prop_def(IntegerAttr)
    comm = prop_def(IntegerAttr)
    comm_ratio = prop_def(FloatAttr)
    order = prop_def(OrderAttr)
    tiles = prop_def(ArrayAttr)
    cluster = prop_def(ArrayAttr)
    body = region_def()
    traits = traits_def(NoTerminator())
    FIELDS: ClassVar = (
        Field("sym", NAME, lead=True),
        Field("pattern", PATTERN),
        Field("world", INT, default=1),
        Field("tile", INTS),
        Field("grid", INTS),
        Field("sms", INT, default=132),
        Field("comm", INT, default=0),
        Field("comm_ratio", FLOAT, default=0.0),
        Field("order", ORDER, default="natural"),
        Field("tiles", INTS, default=[]),
        Field("cluster", INTS, default=[1, 1]),
    )

    # ---- convenience accessors (Python values)
    @property
    def shape_mnk(self) -> tuple[int, int, int]:
        return gemm_extent(self.field("pattern"), _shape(self, self.x, "x"), _shape(self, self.w, "w"),
                           self.field("world"))

    def body_ops(self) -> list:
        return [op for b in self.body.blocks for op in b.ops]

    def signals(self) -> dict[str, "SignalOp"]:
        return {op.field("sym"): op for op in self.body_ops() if isinstance(op, SignalOp)}

    def verify_(self) -> None:
        pat, world = Pattern(self.field("pattern")), self.field("world")
        x, w, y = _shape(self, self.x, "x"), _shape(self, self.w, "w"), _shape(self, self.res, "result")
        if world < 1:
            _fail(self, "world", "must be >= 1")
        for v, what in ((self.x, "x"), (self.w, "w"), (self.res, "result")):
            if not isinstance(v.type.element_type, (BFloat16Type, Float16Type)):
                _fail(self, what, f"element type must be bf16 or f16, got {v.type.element_type}")
        if x[1] != w[0]:
            _fail(self, "w", f"contraction size {w[0]} does not match x's K={x[1]}")
        m, n, k = gemm_extent(pat, x, w, world)
        want = {Pattern.AG_GEMM: (m, n), Pattern.GEMM: (m, n), Pattern.GEMM_RS: (m // world, n)}[pat]
        if pat == Pattern.GEMM_RS and m % world:
            _fail(self, "x", f"rows {m} are not divisible by world={world} (reduce-scatter)")
        if pat == Pattern.GEMM and world != 1:
            _fail(self, "world", "pattern gemm has no communication; world must be 1")
        if y != want:
            _fail(self, "result", f"shape {y} should be {want} for pattern {pat}")
        tile = self.field("tile")
        if len(tile) != 3 or any(t <= 0 for t in tile):
            _fail(self, "tile", f"must be three positive sizes [BM, BN, BK], got {tile}")
        bm, bn, bk = tile
        if bm % 64 or bn % 8 or bk % 16:
            _fail(self, "tile", f"[{bm}, {bn}, {bk}]: BM must be a multiple of 64 (wgmma), BN of 8, BK of 16")
        grid = self.field("grid")
        if grid != [cdiv(m, bm), cdiv(n, bn)]:
            _fail(self, "grid", f"{grid} should be [{cdiv(m, bm)}, {cdiv(n, bn)}] for M={m} N={n} tile {bm}x{bn}")
        sms, comm = self.field("sms"), self.field("comm")
        if sms < 1:
            _fail(self, "sms", "must be >= 1")
        if not 0 <= comm < sms:
            _fail(self, "comm", f"{comm} comm blocks must be in [0, sms={sms}) (at least one compute block)")
        if world == 1 and comm:
            _fail(self, "comm", "no comm blocks without communication (world = 1)")
        ratio = self.field("comm_ratio")
        if ratio and (not 0 < ratio < 1 or round(ratio * sms) != comm):
            _fail(self, "comm_ratio", f"{ratio} of {sms} SMs gives {round(ratio * sms)} comm blocks, not {comm}")
        cl = self.field("cluster")
        if len(cl) != 2 or cl[0] not in (1, 2) or cl[1] != 1:
            _fail(self, "cluster", f"{cl}: thread-block clusters of [1, 1] or [2, 1] (B tile multicast) are supported")
        tiles = self.field("tiles")
        items = cdiv(grid[0], cl[0]) * grid[1] if len(cl) == 2 and cl[0] in (1, 2) else grid[0] * grid[1]
        if tiles and sorted(tiles) != list(range(items)):
            _fail(self, "tiles", f"must be a permutation of the {items} (cluster) tile ids")
        if len(self.body.blocks) > 1:
            _fail(self, "body", "must have at most one block")
        names = [op.field("sym") for op in self.body_ops() if isinstance(op, SignalOp)]
        if len(set(names)) != len(names):
            _fail(self, "body", f"duplicate signal names {sorted(names)}")

    @property
    def compute(self) -> int:
        return self.field("sms") - self.field("comm")


class _BodyOp(_GpuOp):
    HAS_TYPES: ClassVar = False

    def kernel(self) -> KernelOp:
        return self.parent_op()  # type: ignore[return-value]

    def _need_signal(self, field: str) -> "SignalOp":
        name = self.field(field)
        sig = self.kernel().signals().get(name)
        if sig is None:
            _fail(self, field, f"no cometgpu.signal named '{name}' in the enclosing kernel")
        return sig


@irdl_op_definition
class SignalOp(_BodyOp):
    """A set of `count` readiness flags (epoch-valued, 64-bit, in symmetric memory)."""
    name = "cometgpu.signal"
    sym = prop_def(StringAttr)
    count = prop_def(IntegerAttr)
    scope = prop_def(SignalScopeAttr)
    traits = traits_def(HasParent(KernelOp))
    FIELDS: ClassVar = (Field("sym", NAME, lead=True), Field("count", INT), Field("scope", SCOPE))

    def verify_(self) -> None:
        if self.field("count") < 1:
            _fail(self, "count", "must be >= 1")


@irdl_op_definition
class PutSignalOp(_BodyOp):
    """Comm blocks: one-sided put of `payload` rows, `chunks` chunks per peer, each chunk's
    arrival raises one flag of `signal` at the peer; `after` is a signal waited first (the
    peer is ready / the rows are computed)."""
    name = "cometgpu.put_signal"
    payload = prop_def(PayloadAttr)
    chunks = prop_def(IntegerAttr)
    peers = prop_def(PeersAttr)
    signal = prop_def(StringAttr)
    after = prop_def(ArrayAttr)
    traits = traits_def(HasParent(KernelOp))
    FIELDS: ClassVar = (Field("payload", PAYLOAD, lead=True), Field("chunks", INT), Field("peers", PEERS, default="ring"),
                        Field("signal", NAME), Field("after", NAMES, default=[]))

    def verify_(self) -> None:
        k = self.kernel()
        if self.field("chunks") < 1:
            _fail(self, "chunks", "must be >= 1")
        if k.field("comm") and self.field("chunks") != k.field("comm"):
            _fail(self, "chunks", f"{self.field('chunks')} chunks but {k.field('comm')} comm blocks (one chunk per block)")
        sig = self._need_signal("signal")
        need = k.field("world") * self.field("chunks")
        if sig.field("count") < need:
            _fail(self, "signal", f"'{sig.field('sym')}' has {sig.field('count')} flags, needs world*chunks = {need}")
        for name in self.field("after"):
            if name not in k.signals():
                _fail(self, "after", f"no cometgpu.signal named '{name}' in the enclosing kernel")
        want = Payload.SHARD if k.field("pattern") == Pattern.AG_GEMM else Payload.PARTIAL
        if self.field("payload") != want:
            _fail(self, "payload", f"pattern {k.field('pattern')} moves '{want}'")


@irdl_op_definition
class WaitOp(_BodyOp):
    """`role` blocks wait (bounded) until the flags of `signal` that a unit of `scope` needs
    reach the current epoch."""
    name = "cometgpu.wait"
    signal = prop_def(StringAttr)
    role = prop_def(RoleAttr)
    scope = prop_def(SignalScopeAttr)
    traits = traits_def(HasParent(KernelOp))
    FIELDS: ClassVar = (Field("signal", NAME, lead=True), Field("role", ROLE), Field("scope", SCOPE))

    def verify_(self) -> None:
        self._need_signal("signal")


@irdl_op_definition
class ArriveOp(_BodyOp):
    """A compute tile, once stored, counts into its row block's flag of `signal` (local)."""
    name = "cometgpu.arrive"
    signal = prop_def(StringAttr)
    traits = traits_def(HasParent(KernelOp))
    FIELDS: ClassVar = (Field("signal", NAME, lead=True),)

    def verify_(self) -> None:
        sig = self._need_signal("signal")
        gm = self.kernel().field("grid")[0]
        if sig.field("count") < gm:
            _fail(self, "signal", f"'{sig.field('sym')}' needs one flag per row block ({gm})")


@irdl_op_definition
class ReduceOp(_BodyOp):
    """Y_shard = own partial rows + the `world - 1` received partials (after `signal`)."""
    name = "cometgpu.reduce"
    signal = prop_def(StringAttr)
    traits = traits_def(HasParent(KernelOp))
    FIELDS: ClassVar = (Field("signal", NAME, lead=True),)

    def verify_(self) -> None:
        self._need_signal("signal")
        if self.kernel().field("pattern") != Pattern.GEMM_RS:
            _fail(self, "signal", "cometgpu.reduce belongs to a gemm_rs kernel")


class _TokenOp(_BodyOp):
    traits = traits_def(HasParent(KernelOp))
    FIELDS: ClassVar = (Field("signal", NAME, lead=True), Field("tokens", INT), Field("hidden", INT),
                        Field("topk", INT, default=1))

    def verify_(self) -> None:
        self._need_signal("signal")
        for f in ("tokens", "hidden", "topk"):
            if self.field(f) < 1:
                _fail(self, f, "must be >= 1")


@irdl_op_definition
class GatherOp(_TokenOp):
    """Token-level gather: rows of `hidden` elements fetched per routed token (MoE dispatch);
    each arriving token block raises `signal`."""
    name = "cometgpu.gather"
    signal = prop_def(StringAttr)
    tokens = prop_def(IntegerAttr)
    hidden = prop_def(IntegerAttr)
    topk = prop_def(IntegerAttr)


@irdl_op_definition
class ScatterOp(_TokenOp):
    """Token-level scatter: rows sent back to the token's home rank (MoE combine)."""
    name = "cometgpu.scatter"
    signal = prop_def(StringAttr)
    tokens = prop_def(IntegerAttr)
    hidden = prop_def(IntegerAttr)
    topk = prop_def(IntegerAttr)


CometGPU = Dialect(
    "cometgpu",
    [KernelOp, SignalOp, PutSignalOp, WaitOp, ArriveOp, ReduceOp, GatherOp, ScatterOp],
    [PatternAttr, OrderAttr, SignalScopeAttr, RoleAttr, PeersAttr, PayloadAttr],
)
