"""`cometmoe`: GPU-level ops of the Comet MoE design (ByteDance Comet, arXiv 2502.19811),
produced by `comet-lower-moe` from `comet.moe`.

    %idx, %gates = cometmoe.route %logits ...            top-k routing (softmax, top-k, renorm)
    %h = cometmoe.layer0 %x, %idx, %w1, %w3 ...          token dispatch (all-to-all at token
                                                         granularity) + grouped GEMM1 + SwiGLU;
                                                         shared tensor split along M (tokens),
                                                         tiles ordered local-first then by arrival
    %y = cometmoe.layer1 %h, %idx, %gates, %w2 ...       grouped GEMM2 + combine (return rows,
                                                         weight by gate, sum over top-k); shared
                                                         tensor split along N (hidden), column
                                                         tiles sent while the next ones compute

Each layer op is one kernel with thread-block isolation: `comm_blocks` of the SMs move rows
(NVSHMEM gather/scatter), the rest run the grouped GEMM waiting on per-tile flags. The
numbers on the ops (tiles, comm_blocks, the predicted time) come from the cost model
(`comet_ir/backends/cost/moe_model.py`). Weight operands keep their global types; `ep` and
`tp` say which slice a rank holds (experts [r*E/ep, (r+1)*E/ep), ffn columns / tp).
"""
from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, StringAttr, TensorType, ArrayAttr, I64, FloatAttr
from xdsl.ir import Dialect
from xdsl.irdl import IRDLOperation, attr_def, irdl_op_definition, operand_def, result_def, opt_attr_def
from xdsl.utils.exceptions import VerifyException


def _shape(v) -> tuple[int, ...]:
    t = v.type
    if not isinstance(t, TensorType):
        raise VerifyException(f"expected a tensor, got {t}")
    return tuple(t.get_shape())


def _int(op, name) -> int:
    return op.attributes[name].value.data


def _chk(op, cond, msg):
    if not cond:
        raise VerifyException(f"{op.name}: {msg}")


ORDERS0 = ("local_first", "natural")
ORDERS1 = ("column_pipelined", "row_major")


@irdl_op_definition
class RouteOp(IRDLOperation):
    name = "cometmoe.route"
    logits = operand_def(TensorType)
    idx = result_def(TensorType)
    gates = result_def(TensorType)
    topk = attr_def(IntegerAttr)
    experts = attr_def(IntegerAttr)
    assembly_format = "$logits attr-dict `:` type($logits) `->` type($idx) `,` type($gates)"

    def verify_(self) -> None:
        t, e = _shape(self.logits)
        k = _int(self, "topk")
        _chk(self, e == _int(self, "experts"), f"logits have {e} experts, attribute says {_int(self, 'experts')}")
        _chk(self, 1 <= k <= e, f"topk {k} must be in [1, {e}]")
        _chk(self, _shape(self.idx) == (t, k), f"idx must be [{t}, {k}]")
        _chk(self, _shape(self.gates) == (t, k), f"gates must be [{t}, {k}]")


class _Layer(IRDLOperation):
    ep = attr_def(IntegerAttr)
    tp = attr_def(IntegerAttr)
    experts = attr_def(IntegerAttr)
    topk = attr_def(IntegerAttr)
    split = attr_def(StringAttr)          # "M" (layer0) or "N" (layer1)
    tile = attr_def(ArrayAttr)            # [BM, BN]
    order = attr_def(StringAttr)
    comm_blocks = attr_def(IntegerAttr)   # SMs given to the comm role (0: no comm / ep == 1)
    predicted_ms = opt_attr_def(FloatAttr)

    def _common(self, want_split: str, orders) -> None:
        ep, tp, e = _int(self, "ep"), _int(self, "tp"), _int(self, "experts")
        _chk(self, ep >= 1 and tp >= 1, "ep and tp must be >= 1")
        _chk(self, e % ep == 0, f"ep={ep} does not divide experts={e}")
        _chk(self, self.attributes["split"].data == want_split,
             f"{self.name} splits the shared tensor along {want_split}")
        _chk(self, self.attributes["order"].data in orders, f"order must be one of {orders}")
        _chk(self, len(self.attributes["tile"].data) == 2, "tile must be [BM, BN]")
        _chk(self, _int(self, "comm_blocks") >= 0, "comm_blocks must be >= 0")
        _chk(self, ep > 1 or _int(self, "comm_blocks") == 0, "comm_blocks must be 0 without expert parallelism")


@irdl_op_definition
class Layer0Op(_Layer):
    name = "cometmoe.layer0"
    x = operand_def(TensorType)
    idx = operand_def(TensorType)
    w1 = operand_def(TensorType)
    w3 = operand_def(TensorType)
    res = result_def(TensorType)
    assembly_format = "$x `,` $idx `,` $w1 `,` $w3 attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        self._common("M", ORDERS0)
        t, h = _shape(self.x)
        e, h1, f = _shape(self.w1)
        _chk(self, _shape(self.w3) == (e, h1, f) and h1 == h, "w1/w3 must be [E, H, F]")
        tp = _int(self, "tp")
        _chk(self, f % tp == 0, f"tp={tp} does not divide ffn={f}")
        r = _shape(self.res)
        _chk(self, len(r) == 2 and r[1] == f // tp, f"result must be [rows, F/tp={f // tp}]")


@irdl_op_definition
class Layer1Op(_Layer):
    name = "cometmoe.layer1"
    h = operand_def(TensorType)
    idx = operand_def(TensorType)
    gates = operand_def(TensorType)
    w2 = operand_def(TensorType)
    res = result_def(TensorType)
    assembly_format = "$h `,` $idx `,` $gates `,` $w2 attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        self._common("N", ORDERS1)
        e, f, h = _shape(self.w2)
        t, k = _shape(self.idx)
        _chk(self, _shape(self.res) == (t, h), f"result must be [{t}, {h}]")
        _chk(self, _shape(self.h)[1] == f // _int(self, "tp"), "h must be [rows, F/tp]")
        bn = self.attributes["tile"].data[1].value.data
        _chk(self, h % bn == 0, f"hidden={h} is not a multiple of the column tile {bn}")


CometMoE = Dialect("cometmoe", [RouteOp, Layer0Op, Layer1Op], [])
