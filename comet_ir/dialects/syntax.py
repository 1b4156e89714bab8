"""Keyword-field custom syntax shared by every comet op.

An op lists its properties as `FIELDS`; the custom form is

    [%r = ] comet.<op> [%a, %b] [<lead>] key value key value ... [attr-dict] [: (T, T) -> T] [{region}]

where `<lead>` is the first field printed without its keyword (e.g. `temporal`, `gather`).
Values are written in a compact readable way (bare identifiers for names, `[8, 8]` for
integer lists, `{M = [4, 4]}` for factor maps) and parsed back exactly, so that
print -> parse -> print is the identity. Fields equal to their default are omitted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    f64,
    i64,
)
from xdsl.ir import Attribute, Region
from xdsl.irdl import VariadicDef
from xdsl.parser import Parser, UnresolvedOperand
from xdsl.printer import Printer

# ---------------------------------------------------------------------------
# attribute constructors / readers (one place for the storage convention)


def names_attr(xs) -> ArrayAttr:
    return ArrayAttr([StringAttr(str(x)) for x in xs])


def ints_attr(xs) -> ArrayAttr:
    return ArrayAttr([IntegerAttr(int(x), i64) for x in xs])


def bools_attr(xs) -> ArrayAttr:
    return ArrayAttr([BoolAttr.from_bool(bool(x)) for x in xs])


def int_attr(x) -> IntegerAttr:
    return IntegerAttr(int(x), i64)


def float_attr(x) -> FloatAttr:
    return FloatAttr(float(x), f64)


def factors_attr(levels: list[dict[str, list[int]]]) -> ArrayAttr:
    return ArrayAttr([DictionaryAttr({d: ints_attr(v) for d, v in lvl.items()}) for lvl in levels])


def dim_map_attr(m: dict[str, int]) -> DictionaryAttr:
    return DictionaryAttr({k: int_attr(v) for k, v in m.items()})


def names_of(a: ArrayAttr) -> list[str]:
    return [x.data for x in a.data]


def ints_of(a: ArrayAttr) -> list[int]:
    return [x.value.data for x in a.data]


def bools_of(a: ArrayAttr) -> list[bool]:
    return [bool(x.value.data) for x in a.data]


def factors_of(a: ArrayAttr) -> list[dict[str, list[int]]]:
    return [{k: ints_of(v) for k, v in lvl.data.items()} for lvl in a.data]


def dim_map_of(a: DictionaryAttr) -> dict[str, int]:
    return {k: v.value.data for k, v in a.data.items()}


# ---------------------------------------------------------------------------
# value kinds: (print, parse) pairs


def _p_ident(p: Printer, s: str) -> None:
    p.print_identifier_or_string_literal(s)


def _parse_ident(parser: Parser) -> str:
    return parser.parse_identifier_or_str_literal(" (a name)")


def _print_list(p: Printer, xs, each) -> None:
    p.print_string("[")
    for i, x in enumerate(xs):
        if i:
            p.print_string(", ")
        each(x)
    p.print_string("]")


def _parse_bool(parser: Parser) -> bool:
    return parser.parse_boolean(" (true or false)")


def _parse_int(parser: Parser) -> int:
    return parser.parse_integer(allow_boolean=False, context_msg=" (an integer)")


def _print_map(p: Printer, m: dict, each) -> None:
    p.print_string("{")
    for i, (k, v) in enumerate(m.items()):
        if i:
            p.print_string(", ")
        _p_ident(p, k)
        p.print_string(" = ")
        each(v)
    p.print_string("}")


def _parse_map(parser: Parser, each) -> dict:
    out: dict = {}

    def entry():
        pos = parser.pos
        k = _parse_ident(parser)
        if k in out:
            parser.raise_error(f"duplicate key '{k}'", pos, parser.pos)
        parser.parse_punctuation("=")
        out[k] = each()

    parser.parse_comma_separated_list(Parser.Delimiter.BRACES, entry)
    return out


@dataclass(frozen=True)
class Kind:
    to_attr: Callable[[Any], Attribute]
    from_attr: Callable[[Attribute], Any]
    print_value: Callable[[Printer, Any], None]
    parse_value: Callable[[Parser], Any]


NAME = Kind(StringAttr, lambda a: a.data, _p_ident, _parse_ident)
STR = Kind(StringAttr, lambda a: a.data, lambda p, s: p.print_string_literal(s),
           lambda parser: parser.parse_str_literal(" (a string)"))
INT = Kind(int_attr, lambda a: a.value.data, lambda p, x: p.print_string(str(x)), _parse_int)
def _float_text(x: float) -> str:
    """repr, but always with a '.' in the mantissa as MLIR's float literal requires."""
    t = repr(float(x))
    mant, e, exp = t.partition("e")
    if "." not in mant and mant not in ("inf", "-inf", "nan"):
        mant += ".0"
    return mant + e + exp


