"""Mapped-form ops of the comet dialect: a dataflow program bound to an architecture.

One op per entity of the COMET mapping (and of the reference implementation's mapping file):
`comet.mapping` (program + problem), `comet.opspec` (one problem operation: tensors and their
projections), `comet.tile` (a DataMovement tile: one loop-nest level per tensor),
`comet.binding` (how sibling nodes share time), `comet.colop` (an explicit collective) and
`comet.compute` (an operation bound to a compute unit). `comet_ir.ir_tree` converts this form
1:1 to and from `comet_ir.spec.mapping_tree`.
"""
from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import ArrayAttr, BoolAttr, DictionaryAttr, IntegerAttr, StringAttr
from xdsl.irdl import IRDLOperation, irdl_op_definition, prop_def, region_def, traits_def
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import HasParent, NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from comet_ir.dialects.comet_enums import (
    REDUCING,
    BindingKind,
    BindingKindAttr,
    ColType,
    ColTypeAttr,
    LoopOrderAttr,
    ReduceOp,
    ReduceOpAttr,
    TileKind,
    TileKindAttr,
    split_order,
)
from comet_ir.dialects.syntax import (
    BOOL,
    BOOLS,
    DIMMAP,
    FACTORS,
    INT,
    INTS,
    NAME,
    NAMES,
    NESTED_DIMMAP,
    PROJECTIONS,
    STR,
    Field,
    FieldSyntax,
    Kind,
    enum_kind,
)

SYM = Kind(StringAttr, lambda a: a.data, lambda p, s: p.print_string("@" + s),
           lambda parser: parser.parse_symbol_name().data)
ORDER = Kind(lambda s: LoopOrderAttr(StringAttr(s)), lambda a: a.dims.data,
             lambda p, s: p.print_identifier_or_string_literal(s),
             lambda parser: parser.parse_identifier_or_str_literal(" (a loop order such as MKN)"))


def _fail(op, field: str, msg: str):
    raise VerifyException(f"{op.name}: {field}: {msg}")


def enclosing_mapping(op) -> "MappingOp | None":
    p = op.parent_op()
    while p is not None and not isinstance(p, MappingOp):
        p = p.parent_op()
    return p


def _known_dims(op) -> set[str] | None:
    m = enclosing_mapping(op)
    return set(m.field("dims")) if m is not None else None


def _check_dims(op, field: str, dims, known: set[str] | None) -> None:
    if known is None:
        return
    for d in dims:
        if d not in known:
            _fail(op, field, f"unknown dimension '{d}' (the mapping has {', '.join(sorted(known))})")


# `comet.schedule` (written by comet-schedule): a discardable dictionary on node ops.
_SCHEDULE_KEYS = {"start": "int", "dur": "int", "makespan": "int", "rule": "int", "unit": "str",
                  "optimal": "bool"}


def _schedule_kind(v) -> str:
    if isinstance(v, StringAttr):
        return "str"
    if isinstance(v, IntegerAttr):
        return "bool" if getattr(v.type, "width", None) and v.type.width.data == 1 else "int"
    return type(v).__name__


def _check_schedule(op) -> None:
    a = op.attributes.get("comet.schedule")
    if a is None:
        return
    if not isinstance(a, DictionaryAttr):
        _fail(op, "comet.schedule", "must be a dictionary {start, dur, unit, makespan, rule, optimal}")
    for k, v in a.data.items():
        want = _SCHEDULE_KEYS.get(k)
        if want is None:
            _fail(op, "comet.schedule", f"unknown key '{k}' (known: {', '.join(_SCHEDULE_KEYS)})")
        if _schedule_kind(v) != want:
            _fail(op, "comet.schedule", f"'{k}' must be {dict(int='an integer', str='a string', bool='a boolean')[want]}")
        if want == "int" and v.value.data < 0:
            _fail(op, "comet.schedule", f"'{k}' = {v.value.data} must be >= 0 cycles")

