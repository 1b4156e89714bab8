"""`comet-lower-moe{ep=… tp=… arch=…}`: lower `comet.moe` to the Comet MoE kernels.

    comet.moe %x, %router, %w1, %w3, %w2 topk k experts E
  ==>
    %logits      = comet.gemm %x, %router                      (router GEMM)
    %idx, %gates = cometmoe.route %logits {topk, experts}
    %h  = cometmoe.layer0 %x, %idx, %w1, %w3 {split = "M", order = "local_first", ...}
    %y  = cometmoe.layer1 %h, %idx, %gates, %w2 {split = "N", order = "column_pipelined", ...}

layer0 (dispatch + GEMM1 + SwiGLU) decomposes the shared tensor (the expert input buffer)
along M: token rows arrive per source rank, row tiles whose rows are local run first, the
rest in arrival order. layer1 (GEMM2 + combine) decomposes it along N: column tiles of the
output finish one after another and the comm blocks send finished columns back while the
next ones compute. `comm_blocks` (SMs for the comm role) is the adaptive ratio chosen by the
MoE cost model for this shape on `arch` (0 when ep == 1: nothing moves between ranks).
Tokens per rank are the x rows; the result `h` has a dynamic row count (routing decides it).
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import (ArrayAttr, BoolAttr, FloatAttr, IntegerAttr, ModuleOp, StringAttr,
                                   TensorType, f32, i64, Float64Type, DYNAMIC_INDEX)
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (PatternRewriter, PatternRewriteWalker, RewritePattern,
                                   op_type_rewrite_pattern)

from comet_ir.backends.cost.moe_model import MoEConfig, choose_comm_ratio, get_arch, predict, DEFAULT_CALIB
from comet_ir.dialects.comet_workload import GemmOp, MoEOp
from comet_ir.dialects.cometgpu_moe import Layer0Op, Layer1Op, RouteOp
from comet_ir.errors import CometError


def _i(v: int) -> IntegerAttr:
    return IntegerAttr(v, i64)


@dataclass
class _LowerMoE(RewritePattern):
    ep: int
    tp: int
    arch: str

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MoEOp, rewriter: PatternRewriter) -> None:
        t, h = op.x.type.get_shape()
        e = op.experts.value.data
        k = op.topk.value.data
        f = op.w1.type.get_shape()[2]
        if e % self.ep:
            raise CometError(f"comet-lower-moe: ep={self.ep} does not divide experts={e}")
        if f % self.tp:
            raise CometError(f"comet-lower-moe: tp={self.tp} does not divide ffn={f}")
        cfg = MoEConfig(t, h, f, e, k, self.ep, self.tp)
        ratio, _ = choose_comm_ratio(cfg, self.arch)
        g = get_arch(self.arch)
        comm = int(round(ratio * g.n_sm))
        pred = predict(cfg, self.arch, "fused" if self.ep > 1 else "grouped", ratio)
        et = op.x.type.element_type
        logits = GemmOp.create(operands=[op.x, op.router], result_types=[TensorType(et, [t, e])],
                               properties={"batch": _i(0), "transpose_b": BoolAttr.from_bool(False)})
        route = RouteOp.create(operands=[logits.results[0]],
                               result_types=[TensorType(i64, [t, k]), TensorType(f32, [t, k])],
                               attributes={"topk": _i(k), "experts": _i(e)})
        common = {"ep": _i(self.ep), "tp": _i(self.tp), "experts": _i(e), "topk": _i(k),
                  "tile": ArrayAttr([_i(DEFAULT_CALIB.bm), _i(DEFAULT_CALIB.bn)]),
                  "comm_blocks": _i(comm)}
        l0 = Layer0Op.create(
            operands=[op.x, route.results[0], op.w1, op.w3],
            result_types=[TensorType(et, [DYNAMIC_INDEX, f // self.tp])],
            attributes={**common, "split": StringAttr("M"), "order": StringAttr("local_first"),
                        "predicted_ms": FloatAttr(round(pred["permute_ms"] + pred["gemm1_ms"] + pred["swiglu_ms"], 4), f32)})
        l1 = Layer1Op.create(
            operands=[l0.results[0], route.results[0], route.results[1], op.w2],
            result_types=[op.res.type],
            attributes={**common, "split": StringAttr("N"), "order": StringAttr("column_pipelined"),
                        "predicted_ms": FloatAttr(round(pred["gemm2_ms"] + pred["combine_ms"], 4), f32)})
        rewriter.replace_op(op, [logits, route, l0, l1], [l1.results[0]])


@dataclass(frozen=True)
class LowerMoE(ModulePass):
    """Lower comet.moe to cometmoe.route + layer0 + layer1 for expert/tensor parallelism."""

    name = "comet-lower-moe"
    ep: int = 1
    tp: int = 1
    arch: str = "h100"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.ep < 1 or self.tp < 1:
            raise CometError(f"comet-lower-moe: ep and tp must be >= 1 (got ep={self.ep} tp={self.tp})")
        get_arch(self.arch)
        PatternRewriteWalker(_LowerMoE(self.ep, self.tp, self.arch), apply_recursively=False).rewrite_module(op)
