"""Primitive ops introduced by `comet-decompose` (workload form): MoE routing, dispatch and
combine, plus the two scalar-parameterised primitives that LayerNorm and causal attention
decompose into.

    %v, %i = comet.topk %logits k 2 : (tensor<TxExf16>) -> (tensor<Tx2xf16>, tensor<Tx2xi32>)
    %xe = comet.moe_dispatch %x, %i experts 8 capacity T : (...) -> tensor<8xTxHxf16>
    %y  = comet.moe_combine %ye, %i, %w : (tensor<ExCxH>, tensor<Txk>, tensor<Txk>) -> tensor<TxH>
    %r  = comet.rsqrt %var eps 1.0e-05          // 1 / sqrt(x + eps)
    %m  = comet.causal_mask %s                  // -inf above the diagonal of the last two axes

Dispatch slot semantics (shared by dispatch and combine, and by `comet_ir.interp`): expert `e`'s
slot `c` holds the `c`-th (token, choice) pair, in token-major order, whose index is `e`; pairs
beyond `capacity` are dropped (capacity = tokens never drops).
"""
from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import FloatAttr, IntegerAttr, IntegerType, TensorType
from xdsl.irdl import irdl_op_definition, operand_def, prop_def, result_def
from xdsl.utils.exceptions import VerifyException

from comet_ir.dialects.comet_workload import _Unary, _Workload, _check, _shape
from comet_ir.dialects.syntax import FLOAT, INT, Field


@irdl_op_definition
class TopKOp(_Workload):
    """Largest `k` values (descending) and their indices along the last axis."""

    name = "comet.topk"
    input = operand_def(TensorType)
    values = result_def(TensorType)
    indices = result_def(TensorType)
    k = prop_def(IntegerAttr)
    FIELDS: ClassVar = (Field("k", INT),)

    def verify_(self) -> None:
        x = _shape(self, self.input, "input")
        k = self.field("k")
        _check(self, len(x) >= 1, "input", "must have rank >= 1")
        _check(self, 1 <= k <= x[-1], "k", f"{k} must be in [1, {x[-1]}]")
        want = x[:-1] + (k,)
        _check(self, _shape(self, self.values, "values") == want, "values", f"shape should be {want}")
        _check(self, _shape(self, self.indices, "indices") == want, "indices", f"shape should be {want}")
        _check(self, isinstance(self.indices.type.element_type, IntegerType), "indices",
               "element type must be an integer")


@irdl_op_definition
class MoEDispatchOp(_Workload):
    """x [T, H], indices [T, k] -> per-expert token buffers [experts, capacity, H]."""

    name = "comet.moe_dispatch"
    x = operand_def(TensorType)
    indices = operand_def(TensorType)
    res = result_def(TensorType)
    experts = prop_def(IntegerAttr)
    capacity = prop_def(IntegerAttr)
    FIELDS: ClassVar = (Field("experts", INT), Field("capacity", INT))

    def verify_(self) -> None:
        x, i = _shape(self, self.x, "x"), _shape(self, self.indices, "indices")
        _check(self, len(x) == 2, "x", "must be [tokens, hidden]")
        _check(self, len(i) == 2 and i[0] == x[0], "indices", f"must be [{x[0]}, k]")
        e, c = self.field("experts"), self.field("capacity")
        _check(self, e >= 1, "experts", "must be >= 1")
        _check(self, c >= 1, "capacity", "must be >= 1")
        _check(self, _shape(self, self.res, "result") == (e, c, x[1]), "result", f"must be ({e}, {c}, {x[1]})")


@irdl_op_definition
class MoECombineOp(_Workload):
    """ye [E, C, H], indices [T, k], weights [T, k] -> y [T, H] = sum_j w[t,j] * ye[slot(t, j)]."""

    name = "comet.moe_combine"
    ye = operand_def(TensorType)
    indices = operand_def(TensorType)
    weights = operand_def(TensorType)
    res = result_def(TensorType)
    FIELDS: ClassVar = ()

    def verify_(self) -> None:
        ye, i, w = (_shape(self, self.ye, "ye"), _shape(self, self.indices, "indices"),
                    _shape(self, self.weights, "weights"))
        _check(self, len(ye) == 3, "ye", "must be [experts, capacity, hidden]")
        _check(self, len(i) == 2, "indices", "must be [tokens, k]")
        _check(self, w == i, "weights", f"shape {w} must equal the indices shape {i}")
        _check(self, _shape(self, self.res, "result") == (i[0], ye[2]), "result",
               f"must be ({i[0]}, {ye[2]})")


@irdl_op_definition
class RsqrtOp(_Unary):
    """Elementwise 1 / sqrt(x + eps)."""

    name = "comet.rsqrt"
    input = operand_def(TensorType)
    res = result_def(TensorType)
    eps = prop_def(FloatAttr)
    FIELDS: ClassVar = (Field("eps", FLOAT, default=0.0),)

    def verify_(self) -> None:
        super().verify_()
        if self.field("eps") < 0:
            raise VerifyException(f"{self.name}: eps: must be >= 0")


@irdl_op_definition
class CausalMaskOp(_Unary):
    """x with -inf where column > row (last two axes): the causal attention mask."""

    name = "comet.causal_mask"
    input = operand_def(TensorType)
    res = result_def(TensorType)
    FIELDS: ClassVar = ()

    def verify_(self) -> None:
        super().verify_()
        _check(self, len(_shape(self, self.input, "input")) >= 2, "input", "must have rank >= 2")


MOE_OPS = [TopKOp, MoEDispatchOp, MoECombineOp, RsqrtOp, CausalMaskOp]