FLOAT = Kind(float_attr, lambda a: a.value.data, lambda p, x: p.print_string(_float_text(x)),
             lambda parser: float(parser.parse_number(" (a number)")))
BOOL = Kind(BoolAttr.from_bool, lambda a: bool(a.value.data),
            lambda p, x: p.print_string("true" if x else "false"), _parse_bool)
NAMES = Kind(names_attr, names_of,
             lambda p, xs: _print_list(p, xs, lambda x: _p_ident(p, x)),
             lambda parser: parser.parse_comma_separated_list(
                 Parser.Delimiter.SQUARE, lambda: _parse_ident(parser)))
INTS = Kind(ints_attr, ints_of,
            lambda p, xs: _print_list(p, xs, lambda x: p.print_string(str(x))),
            lambda parser: parser.parse_comma_separated_list(
                Parser.Delimiter.SQUARE, lambda: _parse_int(parser)))
BOOLS = Kind(bools_attr, bools_of,
             lambda p, xs: _print_list(p, xs, lambda x: p.print_string("true" if x else "false")),
             lambda parser: parser.parse_comma_separated_list(
                 Parser.Delimiter.SQUARE, lambda: _parse_bool(parser)))
DIMMAP = Kind(dim_map_attr, dim_map_of,
              lambda p, m: _print_map(p, m, lambda v: p.print_string(str(v))),
              lambda parser: _parse_map(parser, lambda: _parse_int(parser)))
FACTORS = Kind(
    factors_attr, factors_of,
    lambda p, lvls: _print_list(
        p, lvls, lambda m: _print_map(p, m, lambda v: INTS.print_value(p, v))),
    lambda parser: parser.parse_comma_separated_list(
        Parser.Delimiter.SQUARE, lambda: _parse_map(parser, lambda: INTS.parse_value(parser))))
# tensor -> {dim -> int} (tile steps)
NESTED_DIMMAP = Kind(
    lambda m: DictionaryAttr({k: dim_map_attr(v) for k, v in m.items()}),
    lambda a: {k: dim_map_of(v) for k, v in a.data.items()},
    lambda p, m: _print_map(p, m, lambda v: DIMMAP.print_value(p, v)),
    lambda parser: _parse_map(parser, lambda: DIMMAP.parse_value(parser)))
# tensor -> [[dims of rank 0], [dims of rank 1], ...] (projections)
PROJECTIONS = Kind(
    lambda m: DictionaryAttr({k: ArrayAttr([names_attr(r) for r in v]) for k, v in m.items()}),
    lambda a: {k: [names_of(r) for r in v.data] for k, v in a.data.items()},
    lambda p, m: _print_map(p, m, lambda v: _print_list(p, v, lambda r: NAMES.print_value(p, r))),
    lambda parser: _parse_map(parser, lambda: parser.parse_comma_separated_list(
        Parser.Delimiter.SQUARE, lambda: NAMES.parse_value(parser))))


def enum_kind(attr_cls, enum_cls) -> Kind:
    return Kind(lambda v: attr_cls(enum_cls(v)), lambda a: a.data.value,
                lambda p, v: p.print_string(str(v)),
                lambda parser: parser.parse_str_enum(enum_cls).value)


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    keyword: str | None = None  # printed keyword; None -> the field name
    default: Any = None  # value omitted when printing; None -> required
    lead: bool = False  # printed without keyword, first

    @property
    def kw(self) -> str:
        return self.keyword or self.name


# ---------------------------------------------------------------------------


