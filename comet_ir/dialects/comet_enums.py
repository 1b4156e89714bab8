"""Enumerations of the comet dialect (collective type, reduce-op, binding, tile kind ...)."""
from __future__ import annotations

from xdsl.dialects.builtin import StringAttr
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import ParametrizedAttribute, SpacedOpaqueSyntaxAttribute
from xdsl.irdl import irdl_attr_definition, param_def
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum


class ColType(StrEnum):
    ALLREDUCE = "allreduce"
    ALLGATHER = "allgather"
    REDUCESCATTER = "reducescatter"
    BROADCAST = "broadcast"
    GATHER = "gather"
    SCATTER = "scatter"
    REDUCE = "reduce"
    ALLTOALL = "alltoall"


# collectives that combine values and therefore need a reduce-op
REDUCING = {ColType.ALLREDUCE, ColType.REDUCESCATTER, ColType.REDUCE}


class ReduceOp(StrEnum):
    ADD = "add"
    MAX = "max"
    MIN = "min"
    MUL = "mul"
    NONE = "none"


class BindingKind(StrEnum):
    SEQUENTIAL = "sequential"
    PIPELINE = "pipeline"
    PARALLEL = "parallel"
    SHARING = "sharing"


class TileKind(StrEnum):
    TEMPORAL = "temporal"
    SPATIAL = "spatial"


class ReduceKind(StrEnum):
    ADD = "add"
    MAX = "max"
    MIN = "min"
    MEAN = "mean"


@irdl_attr_definition
class ColTypeAttr(EnumAttribute[ColType], SpacedOpaqueSyntaxAttribute):
    name = "comet.col"


@irdl_attr_definition
class ReduceOpAttr(EnumAttribute[ReduceOp], SpacedOpaqueSyntaxAttribute):
    name = "comet.reduce_op"


@irdl_attr_definition
class BindingKindAttr(EnumAttribute[BindingKind], SpacedOpaqueSyntaxAttribute):
    name = "comet.binding_kind"


@irdl_attr_definition
class TileKindAttr(EnumAttribute[TileKind], SpacedOpaqueSyntaxAttribute):
    name = "comet.tile_kind"


@irdl_attr_definition
class ReduceKindAttr(EnumAttribute[ReduceKind], SpacedOpaqueSyntaxAttribute):
    name = "comet.reduce_kind"


@irdl_attr_definition
class LoopOrderAttr(ParametrizedAttribute):
    """A loop permutation, written inner -> outer, one letter-named dim each: `#comet.order<MKN>`.

    Dimension names are single identifiers; multi-letter names are separated by commas
    (`#comet.order<B,H,S>`)."""

    name = "comet.order"
    dims: StringAttr = param_def(StringAttr)

    @classmethod
    def parse_parameters(cls, parser: AttrParser):
        with parser.in_angle_brackets():
            names = parser.parse_comma_separated_list(
                parser.Delimiter.NONE, lambda: parser.parse_identifier(" (a dimension)"))
        return (StringAttr(",".join(names)),)

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<" + self.dims.data + ">")

    def order(self) -> list[str]:
        return split_order(self.dims.data)

    def verify(self) -> None:
        dims = self.order()
        if len(set(dims)) != len(dims):
            raise VerifyException(f"comet.order: repeated dimension in '{self.dims.data}'")


def split_order(text: str) -> list[str]:
    """'MKN' -> [M, K, N]; 'B,H,S' -> [B, H, S]."""
    if "," in text:
        return [t for t in text.split(",") if t]
    return list(text)
