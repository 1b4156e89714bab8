"""Workload-form ops of the comet dialect: tensor-valued compound ML operations.

Shapes follow numpy: reductions keep the reduced axis with size 1, binary elementwise ops
broadcast. Every op checks ranks and shapes in `verify_`, naming the op and the field.
"""
from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import IsTerminator, HasParent
from xdsl.utils.exceptions import VerifyException

from comet_ir.dialects.comet_enums import (
    ColType,
    ColTypeAttr,
    REDUCING,
    ReduceKind,
    ReduceKindAttr,
    ReduceOp,
    ReduceOpAttr,
)
from comet_ir.dialects.syntax import (
    BOOL,
    FLOAT,
    INT,
    NAME,
    STR,
    Field,
    FieldSyntax,
    enum_kind,
)


def _shape(op: IRDLOperation, value, what: str) -> tuple[int, ...]:
    t = value.type
    if not isinstance(t, TensorType):
        raise VerifyException(f"{op.name}: {what} must be a ranked tensor, got {t}")
    return tuple(t.get_shape())


def _elem(value) -> Attribute:
    return value.type.element_type


def _check(op: IRDLOperation, cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise VerifyException(f"{op.name}: {field}: {msg}")


def _axis(op: IRDLOperation, axis: int, rank: int) -> int:
    _check(op, -rank <= axis < rank, "axis", f"{axis} is out of range for rank {rank}")
    return axis % rank


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(reversed(out))


class _Workload(FieldSyntax, IRDLOperation):
    pass


@irdl_op_definition
class GemmOp(_Workload):
    """C = A @ B (B transposed with `transpose_b`), with `batch` leading batch dims."""

    name = "comet.gemm"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    res = result_def(TensorType)
    batch = prop_def(IntegerAttr)
    transpose_b = prop_def(BoolAttr)
    FIELDS: ClassVar = (Field("batch", INT, default=0), Field("transpose_b", BOOL, default=False))

    def verify_(self) -> None:
        a, b, c = _shape(self, self.lhs, "lhs"), _shape(self, self.rhs, "rhs"), _shape(self, self.res, "result")
        nb = self.field("batch")
        _check(self, nb >= 0, "batch", "must be >= 0")
        for nm, s in (("lhs", a), ("rhs", b), ("result", c)):
            _check(self, len(s) == nb + 2, nm, f"rank {len(s)} but batch={nb} needs rank {nb + 2}")
        _check(self, a[:nb] == b[:nb] == c[:nb], "batch", f"batch dims differ: {a[:nb]}, {b[:nb]}, {c[:nb]}")
        m, k = a[nb], a[nb + 1]
        kb, n = (b[nb + 1], b[nb]) if self.field("transpose_b") else (b[nb], b[nb + 1])
        _check(self, k == kb, "rhs", f"contraction size {kb} does not match lhs K={k}")
        _check(self, c[nb:] == (m, n), "result", f"shape {c[nb:]} should be ({m}, {n})")


class _Unary(_Workload):
    """Shape-preserving op on one tensor."""

    def verify_(self) -> None:
        x, r = _shape(self, self.operands[0], "input"), _shape(self, self.results[0], "result")
        _check(self, x == r, "result", f"shape {r} differs from input shape {x}")
        if hasattr(self, "axis"):
            _axis(self, self.field("axis"), len(x))


@irdl_op_definition
class SoftmaxOp(_Unary):
    name = "comet.softmax"
    input = operand_def(TensorType)
    res = result_def(TensorType)
    axis = prop_def(IntegerAttr)
    FIELDS: ClassVar = (Field("axis", INT, default=-1),)


@irdl_op_definition
class LayerNormOp(_Workload):
    """y = (x - mean) / sqrt(var + eps) [* gamma + beta]; gamma/beta optional, shaped like the axis."""

    name = "comet.layernorm"
    input = operand_def(TensorType)
    affine = var_operand_def(TensorType)
    res = result_def(TensorType)
    axis = prop_def(IntegerAttr)
    eps = prop_def(FloatAttr)
    FIELDS: ClassVar = (Field("axis", INT, default=-1), Field("eps", FLOAT, default=1e-5))

    def verify_(self) -> None:
        x, r = _shape(self, self.input, "input"), _shape(self, self.res, "result")
        _check(self, x == r, "result", f"shape {r} differs from input shape {x}")
        ax = _axis(self, self.field("axis"), len(x))
        _check(self, self.field("eps") > 0, "eps", "must be > 0")
        _check(self, len(self.affine) in (0, 2), "affine", "takes either no operands or gamma and beta")
        for v in self.affine:
            _check(self, _shape(self, v, "gamma/beta") == (x[ax],), "affine",
                   f"gamma/beta must have shape ({x[ax]},)")


def _unary(op_name: str, doc: str):
    cls = type(op_name.split(".")[1].capitalize() + "Op", (_Unary,), {
        "__doc__": doc,
        "name": op_name,
        "input": operand_def(TensorType),
        "res": result_def(TensorType),
    })
    return irdl_op_definition(cls)


ExpOp = _unary("comet.exp", "Elementwise exp.")
SiluOp = _unary("comet.silu", "Elementwise x * sigmoid(x).")
GeluOp = _unary("comet.gelu", "Elementwise GELU (tanh approximation).")


@irdl_op_definition
class ScaleOp(_Unary):
    name = "comet.scale"
    input = operand_def(TensorType)
    res = result_def(TensorType)
    factor = prop_def(FloatAttr)
    FIELDS: ClassVar = (Field("factor", FLOAT, lead=True),)


class _Binary(_Workload):
    FIELDS: ClassVar = ()

    def verify_(self) -> None:
        a, b = _shape(self, self.lhs, "lhs"), _shape(self, self.rhs, "rhs")
        r = _shape(self, self.res, "result")
        bc = broadcast_shape(a, b)
        _check(self, bc is not None, "rhs", f"shapes {a} and {b} do not broadcast")
        _check(self, r == bc, "result", f"shape {r} should be the broadcast shape {bc}")


def _binary(op_name: str, doc: str):
    cls = type(op_name.split(".")[1].capitalize() + "Op", (_Binary,), {
        "__doc__": doc,
        "name": op_name,
        "lhs": operand_def(TensorType),
        "rhs": operand_def(TensorType),
        "res": result_def(TensorType),
    })
    return irdl_op_definition(cls)


AddOp = _binary("comet.add", "Elementwise a + b (numpy broadcasting).")
SubOp = _binary("comet.sub", "Elementwise a - b (numpy broadcasting).")
MulOp = _binary("comet.mul", "Elementwise a * b (numpy broadcasting).")
DivOp = _binary("comet.div", "Elementwise a / b (numpy broadcasting).")


@irdl_op_definition
class ReduceOp_(_Workload):
    """Reduction over one axis; the axis is kept with size 1."""

    name = "comet.reduce"
    input = operand_def(TensorType)
    res = result_def(TensorType)
    kind = prop_def(ReduceKindAttr)
    axis = prop_def(IntegerAttr)
    FIELDS: ClassVar = (Field("kind", enum_kind(ReduceKindAttr, ReduceKind), lead=True),
                        Field("axis", INT, default=-1))

    def verify_(self) -> None:
        x, r = _shape(self, self.input, "input"), _shape(self, self.res, "result")
        ax = _axis(self, self.field("axis"), len(x))
        want = x[:ax] + (1,) + x[ax + 1:]
        _check(self, r == want, "result", f"shape {r} should be {want} (reduced axis kept as 1)")


@irdl_op_definition
class AttentionOp(_Workload):
    """O = softmax(scale * Q K^T [+ causal mask]) V on [B, H, S, D] tensors."""

    name = "comet.attention"
    q = operand_def(TensorType)
    k = operand_def(TensorType)
    v = operand_def(TensorType)
    res = result_def(TensorType)
    causal = prop_def(BoolAttr)
    scale = opt_prop_def(FloatAttr)
    FIELDS: ClassVar = (Field("causal", BOOL, default=False),)

    def verify_(self) -> None:
        q, k, v = (_shape(self, x, n) for x, n in ((self.q, "q"), (self.k, "k"), (self.v, "v")))
        o = _shape(self, self.res, "result")
        for nm, s in (("q", q), ("k", k), ("v", v), ("result", o)):
            _check(self, len(s) == 4, nm, f"must be rank 4 [B, H, S, D], got rank {len(s)}")
        _check(self, q[:2] == k[:2] == v[:2], "k", f"batch/head dims differ: {q[:2]} {k[:2]} {v[:2]}")
        _check(self, q[3] == k[3], "k", f"head dim {k[3]} does not match q head dim {q[3]}")
        _check(self, k[2] == v[2], "v", f"sequence length {v[2]} does not match k's {k[2]}")
        _check(self, o == (q[0], q[1], q[2], v[3]), "result", f"shape {o} should be {(q[0], q[1], q[2], v[3])}")
        if self.field("causal"):
            _check(self, q[2] == k[2], "causal", "needs equal query and key lengths")


@irdl_op_definition
class MoEOp(_Workload):
    """Mixture of experts: router [H, E], experts SwiGLU w1/w3 [E, H, F], w2 [E, F, H]; x [T, H] -> [T, H]."""

    name = "comet.moe"
    x = operand_def(TensorType)
    router = operand_def(TensorType)
    w1 = operand_def(TensorType)
    w3 = operand_def(TensorType)
    w2 = operand_def(TensorType)
    res = result_def(TensorType)
    topk = prop_def(IntegerAttr)
    experts = prop_def(IntegerAttr)
    FIELDS: ClassVar = (Field("topk", INT), Field("experts", INT))

    def verify_(self) -> None:
        x = _shape(self, self.x, "x")
        _check(self, len(x) == 2, "x", f"must be [tokens, hidden], got rank {len(x)}")
        t, h = x
        e, k = self.field("experts"), self.field("topk")
        _check(self, e >= 1, "experts", "must be >= 1")
        _check(self, 1 <= k <= e, "topk", f"{k} must be in [1, experts={e}]")
        _check(self, _shape(self, self.router, "router") == (h, e), "router", f"must be ({h}, {e})")
        w1 = _shape(self, self.w1, "w1")
        _check(self, len(w1) == 3 and w1[:2] == (e, h), "w1", f"must be ({e}, {h}, F), got {w1}")
        f = w1[2]
        _check(self, _shape(self, self.w3, "w3") == (e, h, f), "w3", f"must be ({e}, {h}, {f})")
        _check(self, _shape(self, self.w2, "w2") == (e, f, h), "w2", f"must be ({e}, {f}, {h})")
        _check(self, _shape(self, self.res, "result") == (t, h), "result", f"must be ({t}, {h})")


@irdl_op_definition
class CollectiveOp(_Workload):
    """Tensor-level collective across `world` ranks along `axis` (tensor-parallel patterns).

    Shapes are per rank: allgather multiplies the axis by `world`, reducescatter divides it,
    allreduce/alltoall/broadcast keep it."""

    name = "comet.collective"
    input = operand_def(TensorType)
    res = result_def(TensorType)
    kind = prop_def(ColTypeAttr)
    axis = prop_def(IntegerAttr)
    world = prop_def(IntegerAttr)
    reduce = prop_def(ReduceOpAttr)
    FIELDS: ClassVar = (Field("kind", enum_kind(ColTypeAttr, ColType), lead=True),
                        Field("axis", INT, default=0), Field("world", INT),
                        Field("reduce", enum_kind(ReduceOpAttr, ReduceOp), default="none"))

    def verify_(self) -> None:
        x, r = _shape(self, self.input, "input"), _shape(self, self.res, "result")
        kind, red, w = ColType(self.field("kind")), ReduceOp(self.field("reduce")), self.field("world")
        _check(self, w >= 1, "world", "must be >= 1")
        _check(self, not (kind in REDUCING and red == ReduceOp.NONE), "reduce",
               f"'{kind}' needs a reduce-op")
        _check(self, not (kind not in REDUCING and red != ReduceOp.NONE), "reduce",
               f"'{kind}' takes no reduce-op (got '{red}')")
        ax = _axis(self, self.field("axis"), len(x))
        want = list(x)
        if kind == ColType.ALLGATHER or kind == ColType.GATHER:
            want[ax] = x[ax] * w
        elif kind in (ColType.REDUCESCATTER, ColType.SCATTER):
            _check(self, x[ax] % w == 0, "axis", f"size {x[ax]} is not divisible by world={w}")
            want[ax] = x[ax] // w
        _check(self, r == tuple(want), "result", f"shape {r} should be {tuple(want)}")


@irdl_op_definition
class CompoundOp(_Workload):
    """A named group of workload ops (a fusion candidate); yields its results."""

    name = "comet.compound"
    args = var_operand_def()
    res = var_result_def()
    sym = prop_def(StringAttr)
    body = region_def("single_block")
    FIELDS: ClassVar = (Field("sym", STR, lead=True),)

    def verify_(self) -> None:
        block = self.body.block
        _check(self, len(block.args) == len(self.args), "body",
               f"{len(block.args)} block arguments for {len(self.args)} operands")
        for a, v in zip(block.args, self.args):
            _check(self, a.type == v.type, "body", f"block argument type {a.type} != operand type {v.type}")
        term = block.last_op
        _check(self, isinstance(term, YieldOp), "body", "must end with comet.yield")
        _check(self, [o.type for o in term.operands] == [r.type for r in self.res], "body",
               "yielded types differ from the result types")


@irdl_op_definition
class YieldOp(_Workload):
    name = "comet.yield"
    vals = var_operand_def()
    traits = traits_def(IsTerminator(), HasParent(CompoundOp))
    FIELDS: ClassVar = ()

    def verify_(self) -> None:
        pass


WORKLOAD_OPS = [GemmOp, SoftmaxOp, LayerNormOp, ExpOp, SiluOp, GeluOp, ScaleOp, AddOp, SubOp,
                MulOp, DivOp, ReduceOp_, AttentionOp, MoEOp, CollectiveOp, CompoundOp, YieldOp]