class _Mapped(FieldSyntax, IRDLOperation):
    HAS_TYPES: ClassVar = False


@irdl_op_definition
class MappingOp(_Mapped):
    """A named dataflow program bound to an architecture (preset name or spec file)."""

    name = "comet.mapping"
    sym_name = prop_def(StringAttr)
    arch = prop_def(StringAttr)
    dims = prop_def(DictionaryAttr)
    ins = prop_def(ArrayAttr)
    outs = prop_def(ArrayAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator(), SymbolOpInterface())
    FIELDS: ClassVar = (Field("sym_name", SYM, lead=True), Field("arch", STR), Field("dims", DIMMAP),
                        Field("ins", NAMES), Field("outs", NAMES))

    def verify_(self) -> None:
        for d, v in self.field("dims").items():
            if v <= 0:
                _fail(self, "dims", f"dimension {d} = {v} must be positive")
        ops = list(self.body.block.ops)
        specs = [o for o in ops if isinstance(o, OpSpecOp)]
        nodes = [o for o in ops if not isinstance(o, OpSpecOp)]
        if not specs:
            _fail(self, "body", "needs at least one comet.opspec (the problem's operations)")
        if len(nodes) != 1:
            _fail(self, "body", f"needs exactly one root node (tile, binding, colop or compute), found {len(nodes)}")
        if ops.index(nodes[0]) < len(specs):
            _fail(self, "body", "comet.opspec ops must come before the root node")
        names = [s.field("op") for s in specs]
        if len(set(names)) != len(names):
            _fail(self, "body", "two comet.opspec ops share a name")
        from comet_ir.dialects.factor_check import check_factor_products
        check_factor_products(self)

    def opspecs(self) -> list["OpSpecOp"]:
        return [o for o in self.body.block.ops if isinstance(o, OpSpecOp)]

    def root(self):
        return next(o for o in self.body.block.ops if not isinstance(o, OpSpecOp))


@irdl_op_definition
class OpSpecOp(_Mapped):
    """One operation of the problem: its tensors and each tensor's projection onto dims."""

    name = "comet.opspec"
    op = prop_def(StringAttr)
    ins = prop_def(ArrayAttr)
    out = prop_def(StringAttr)
    dims = prop_def(ArrayAttr)
    proj = prop_def(DictionaryAttr)
    rw = prop_def(ArrayAttr)
    traits = traits_def(HasParent(MappingOp))
    FIELDS: ClassVar = (Field("op", NAME, lead=True), Field("ins", NAMES), Field("out", NAME),
                        Field("dims", NAMES), Field("proj", PROJECTIONS), Field("rw", NAMES, default=[]))

    def verify_(self) -> None:
        tensors = self.field("ins") + [self.field("out")]
        proj = self.field("proj")
        if sorted(proj) != sorted(set(tensors)):
            _fail(self, "proj", f"projections are given for {sorted(proj)} but the tensors are {tensors}")
        known = _known_dims(self)
        _check_dims(self, "dims", self.field("dims"), known)
        for t, ranks in proj.items():
            for r in ranks:
                _check_dims(self, f"proj[{t}]", r, set(self.field("dims")))
        for t in self.field("rw"):
            if t not in tensors:
                _fail(self, "rw", f"'{t}' is not a tensor of this operation")


NODE_TRAITS = traits_def(NoTerminator())


