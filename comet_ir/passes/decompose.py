"""`comet-decompose`: composite workload ops -> primitive ones (rewrite patterns).

    softmax(x)   -> m = reduce max; e = exp(x - m); y = e / reduce add e
    layernorm(x) -> mu = reduce mean; xc = x - mu; var = reduce mean (xc * xc);
                    y = xc * rsqrt(var, eps) [* gamma + beta]
    attention    -> s = gemm(q, k, transpose_b, batch 2); scale 1/sqrt(D); [causal_mask];
                    softmax (itself decomposed); o = gemm(p, v, batch 2)
                    with `flash=true` (deferred normalisation, the form flash attention's
                    key-sequence loop needs): m = reduce max s; e = exp(s - m);
                    u = gemm(e, v); o = u / reduce add e
    moe          -> logits = gemm(x, router); topk; weights = softmax(top-k logits);
                    dispatch; h = silu(xe @ w1) * (xe @ w3); ye = h @ w2; combine

The primitive forms are exactly those the reference cost model prices per SIMD operation
(rowmax, add/sub, exp, rowsum, div, mult, sqrt) and that `comet-tile` maps onto the vector unit.
`ops` restricts which composites are expanded (default: all); `flash=true` selects the
deferred-normalisation form of attention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerType, ModuleOp, TensorType, i32
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from comet_ir.dialects import comet_moe as MO
from comet_ir.dialects import comet_workload as W
from comet_ir.dialects.syntax import make_props
from comet_ir.errors import CometError

COMPOSITES = ("softmax", "layernorm", "attention", "moe")


class _Emitter:
    """Collects new ops (inserted before the matched op) and returns their results."""

    def __init__(self):
        self.ops: list[Operation] = []

    def op(self, cls, operands, result_types, **fields) -> Operation:
        o = cls.build(operands=operands, result_types=result_types,
                      properties=make_props(cls, **fields))
        self.ops.append(o)
        return o

    def one(self, cls, operands, result_type, **fields) -> SSAValue:
        return self.op(cls, operands, [result_type], **fields).results[0]

    def reduce(self, x: SSAValue, kind: str, axis: int) -> SSAValue:
        s = list(x.type.get_shape())
        s[axis] = 1
        return self.one(W.ReduceOp_, [x], TensorType(x.type.element_type, s), kind=kind, axis=axis)

    def binary(self, cls, a: SSAValue, b: SSAValue) -> SSAValue:
        shape = W.broadcast_shape(tuple(a.type.get_shape()), tuple(b.type.get_shape()))
        return self.one(cls, [a, b], TensorType(a.type.element_type, list(shape)))

    def unary(self, cls, x: SSAValue, **fields) -> SSAValue:
        return self.one(cls, [x], x.type, **fields)

    def softmax(self, x: SSAValue, axis: int) -> SSAValue:
        m = self.reduce(x, "max", axis)
        e = self.unary(W.ExpOp, self.binary(W.SubOp, x, m))
        return self.binary(W.DivOp, e, self.reduce(e, "add", axis))

    def gemm(self, a, b, batch=0, transpose_b=False, elem=None) -> SSAValue:
        sa, sb = a.type.get_shape(), b.type.get_shape()
        n = sb[batch] if transpose_b else sb[batch + 1]
        t = TensorType(elem or a.type.element_type, [*sa[:batch], sa[batch], n])
        return self.one(W.GemmOp, [a, b], t, batch=batch, transpose_b=transpose_b)


def _axis(op) -> int:
    rank = len(op.operands[0].type.get_shape())
    return op.field("axis") % rank


def _replace(rewriter: PatternRewriter, op: Operation, em: _Emitter, results) -> None:
    rewriter.replace_op(op, em.ops, list(results))


class SoftmaxPattern(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: W.SoftmaxOp, rewriter: PatternRewriter) -> None:
        em = _Emitter()
        y = em.softmax(op.input, _axis(op))
        _replace(rewriter, op, em, [y])


class LayerNormPattern(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: W.LayerNormOp, rewriter: PatternRewriter) -> None:
        ax = _axis(op)
        x = op.input
        rank = len(x.type.get_shape())
        if op.affine and ax != rank - 1:
            raise CometError(f"comet-decompose: {op.name} with gamma/beta over axis {ax} (not the "
                             "last) cannot be expressed with broadcasting elementwise ops")
        em = _Emitter()
        mu = em.reduce(x, "mean", ax)
        xc = em.binary(W.SubOp, x, mu)
        var = em.reduce(em.binary(W.MulOp, xc, xc), "mean", ax)
        y = em.binary(W.MulOp, xc, em.unary(MO.RsqrtOp, var, eps=op.field("eps")))
        if op.affine:
            y = em.binary(W.AddOp, em.binary(W.MulOp, y, op.affine[0]), op.affine[1])
        _replace(rewriter, op, em, [y])


class AttentionPattern(RewritePattern):
    def __init__(self, expand_softmax: bool, flash: bool = False):
        super().__init__()
        self.expand_softmax = expand_softmax
        self.flash = flash

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: W.AttentionOp, rewriter: PatternRewriter) -> None:
        em = _Emitter()
        d = op.q.type.get_shape()[3]
        scale = op.properties.get("scale")
        factor = scale.value.data if scale is not None else 1.0 / math.sqrt(d)
        s = em.gemm(op.q, op.k, batch=2, transpose_b=True)
        s = em.unary(W.ScaleOp, s, factor=factor)
        if op.field("causal"):
            s = em.unary(MO.CausalMaskOp, s)
        if self.flash:
            # divide after the second GEMM: the row sum is then a per-row scalar that an
            # online softmax can rescale chunk by chunk (comet-online-softmax)
            e = em.unary(W.ExpOp, em.binary(W.SubOp, s, em.reduce(s, "max", 3)))
            o = em.binary(W.DivOp, em.gemm(e, op.v, batch=2), em.reduce(e, "add", 3))
            _replace(rewriter, op, em, [o])
            return
        p = em.softmax(s, 3) if self.expand_softmax else em.unary(W.SoftmaxOp, s, axis=3)
        o = em.gemm(p, op.v, batch=2)
        _replace(rewriter, op, em, [o])


class MoEPattern(RewritePattern):
    def __init__(self, expand_softmax: bool):
        super().__init__()
        self.expand_softmax = expand_softmax

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: W.MoEOp, rewriter: PatternRewriter) -> None:
        em = _Emitter()
        t, h = op.x.type.get_shape()
        e, k = op.field("experts"), op.field("topk")
        elem = op.x.type.element_type
        logits = em.gemm(op.x, op.router)
        top = em.op(MO.TopKOp, [logits], [TensorType(elem, [t, k]), TensorType(i32, [t, k])], k=k)
        vals, idx = top.results
        wts = em.softmax(vals, 1) if self.expand_softmax else em.unary(W.SoftmaxOp, vals, axis=1)
        # capacity = tokens: top-k experts of a token are distinct, so no expert gets more.
        xe = em.one(MO.MoEDispatchOp, [op.x, idx], TensorType(elem, [e, t, h]), experts=e, capacity=t)
        h1 = em.gemm(xe, op.w1, batch=1)
        h3 = em.gemm(xe, op.w3, batch=1)
        g = em.binary(W.MulOp, em.unary(W.SiluOp, h1), h3)
        ye = em.gemm(g, op.w2, batch=1)
        y = em.one(MO.MoECombineOp, [ye, idx, wts], op.res.type)
        _replace(rewriter, op, em, [y])


@dataclass(frozen=True)
class DecomposePass(ModulePass):
    """Expand composite comet ops (softmax, layernorm, attention, moe) into primitives."""

    name = "comet-decompose"
    ops: tuple[str, ...] = ("all",)
    flash: bool = False

    def selected(self) -> set[str]:
        chosen = set(COMPOSITES) if "all" in self.ops else set(self.ops)
        bad = chosen - set(COMPOSITES)
        if bad:
            raise CometError(f"comet-decompose: unknown op kind(s) {sorted(bad)} in ops= "
                             f"(choose from all, {', '.join(COMPOSITES)})")
        return chosen

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.passes._mapping import located_at

        with located_at(op):
            self._apply(ctx, op)

    def _apply(self, ctx: Context, op: ModuleOp) -> None:
        chosen = self.selected()
        sm = "softmax" in chosen
        pats: list[RewritePattern] = []
        if sm:
            pats.append(SoftmaxPattern())
        if "layernorm" in chosen:
            pats.append(LayerNormPattern())
        if "attention" in chosen:
            pats.append(AttentionPattern(sm, self.flash))
        if "moe" in chosen:
            pats.append(MoEPattern(sm))
        PatternRewriteWalker(GreedyRewritePatternApplier(pats, dce_enabled=False),
                             apply_recursively=False).rewrite_module(op)
