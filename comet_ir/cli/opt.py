"""`comet-opt`: the MLIR-style driver of comet_ir.

    comet-opt FILE|- [--pass-pipeline='builtin.module(a,b{k=v})' | -p a,b{k=v}]
              [--target=mlir|cost-report|cost-json|trace|cuda...] [-o OUT]
              [--split-input-file] [--verify-diagnostics] [--print-op-generic]
              [--mlir-print-ir-after-all] [--list-passes] [--list-targets]
              [--import-reference DIR [--reference-arch F] [--reference-const F]]

Every user error ends as one `file:line:col: error: message` line on stderr and exit code 1;
the input is never written to (an `-o` equal to the input is refused).
"""
from __future__ import annotations

import argparse
import os
import sys
from io import StringIO
from pathlib import Path

from comet_ir import registry
from comet_ir.api import (
    make_context,
    parse_module,
    available_passes,
    print_module,
    read_text,
    run_pipeline,
)
from comet_ir.errors import CometError

SPLIT_MARKER = "// -----"


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage + exit 2; keep one line
        raise CometError(message, file="comet-opt")


def build_arg_parser() -> argparse.ArgumentParser:
    ap = _ArgParser(prog="comet-opt", description="comet_ir optimizer / code generator")
    ap.add_argument("input", nargs="?", default="-", help="input .mlir file, or - for stdin")
    ap.add_argument("--pass-pipeline", default=None,
                    help="MLIR pipeline, e.g. 'builtin.module(comet-decompose,comet-tile{level=GB})'")
    ap.add_argument("-p", "--passes", default=None, help="xDSL-style pipeline, e.g. 'a,b{k=v}'")
    ap.add_argument("-t", "--target", default="mlir", help="output target (see --list-targets)")
    ap.add_argument("-o", "--output-file", default=None, help="output file (default stdout)")
    ap.add_argument("--split-input-file", action="store_true",
                    help=f"process chunks separated by '{SPLIT_MARKER}' independently")
    ap.add_argument("--verify-diagnostics", action="store_true",
                    help="print diagnostics to stdout and exit 0 (for FileCheck tests)")
    ap.add_argument("--print-op-generic", action="store_true", help="print the generic op form")
    ap.add_argument("--mlir-print-ir-after-all", action="store_true",
                    help="print the IR to stderr after every pass")
    ap.add_argument("--list-passes", action="store_true", help="list passes and named pipelines")
    ap.add_argument("--list-targets", action="store_true", help="list output targets")
    ap.add_argument("--arch", default=None,
                    help="architecture preset name or spec file (overrides the one named in the IR)")
    ap.add_argument("--import-reference", metavar="DIR", default=None,
                    help="import reference-COMET inputs DIR/{arch,problem,mapping,const}.yaml")
    ap.add_argument("--reference-arch", metavar="FILE", default=None)
    ap.add_argument("--reference-const", metavar="FILE", default=None)
    return ap


def _targets() -> dict[str, str]:
    return {"mlir": "", **registry.TARGETS}


def list_passes() -> str:
    lines = ["passes:"]
    for name, cls in sorted(available_passes().items()):
        doc = (cls.__doc__ or "").strip().splitlines()
        lines.append(f"  {name:28s} {doc[0] if doc else ''}")
    if registry.PIPELINES:
        lines.append("named pipelines:")
        for name, spec in sorted(registry.PIPELINES.items()):
            lines.append(f"  {name:28s} {spec}")
    return "\n".join(lines) + "\n"


def _emit(module, args, ctx, target_spec: str) -> str:
    if target_spec == "mlir":
        return print_module(module, generic=args.print_op_generic)
    from xdsl.utils.arg_spec import ArgSpecParseError, parse_spec

    try:
        spec = parse_spec(target_spec)
    except (ArgSpecParseError, ValueError) as e:
        raise CometError(f"malformed target '{target_spec}': {e}", file="<target>") from None
    if spec.name not in registry.TARGETS:
        raise CometError(f"unknown target '{spec.name}' (available: {', '.join(_targets())})",
                         file="<target>")
    cls = registry.load(registry.TARGETS[spec.name])
    try:
        target = cls.from_spec(spec)
    except (ValueError, TypeError) as e:
        raise CometError(f"bad options for target '{spec.name}': {e}", file="<target>") from None
    if args.arch and hasattr(target, "arch") and not getattr(target, "arch"):
        import dataclasses

        target = dataclasses.replace(target, arch=args.arch)
    out = StringIO()
    target.emit(ctx, module, out)
    return out.getvalue()