@irdl_op_definition
class TileOp(_Mapped):
    """A DataMovement tile: per tensor, the memory level it lives in, the child level it feeds,
    and this level's loop factors (temporal: one level; spatial: X (inner) then Y (outer))."""

    name = "comet.tile"
    kind = prop_def(TileKindAttr)
    tensors = prop_def(ArrayAttr)
    at = prop_def(ArrayAttr)
    child = prop_def(ArrayAttr)
    precision = prop_def(ArrayAttr)
    factors = prop_def(ArrayAttr)
    order = prop_def(LoopOrderAttr)
    rmw = prop_def(ArrayAttr)
    wb = prop_def(ArrayAttr)
    serves = prop_def(ArrayAttr)
    body = region_def("single_block")
    traits = NODE_TRAITS
    FIELDS: ClassVar = (
        Field("kind", enum_kind(TileKindAttr, TileKind), lead=True),
        Field("tensors", NAMES), Field("at", NAMES), Field("child", NAMES),
        Field("precision", INTS), Field("factors", FACTORS), Field("order", ORDER),
        Field("rmw", BOOLS), Field("wb", BOOLS), Field("serves", NAMES),
    )

    def verify_(self) -> None:
        _check_schedule(self)
        tensors = self.field("tensors")
        n = len(tensors)
        if n == 0:
            _fail(self, "tensors", "is empty")
        for f in ("at", "child", "precision", "rmw", "wb", "serves"):
            if len(self.field(f)) != n:
                _fail(self, f, f"has {len(self.field(f))} entries for {n} tensors {tensors}")
        for p in self.field("precision"):
            if p <= 0:
                _fail(self, "precision", f"{p} must be positive (bits)")
        levels = self.field("factors")
        kind = TileKind(self.field("kind"))
        if kind == TileKind.TEMPORAL and len(levels) != 1:
            _fail(self, "factors", f"a temporal tile has one factor level, found {len(levels)}")
        if kind == TileKind.SPATIAL and len(levels) not in (1, 2):
            _fail(self, "factors", f"a spatial tile has one or two (X, Y) factor levels, found {len(levels)}")
        known = _known_dims(self)
        for lvl in levels:
            _check_dims(self, "factors", lvl, known)
            for d, fs in lvl.items():
                if len(fs) != n:
                    _fail(self, "factors", f"dimension {d} has {len(fs)} factors for {n} tensors")
                for x in fs:
                    if x <= 0:
                        _fail(self, "factors", f"dimension {d}: factor {x} must be positive")
        _check_dims(self, "order", split_order(self.field("order")), known)


@irdl_op_definition
class BindingOp(_Mapped):
    """How the child nodes share time: sequential (sum), pipeline (overlap with fill/drain),
    parallel (concurrent, max + resource conflicts) or sharing (concurrent on shared units)."""

    name = "comet.binding"
    kind = prop_def(BindingKindAttr)
    body = region_def("single_block")
    traits = NODE_TRAITS
    FIELDS: ClassVar = (Field("kind", enum_kind(BindingKindAttr, BindingKind), lead=True),)

    def verify_(self) -> None:
        _check_schedule(self)
        if not list(self.body.block.ops):
            _fail(self, "body", "a binding needs at least one child node")


@irdl_op_definition
class ColOp(_Mapped):
    """An explicit collective: `type` over `dim`, moving `tensor` (-> `out`) from the `src`
    memory levels to the `dest` levels; reducing collectives carry a reduce-op."""

    name = "comet.colop"
    type = prop_def(ColTypeAttr)
    tensor = prop_def(StringAttr)
    out = prop_def(StringAttr)
    dim = prop_def(StringAttr)
    reduce = prop_def(ReduceOpAttr)
    src = prop_def(ArrayAttr)
    dest = prop_def(ArrayAttr)
    at = prop_def(StringAttr)
    child = prop_def(StringAttr)
    precision = prop_def(IntegerAttr)
    tag = prop_def(StringAttr)
    wb = prop_def(BoolAttr)
    FIELDS: ClassVar = (
        Field("type", enum_kind(ColTypeAttr, ColType), lead=True),
        Field("tensor", NAME), Field("out", NAME), Field("dim", NAME),
        Field("reduce", enum_kind(ReduceOpAttr, ReduceOp), default="none"),
        Field("src", NAMES), Field("dest", NAMES), Field("at", NAME), Field("child", NAME),
        Field("precision", INT), Field("tag", NAME, default=""), Field("wb", BOOL, default=False),
    )

    def verify_(self) -> None:
        _check_schedule(self)
        kind, red = ColType(self.field("type")), ReduceOp(self.field("reduce"))
        if kind in REDUCING and red == ReduceOp.NONE:
            _fail(self, "reduce", f"collective '{kind}' needs a reduce-op (add, max, min or mul)")
        if kind not in REDUCING and red != ReduceOp.NONE:
            _fail(self, "reduce", f"collective '{kind}' takes no reduce-op (got '{red}')")
        src, dest = self.field("src"), self.field("dest")
        if not src:
            _fail(self, "src", "is empty")
        if not dest:
            _fail(self, "dest", "is empty")
        # Rooted collectives move data between different levels; all-to-all style ones
        # (allreduce, allgather, reducescatter, alltoall) exchange among instances of one level.
        if kind in (ColType.GATHER, ColType.SCATTER, ColType.BROADCAST, ColType.REDUCE) and src == dest:
            _fail(self, "dest", f"src and dest are the same levels {src}: a {kind} would move nothing")
        if self.field("precision") <= 0:
            _fail(self, "precision", f"{self.field('precision')} must be positive (bits)")
        _check_dims(self, "dim", [self.field("dim")], _known_dims(self))


