"""Library API: parse, verify (with source locations), run pipelines, print.

Use from another xDSL-based compiler::

    from xdsl.context import Context
    import comet_ir

    ctx = Context()
    comet_ir.load_dialects(ctx)              # comet + cometgpu into *your* context
    for name, cls in comet_ir.available_passes().items():
        my_pass_registry[name] = cls          # comet passes inside your own pipeline
    comet_ir.available_passes()["comet-decompose"]().apply(ctx, my_module)
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.passes import ModulePass, PassPipeline
from xdsl.printer import Printer
from xdsl.utils.arg_spec import ArgSpecParseError, parse_pipeline
from xdsl.utils.exceptions import DiagnosticException, ParseError, VerifyException

from comet_ir import registry
from comet_ir.errors import CometError

def _fix_string_literal_lexer() -> None:
    """xDSL 0.74 lexes string literals with `"(?:[^"\\...]+|escape)*"`: nested quantifiers that
    backtrack exponentially on a long line with an unclosed quote (found by our parser fuzzing:
    one stray `"` made comet-opt spin for minutes). The single-character alternation below
    matches the same language in linear time."""
    from xdsl.utils.mlir_lexer import MLIRLexer

    MLIRLexer._unescaped_characters_regex = re.compile(
        r'"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*"')


_fix_string_literal_lexer()

_STD_DIALECTS = ("builtin", "func", "arith", "tensor", "memref", "scf", "linalg", "shard")


def load_dialects(ctx: Context, *, standard: bool = True) -> Context:
    """Register comet's dialects (and, by default, the standard ones it mixes with) in `ctx`.

    Safe to call on a context that already has some of them (e.g. via the xdsl.universe
    entry point)."""
    if standard:
        from xdsl.universe import Universe

        all_dialects = Universe.get_multiverse().all_dialects
        for name in _STD_DIALECTS:
            if name in all_dialects and name not in ctx.registered_dialect_names:
                ctx.register_dialect(name, all_dialects[name])
    import importlib.util

    for name, ref in registry.DIALECTS.items():
        if importlib.util.find_spec(ref.partition(":")[0]) is None:
            continue  # optional dialect not present in this build
        if name not in ctx.registered_dialect_names:
            ctx.register_dialect(name, registry.loader(ref))
    return ctx


def make_context() -> Context:
    return load_dialects(Context())


def available_passes() -> dict[str, type[ModulePass]]:
    """All comet passes by name (classes, not instances)."""
    return {name: registry.load(ref) for name, ref in registry.PASSES.items()}


class LocatingParser(Parser):
    """A Parser that remembers where each operation started, for located diagnostics."""

    def __init__(self, ctx: Context, text: str, name: str = "<input>", line_offset: int = 0):
        super().__init__(ctx, text, name)
        self.op_positions: dict[Operation, int] = {}
        self.line_offset = line_offset

    def parse_operation(self) -> Operation:
        pos = self.pos
        op = super().parse_operation()
        self.op_positions[op] = pos
        return op


class SourceMap:
    """Maps ops to `file:line:col` of the text they were parsed from."""

    def __init__(self, name: str, text: str, positions: dict[Operation, int], line_offset: int = 0):
        self.name, self.text, self.positions, self.line_offset = name, text, positions, line_offset

    def where(self, op: Operation | None) -> tuple[int | None, int | None]:
        while op is not None and op not in self.positions:
            op = op.parent_op()
        if op is None:
            return None, None
        pos = self.positions[op]
        line = self.text.count("\n", 0, pos) + 1 + self.line_offset
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return line, col


def parse_error_to_comet(e: ParseError, name: str) -> CometError:
    loc = e.span.get_location()
    return CometError(e.msg, file=name, line=loc.line, col=loc.col)


def parse_module(text: str, ctx: Context | None = None, name: str = "<input>",
                 line_offset: int = 0, verify: bool = True) -> tuple[ModuleOp, SourceMap]:
    """Parse (and verify) MLIR text. Raises CometError with file:line:col on any problem."""
    ctx = ctx or make_context()
    parser = None
    try:
        parser = LocatingParser(ctx, text, name, line_offset)  # lexes the first token already
        module = parser.parse_module()
    except ParseError as e:
        e.span = _with_offset(e.span, line_offset)
        raise parse_error_to_comet(e, name) from None
    except DiagnosticException as e:  # an attribute's own verifier fired while parsing
        pos = parser.pos if parser is not None else 0
        line = text.count("\n", 0, pos) + 1 + line_offset
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        raise CometError(str(e).strip().splitlines()[0], file=name, line=line, col=col) from None
    smap = SourceMap(name, text, parser.op_positions, line_offset)
    if verify:
        verify_module(module, smap)
    return module, smap


def _with_offset(span, line_offset):
    import dataclasses

    return dataclasses.replace(span, line_offset=line_offset)


def parse(source: str | Path, ctx: Context | None = None) -> ModuleOp:
    """Parse a file path or MLIR text into a verified module."""
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                     and not source.lstrip().startswith(("builtin", "module", "comet", "func", "\"", "%"))
                                     and Path(source).exists()):
        path = Path(source)
        return parse_module(read_text(path), ctx, str(path))[0]
    return parse_module(str(source), ctx)[0]


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise CometError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise CometError("is a directory, expected an MLIR file", file=str(path)) from None
    except UnicodeDecodeError as e:
        raise CometError(f"not UTF-8 text ({e.reason})", file=str(path)) from None
    except OSError as e:
        raise CometError(e.strerror or str(e), file=str(path)) from None


def verify_module(module: Operation, smap: SourceMap | None = None) -> None:
    """Verify innermost-first so the message names the op that is actually wrong."""
    def visit(op: Operation) -> None:
        for region in op.regions:
            for block in region.blocks:
                for child in block.ops:
                    visit(child)
        try:
            op.verify(verify_nested_ops=False)
        except VerifyException as e:
            raise located(e, op, smap) from None
        except CometError:
            raise
    visit(module)


def located(e: Exception, op: Operation | None, smap: SourceMap | None) -> CometError:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, CometError):
        if e.line is not None or smap is None:
            return e
        msg = e.message if not e.where else f"{e.where}: {e.message}"
    if op is not None and not msg.startswith(op.name):
        msg = f"{op.name}: {msg}"
    if smap is None:
        return CometError(msg)
    line, col = smap.where(op)
    return CometError(msg, file=smap.name, line=line, col=col)


_MLIR_PIPELINE = re.compile(r"^\s*builtin\.module\s*\((.*)\)\s*$", re.S)


def normalise_pipeline(spec: str) -> str:
    """`builtin.module(a,b{k=v})` (MLIR) or `a,b{k=v}` (xDSL) -> xDSL form, with named
    pipelines from the registry expanded."""
    spec = spec.strip()
    m = _MLIR_PIPELINE.match(spec)
    if m:
        spec = m.group(1).strip()
    elif spec.startswith("builtin.module"):
        raise CometError(f"malformed pass pipeline '{spec}': expected builtin.module(pass, ...)",
                         file="<pass-pipeline>")
    if re.search(r"\b[a-z_]+\.[a-z_]+\s*\(", spec):
        raise CometError("nested op pipelines (e.g. func.func(...)) are not supported; comet "
                         "passes run on builtin.module", file="<pass-pipeline>")
    parts = []
    for piece in _split_top(spec):
        name = piece.strip()
        if name in registry.PIPELINES:
            parts.append(normalise_pipeline(registry.PIPELINES[name]))
        elif name:
            parts.append(name)
    return ",".join(parts)


def _split_top(spec: str) -> Iterable[str]:
    depth, cur = 0, ""
    for ch in spec:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            yield cur
            cur = ""
        else:
            cur += ch
    yield cur


def build_pipeline(spec: str, available: dict[str, type[ModulePass]] | None = None,
                   callback=None) -> PassPipeline:
    """Parse a pipeline string into a PassPipeline; every mistake is a CometError."""
    available = available if available is not None else available_passes()
    spec = normalise_pipeline(spec)
    if not spec:
        return PassPipeline((), callback)
    try:
        specs = tuple(parse_pipeline(spec))
    except (ArgSpecParseError, ValueError) as e:
        raise CometError(f"malformed pass pipeline '{spec}': {e}", file="<pass-pipeline>") from None
    built = []
    for s in specs:
        if s.name not in available:
            raise CometError(f"unknown pass '{s.name}' (see --list-passes; available: "
                             f"{', '.join(sorted(available))})", file="<pass-pipeline>")
        cls = available[s.name]
        s = _ints_as_floats(cls, s)
        try:
            built.append(cls.from_spec(s) if hasattr(cls, "from_spec") else cls.from_pass_spec(s))
        except (ValueError, TypeError) as e:
            raise CometError(f"bad options for pass '{s.name}': {e}", file="<pass-pipeline>") from None
    return PassPipeline(tuple(built), callback)


def _ints_as_floats(cls, spec):
    """`{time_limit=0}` for a float option: xDSL's option parser reads `0` as an int and rejects it
    ('Incompatible types'); a user means the number."""
    import dataclasses

    if not dataclasses.is_dataclass(cls):
        return spec
    floats = {f.name.replace("_", "-") for f in dataclasses.fields(cls) if f.type in (float, "float")}
    params = {k: tuple(float(v) if type(v) is int and k.replace("_", "-") in floats else v for v in vals)
              for k, vals in spec.parameters.items()}
    return dataclasses.replace(spec, parameters=params)


def run_pipeline(module: ModuleOp, spec: str, ctx: Context | None = None,
                 smap: SourceMap | None = None, after_each=None) -> ModuleOp:
    """Run a pipeline string on `module` in place (verifying after every pass)."""
    ctx = ctx or make_context()

    def callback(prev, mod, nxt):
        if prev is not None:
            verify_module(mod, smap)
            if after_each is not None:
                after_each(prev, mod)

    pipeline = build_pipeline(spec, callback=callback)
    for p in pipeline.passes:
        try:
            p.apply(ctx, module)
        except CometError as e:
            raise located(e, getattr(e, "op", None), smap) if e.line is None and smap else e
        except DiagnosticException as e:
            raise located(e, getattr(e, "op", None), smap) from None
        callback(p, module, None)
    return module


def print_module(module: Operation, generic: bool = False) -> str:
    from io import StringIO

    out = StringIO()
    Printer(stream=out, print_generic_format=generic).print_op(module)
    out.write("\n")
    return out.getvalue()