class FieldSyntax:
    """Mixin for IRDLOperation: custom parse/print from `FIELDS`."""

    FIELDS: ClassVar[tuple[Field, ...]] = ()
    HAS_TYPES: ClassVar[bool] = True  # print `: (operand types) -> result types`

    def field(self, name: str) -> Any:
        f = next(f for f in self.FIELDS if f.name == name)
        a = self.properties.get(name)
        if a is None:
            return f.default
        return f.kind.from_attr(a)

    def print(self, printer: Printer) -> None:
        fields = list(self.FIELDS)
        if fields and fields[0].lead:
            lead = fields.pop(0)
            printer.print_string(" ")
            lead.kind.print_value(printer, lead.kind.from_attr(self.properties[lead.name]))
        if self.operands:
            printer.print_string(" ")
            printer.print_list(self.operands, printer.print_operand)
        for f in fields:
            a = self.properties.get(f.name)
            if a is None:
                continue
            v = f.kind.from_attr(a)
            if f.default is not None and v == f.default:
                continue
            printer.print_string(" " + f.kw + " ")
            f.kind.print_value(printer, v)
        if self.attributes:
            printer.print_op_attributes(self.attributes, print_keyword=True)
        if self.HAS_TYPES and (self.operands or self.results):
            printer.print_string(" : ")
            printer.print_string("(")
            printer.print_list([o.type for o in self.operands], printer.print_attribute)
            printer.print_string(") -> ")
            if len(self.results) == 1:
                printer.print_attribute(self.results[0].type)
            else:
                printer.print_string("(")
                printer.print_list([r.type for r in self.results], printer.print_attribute)
                printer.print_string(")")
        for r in self.regions:
            printer.print_string(" ")
            printer.print_region(r, print_entry_block_args=True, print_empty_block=False)

    @classmethod
    def parse(cls, parser: Parser):
        start = parser.pos
        props: dict[str, Attribute] = {}
        fields = list(cls.FIELDS)
        if fields and fields[0].lead:
            f = fields.pop(0)
            props[f.name] = f.kind.to_attr(f.kind.parse_value(parser))
        unresolved: list[UnresolvedOperand] = []
        first = parser.parse_optional_unresolved_operand()
        if first is not None:
            unresolved.append(first)
            while parser.parse_optional_punctuation(",") is not None:
                unresolved.append(parser.parse_unresolved_operand())
        # keyword fields in any order
        by_kw = {f.kw: f for f in fields}
        while True:
            kw = parser.parse_optional_keyword_in(list(by_kw))
            if kw is None:
                break
            f = by_kw.pop(kw)
            props[f.name] = f.kind.to_attr(f.kind.parse_value(parser))
        for f in fields:
            if f.name not in props:
                if f.default is None:
                    parser.raise_error(f"'{cls.name}' expects '{f.kw}'", start, parser.pos)
                props[f.name] = f.kind.to_attr(f.default)
        props = {f.name: props[f.name] for f in cls.FIELDS}  # canonical order
        attrs_d = parser.parse_optional_attr_dict_with_keyword()
        attrs = dict(attrs_d.data) if attrs_d is not None else {}
        operand_types: list[Attribute] = []
        result_types: list[Attribute] = []
        if parser.parse_optional_punctuation(":") is not None:
            ft = parser.parse_function_type()
            operand_types, result_types = list(ft.inputs.data), list(ft.outputs.data)
        if len(operand_types) != len(unresolved):
            parser.raise_error(
                f"'{cls.name}' has {len(unresolved)} operands but {len(operand_types)} types",
                start, parser.pos)
        operands = [parser.resolve_operand(u, t) for u, t in zip(unresolved, operand_types)]
        regions: list[Region] = []
        defn = cls.get_irdl_definition()
        for _ in defn.regions:
            r = parser.parse_optional_region()
            regions.append(r if r is not None else Region())
        grouped = _group_operands(cls, operands, parser, start)
        return cls.build(operands=grouped, result_types=_group_results(cls, result_types),
                         properties=props, attributes=attrs, regions=regions)


def _group_operands(cls, operands, parser, start):
    defs = cls.get_irdl_definition().operands
    n_var = sum(1 for _, d in defs if isinstance(d, VariadicDef))
    fixed = len(defs) - n_var
    if n_var == 0 and len(operands) != fixed:
        parser.raise_error(f"'{cls.name}' expects {fixed} operands, got {len(operands)}",
                           start, parser.pos)
    if n_var and len(operands) < fixed:
        parser.raise_error(f"'{cls.name}' expects at least {fixed} operands, got {len(operands)}",
                           start, parser.pos)
    out, i = [], 0
    extra = len(operands) - fixed
    for _, d in defs:
        if isinstance(d, VariadicDef):
            out.append(operands[i:i + extra])
            i += extra
        else:
            out.append(operands[i])
            i += 1
    return out


def _group_results(cls, types):
    defs = cls.get_irdl_definition().results
    if any(isinstance(d, VariadicDef) for _, d in defs):
        if len(defs) == 1:
            return [types]
    return list(types)


def make_props(cls, **values) -> dict[str, Attribute]:
    """Build the property dict of `cls` from Python values (defaults filled in)."""
    props = {}
    for f in cls.FIELDS:
        v = values.pop(f.name, None)
        if v is None:
            v = f.default
        if v is None:
            raise TypeError(f"{cls.name}: missing '{f.name}'")
        props[f.name] = f.kind.to_attr(v)
    if values:
        raise TypeError(f"{cls.name}: unknown fields {sorted(values)}")
    return props
