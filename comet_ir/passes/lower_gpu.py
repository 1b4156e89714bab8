"""`comet-lower-gpu{arch=... order=... comm=-1 plain=false}`: tensor-parallel comet workload form
-> one `cometgpu.kernel` per communication/GEMM pair.

    %xg = comet.collective allgather %x axis 0 world W       %p = comet.gemm %x, %w
    %y  = comet.gemm %xg, %w                                 %y = comet.collective reducescatter %p
  ==> %y = cometgpu.kernel ag_gemm %x, %w pattern ag_gemm      axis 0 world W reduce add
                                                           ==> %y = cometgpu.kernel gemm_rs %x, %w ...

The tile shape is the Hopper cooperative tile (128 x 256 x 64, two consumer warp groups) in
clusters of 2 x 1 (measured 2-4 % faster than 1 x 1 on the H100, benchmarks/RESULTS.md); the
grid is computed from the GEMM's M and N; the comm-block count comes from the GPU cost model
(`comet_ir/backends/cost/gpu_model.py`) for this shape on `arch` (the module's `comet.arch`
when the option is empty) unless `comm` >= 0 is given; the tile order is set as by
`comet-reschedule` (local-first for AG, arrival = send order for RS). The model's predicted
times and its overlap-vs-sequential choice are recorded as `comet.predicted_us`,
`comet.sequential_us` and `comet.strategy`. With `plain=true` a lone 2-D GEMM becomes a
`gemm` kernel (all blocks compute).
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import (BFloat16Type, Float16Type, FloatAttr, ModuleOp, StringAttr, TensorType, f64)
from xdsl.ir import Block, Region
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker,
                                   RewritePattern, op_type_rewrite_pattern)

from comet_ir.backends.cost import gpu_model
from comet_ir.dialects.comet_enums import ColType, ReduceOp
from comet_ir.dialects.comet_workload import CollectiveOp, GemmOp
from comet_ir.dialects.cometgpu import (ArriveOp, KernelOp, PutSignalOp, ReduceOp as GpuReduceOp, SignalOp,
                                        WaitOp, cdiv)
from comet_ir.dialects.syntax import make_props
from comet_ir.errors import CometError
from comet_ir.passes.reschedule import order_tiles

TILE = (128, 256, 64)
CLUSTER = (2, 1)       # thread-block cluster: 2 row blocks share the B tile (TMA multicast)
MAX_LISTED_TILES = 64


def _check_types(what: str, *vals) -> None:
    for v in vals:
        t = v.type
        if not isinstance(t, TensorType) or len(t.get_shape()) != 2:
            raise CometError(f"comet-lower-gpu: {what} needs rank-2 tensors, got {t}")
        if not isinstance(t.element_type, (BFloat16Type, Float16Type)):
            raise CometError(f"comet-lower-gpu: {what}: only bf16/f16 GEMMs have a GPU kernel, got {t.element_type}")


def body_ops(pattern: str, world: int, comm: int, grid_m: int) -> list:
    """The signals and comm ops of a kernel (empty without communication)."""
    if world == 1 or pattern == "gemm":
        return []
    S = lambda **kw: SignalOp.create(properties=make_props(SignalOp, **kw))  # noqa: E731
    ops = [S(sym="ready", count=world, scope="rank")]
    if pattern == "ag_gemm":
        ops += [S(sym="shard_ready", count=world * comm, scope="chunk"),
                PutSignalOp.create(properties=make_props(PutSignalOp, payload="shard", chunks=comm, peers="ring",
                                                         signal="shard_ready", after=["ready"])),
                WaitOp.create(properties=make_props(WaitOp, signal="shard_ready", role="compute", scope="tile"))]
    else:
        ops += [S(sym="tile_done", count=grid_m, scope="row_block"),
                S(sym="partial_ready", count=world * comm, scope="chunk"),
                ArriveOp.create(properties=make_props(ArriveOp, signal="tile_done")),
                WaitOp.create(properties=make_props(WaitOp, signal="tile_done", role="comm", scope="row_block")),
                PutSignalOp.create(properties=make_props(PutSignalOp, payload="partial", chunks=comm, peers="ring",
                                                         signal="partial_ready", after=["ready", "tile_done"])),
                GpuReduceOp.create(properties=make_props(GpuReduceOp, signal="partial_ready"))]
    return ops


def build_kernel(pattern: str, x, w, result_type, world: int, arch: str, sym: str, comm: int = -1,
                 order: str = "") -> KernelOp:
    xs, ws = tuple(x.type.get_shape()), tuple(w.type.get_shape())
    m = xs[0] * world if pattern == "ag_gemm" else xs[0]
    n, k = ws[1], xs[1]
    bm, bn, bk = TILE
    est = gpu_model.estimate(pattern, m, n, k, world, arch, comm_blocks=comm if comm >= 0 and world > 1 else None)
    a = gpu_model._arch(arch)
    c = 0 if world == 1 or pattern == "gemm" else (comm if comm > 0 else est.comm_blocks)
    pol = order or {"ag_gemm": "local-first", "gemm_rs": "arrival"}.get(pattern, "natural")
    if world == 1:
        pol = "natural"
    tiles = order_tiles(pattern, m, n, bm * CLUSTER[0], bn, world, 0, pol)
    if len(tiles) > MAX_LISTED_TILES:
        tiles = []   # large grids: the policy alone defines the order (see comet-reschedule)
    props = make_props(KernelOp, sym=sym, pattern=pattern, world=world, tile=list(TILE),
                       grid=[cdiv(m, bm), cdiv(n, bn)], sms=a.sm_count, comm=c, comm_ratio=0.0,
                       order=pol.replace("-", "_"), tiles=tiles, cluster=list(CLUSTER))
    attrs = {"comet.predicted_us": FloatAttr(round(est.overlap_us, 2), f64),
             "comet.sequential_us": FloatAttr(round(est.sequential_us, 2), f64),
             "comet.strategy": StringAttr(est.choice)}
    block = Block(body_ops(pattern, world, c, cdiv(m, bm)))
    return KernelOp.create(operands=[x, w], result_types=[result_type], properties=props, attributes=attrs,
                           regions=[Region(block)])


def _name(counter: dict, base: str) -> str:
    n = counter.get(base, 0)
    counter[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _single_use(v) -> bool:
    return len(list(v.uses)) == 1


@dataclass
class _AgGemm(RewritePattern):
    pass_: "LowerToGpu"
    counter: dict

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: GemmOp, rewriter: PatternRewriter) -> None:
        col = op.lhs.owner
        if not isinstance(col, CollectiveOp) or ColType(col.field("kind")) != ColType.ALLGATHER:
            return
        if op.field("batch") or op.field("transpose_b"):
            raise CometError("comet-lower-gpu: all-gather + GEMM needs a plain 2-D GEMM (no batch, no transpose_b)")
        if col.field("axis") % 2 != 0:
            raise CometError("comet-lower-gpu: all-gather + GEMM gathers rows (axis 0); "
                             f"got axis {col.field('axis')}")
        _check_types("all-gather + GEMM", col.input, op.rhs, op.res)
        kern = build_kernel("ag_gemm", col.input, op.rhs, op.res.type, col.field("world"), self.pass_.arch_for(op),
                            _name(self.counter, "ag_gemm"),
                            self.pass_.comm, self.pass_.order)
        rewriter.replace(op, kern)
        if not list(col.res.uses):
            rewriter.erase(col)


@dataclass
class _GemmRs(RewritePattern):
    pass_: "LowerToGpu"
    counter: dict

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: CollectiveOp, rewriter: PatternRewriter) -> None:
        if ColType(op.field("kind")) != ColType.REDUCESCATTER:
            return
        g = op.input.owner
        if not isinstance(g, GemmOp):
            return
        if ReduceOp(op.field("reduce")) != ReduceOp.ADD:
            raise CometError(f"comet-lower-gpu: GEMM + reduce-scatter supports reduce add, got {op.field('reduce')}")
        if op.field("axis") % 2 != 0:
            raise CometError("comet-lower-gpu: GEMM + reduce-scatter scatters rows (axis 0); "
                             f"got axis {op.field('axis')}")
        if not _single_use(g.res):
            raise CometError("comet-lower-gpu: the GEMM feeding a reduce-scatter has other users")
        if g.field("batch") or g.field("transpose_b"):
            raise CometError("comet-lower-gpu: GEMM + reduce-scatter needs a plain 2-D GEMM")
        _check_types("GEMM + reduce-scatter", g.lhs, g.rhs, op.res)
        kern = build_kernel("gemm_rs", g.lhs, g.rhs, op.res.type, op.field("world"), self.pass_.arch_for(op),
                            _name(self.counter, "gemm_rs"),
                            self.pass_.comm, self.pass_.order)
        rewriter.replace(op, kern)
        rewriter.erase(g)


@dataclass
class _PlainGemm(RewritePattern):
    pass_: "LowerToGpu"
    counter: dict

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: GemmOp, rewriter: PatternRewriter) -> None:
        if op.field("batch") or op.field("transpose_b") or isinstance(op.lhs.owner, CollectiveOp):
            return
        if any(isinstance(u.operation, CollectiveOp) for u in op.res.uses):
            return
        _check_types("GEMM", op.lhs, op.rhs, op.res)
        rewriter.replace(op, build_kernel("gemm", op.lhs, op.rhs, op.res.type, 1, self.pass_.arch_for(op),
                                          _name(self.counter, "gemm")))


@dataclass(frozen=True)
class LowerToGpu(ModulePass):
    name = "comet-lower-gpu"

    arch: str = ""
    order: str = ""       # empty: local-first for AG, arrival for RS
    comm: int = -1        # comm blocks; -1: chosen by the cost model
    plain: bool = False   # also lower lone GEMMs to all-compute kernels

    def arch_for(self, op) -> str:
        if self.arch:
            return self.arch
        return gpu_model._module_arch(op) or "h100"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.order and self.order.replace("_", "-") not in ("local-first", "arrival", "natural"):
            raise CometError(f"comet-lower-gpu: order must be local-first, arrival or natural, got '{self.order}'")
        if self.comm < -1:
            raise CometError(f"comet-lower-gpu: comm must be -1 (chosen by the cost model) or a block count >= 0, "
                             f"got {self.comm}")
        counter: dict = {}
        pats = [_AgGemm(self, counter), _GemmRs(self, counter)]
        PatternRewriteWalker(GreedyRewritePatternApplier(pats, dce_enabled=False), apply_recursively=False).rewrite_module(op)
        if self.plain:
            PatternRewriteWalker(_PlainGemm(self, counter), apply_recursively=False).rewrite_module(op)
