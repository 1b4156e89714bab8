"""Library use: parse/run/print API, and use from another xDSL-based compiler."""
import os
import shutil
import subprocess
import sys

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

import comet_ir
from comet_ir.errors import CometError

EX = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def test_parse_file_and_text_roundtrip():
    m = comet_ir.parse(os.path.join(EX, "gemm_softmax.mlir"))
    text = comet_ir.print_module(m)
    again = comet_ir.print_module(comet_ir.parse(text))
    assert text == again and "comet.gemm" in text


def test_parse_errors_are_located():
    with pytest.raises(CometError) as e:
        comet_ir.parse_module("func.func @f() {\n  %0 = comet.nope : () -> ()\n}", name="x.mlir")
    assert e.value.located().startswith("x.mlir:2:")


def test_unknown_pass_is_a_comet_error():
    m = comet_ir.parse(os.path.join(EX, "gemm_softmax.mlir"))
    with pytest.raises(CometError, match="unknown pass 'no-such-pass'"):
        comet_ir.run_pipeline(m, "builtin.module(no-such-pass)")


def test_foreign_context_loads_comet_dialects():
    ctx = Context()
    comet_ir.load_dialects(ctx)
    comet_ir.load_dialects(ctx)  # idempotent: a second load must not fail
    text = open(os.path.join(EX, "gemm_softmax_mapped.mlir")).read()
    module = Parser(ctx, text).parse_module()
    assert isinstance(module, ModuleOp)
    module.verify()


def test_passes_run_inside_a_foreign_pipeline():
    from xdsl.passes import PassPipeline

    ctx = Context()
    comet_ir.load_dialects(ctx)
    module = Parser(ctx, open(os.path.join(EX, "gemm_softmax.mlir")).read()).parse_module()
    decompose = comet_ir.available_passes()["comet-decompose"]
    PassPipeline((decompose(),)).apply(ctx, module)  # the host compiler's own pipeline object
    module.verify()
    text = comet_ir.print_module(module)
    assert "comet.softmax" not in text and "comet.reduce max" in text and "comet.exp" in text


def test_xdsl_opt_sees_comet_via_universe_entry_point():
    xdsl_opt = shutil.which("xdsl-opt", path=os.path.dirname(sys.executable)) or shutil.which("xdsl-opt")
    assert xdsl_opt
    r = subprocess.run([xdsl_opt, os.path.join(EX, "gemm_softmax_mapped.mlir")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "comet.colop gather" in r.stdout