def _pipeline_spec(args) -> str:
    if args.pass_pipeline and args.passes:
        raise CometError("give either --pass-pipeline or -p, not both", file="comet-opt")
    return args.pass_pipeline or args.passes or ""


def _chunks(text: str, split: bool) -> list[tuple[str, int]]:
    if not split:
        return [(text, 0)]
    out, offset = [], 0
    for piece in text.split(SPLIT_MARKER):
        out.append((piece, offset))
        offset += piece.count("\n")
    return out


def _load_input(args) -> tuple[str, str]:
    if args.import_reference:
        from comet_ir.reference_io import import_reference_text

        return import_reference_text(args.import_reference, args.reference_arch,
                                     args.reference_const), args.import_reference
    if args.reference_arch or args.reference_const:
        raise CometError("--reference-arch/--reference-const need --import-reference DIR",
                         file="comet-opt")
    if args.input == "-":
        return sys.stdin.read(), "<stdin>"
    from comet_ir.cli.inputs import load_input_text

    yaml_text = load_input_text(args.input) if os.path.exists(args.input) else None
    if yaml_text is not None:
        return yaml_text, args.input
    return read_text(Path(args.input)), args.input


def run(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.list_passes:
        sys.stdout.write(list_passes())
        return 0
    if args.list_targets:
        sys.stdout.write("targets:\n" + "".join(f"  {t}\n" for t in _targets()))
        return 0
    if args.output_file and args.input != "-" and os.path.exists(args.output_file) \
            and os.path.samefile(args.output_file, args.input):
        raise CometError("refusing to overwrite the input file with the output", file=args.output_file)
    spec = _pipeline_spec(args)
    if args.arch:     # a wrong --arch is an error even where no pass or target reads it
        from comet_ir.spec.presets import load_arch

        load_arch(args.arch)
    text, name = _load_input(args)
    ctx = make_context()
    if name not in ("<stdin>",) and os.path.exists(name):
        from comet_ir.backends.cost_targets import SOURCE_DIR

        SOURCE_DIR.set(os.path.dirname(os.path.abspath(name)))
    results: list[str] = []
    failed = False
    for chunk, offset in _chunks(text, args.split_input_file):
        try:
            module, smap = parse_module(chunk, ctx, name, line_offset=offset)

            def after_each(p, mod):
                sys.stderr.write(f"// -----// IR Dump After {p.name} //----- //\n")
                sys.stderr.write(print_module(mod))

            run_pipeline(module, spec, ctx, smap,
                         after_each=after_each if args.mlir_print_ir_after_all else None)
            results.append(_emit(module, args, ctx, args.target))
        except CometError as e:
            if e.file is None:
                e.file = name
            if not args.verify_diagnostics:
                raise
            results.append(e.located(name) + "\n")
            failed = True
    out = ("// -----\n").join(results)
    if args.output_file:
        _write_output(Path(args.output_file), out)
    else:
        sys.stdout.write(out)
    return 0 if (not failed or args.verify_diagnostics) else 1


def _write_output(path: Path, text: str) -> None:
    """Write through a temporary file beside `path`, then rename: a failed write leaves an existing
    file as it was, and an unwritable place is a located user error, not a traceback."""
    tmp = path.with_name(path.name + ".comet-tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CometError(f"cannot write the output: {e.strerror or e}", file=str(path)) from None


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except CometError as e:
        sys.stderr.write(e.located() + "\n")
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    except BaseException as e:  # last line of defence: never a traceback for a user
        if isinstance(e, SystemExit):
            raise
        if os.environ.get("COMET_DEBUG"):
            raise
        sys.stderr.write(f"comet-opt: error: internal error: {type(e).__name__}: {e} "
                         "(set COMET_DEBUG=1 for a traceback; please report this)\n")
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