@irdl_op_definition
class ComputeOp(_Mapped):
    """An operation (`for` a problem op) of class `kind` (GEMM, softmax, rowmax, exp, ...) bound
    to compute unit `on`, with its tile primitive, per-tensor tile steps and scales, and the
    reduction dims/factors."""

    name = "comet.compute"
    kind = prop_def(StringAttr)
    op = prop_def(StringAttr)
    on = prop_def(StringAttr)
    tensors = prop_def(ArrayAttr)
    primitive = prop_def(DictionaryAttr)
    steps = prop_def(DictionaryAttr)
    scale = prop_def(DictionaryAttr)
    reduce_dims = prop_def(ArrayAttr)
    reduce_factors = prop_def(ArrayAttr)
    rmw = prop_def(BoolAttr)
    specd = prop_def(BoolAttr)
    FIELDS: ClassVar = (
        Field("kind", NAME, lead=True), Field("op", NAME, keyword="for"), Field("on", NAME, default=""),
        Field("tensors", NAMES), Field("primitive", DIMMAP), Field("steps", NESTED_DIMMAP),
        Field("scale", DIMMAP, default={}), Field("reduce_dims", NAMES, default=[]),
        Field("reduce_factors", INTS, default=[]), Field("rmw", BOOL, default=False),
        Field("specd", BOOL, default=False),
    )

    def verify_(self) -> None:
        _check_schedule(self)
        tensors = self.field("tensors")
        if not tensors:
            _fail(self, "tensors", "is empty")
        for f in ("steps", "scale"):
            for t in self.field(f):
                if t not in tensors:
                    _fail(self, f, f"'{t}' is not one of the tensors {tensors}")
        if len(self.field("reduce_dims")) != len(self.field("reduce_factors")):
            _fail(self, "reduce_factors", f"{len(self.field('reduce_factors'))} factors for "
                  f"{len(self.field('reduce_dims'))} reduction dims")
        known = _known_dims(self)
        _check_dims(self, "primitive", self.field("primitive"), known)
        _check_dims(self, "reduce_dims", self.field("reduce_dims"), known)
        for t, st in self.field("steps").items():
            _check_dims(self, f"steps[{t}]", st, known)
            for d, v in st.items():
                if v <= 0:
                    _fail(self, f"steps[{t}]", f"{d} = {v} must be positive")
        for d, v in self.field("primitive").items():
            if v <= 0:
                _fail(self, "primitive", f"{d} = {v} must be positive")


MAPPED_OPS = [MappingOp, OpSpecOp, TileOp, BindingOp, ColOp, ComputeOp]
NODE_OPS = (TileOp, BindingOp, ColOp, ComputeOp)
