"""Random mutations of the shipped examples must give a CometError (one located
diagnostic) or a valid module, never any other exception."""
import glob
import os
import re

from hypothesis import HealthCheck, given, settings, strategies as st

from comet_ir.api import make_context, parse_module, print_module
from comet_ir.errors import CometError

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SOURCES = [open(p).read() for p in sorted(glob.glob(os.path.join(ROOT, "examples", "*.mlir")))
           + sorted(glob.glob(os.path.join(ROOT, "tests", "filecheck", "dialect", "roundtrip_*.mlir")))]
TOKENS = ["[", "]", "{", "}", "(", ")", ",", "=", ":", "->", "0", "-1", "99999999999999999999",
          "1.5", "true", "M", "K", "allreduce", "gather", "none", "max", "temporal", "spatial",
          "%a", "tensor<2x2xf16>", "\"", "@x", "comet.tile", "comet.colop", "comet.gemm", ""]
CTX = make_context()


def _check(text: str) -> None:
    try:
        module, _ = parse_module(text, CTX, "fuzz.mlir")
    except CometError as e:
        msg = e.located()
        assert msg.startswith("fuzz.mlir"), msg
        assert "error:" in msg and "\n" not in msg.strip(), msg
        return
    # A mutation that still verifies must print and re-parse to the same text.
    once = print_module(module)
    assert print_module(parse_module(once, CTX, "again.mlir")[0]) == once


@st.composite
def mutated(draw):
    src = draw(st.sampled_from(SOURCES))
    spans = [m.span() for m in re.finditer(r"\S+", src)]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(spans) - 1))
        a, b = spans[i]
        kind = draw(st.sampled_from(["replace", "delete", "duplicate", "digit"]))
        tok = src[a:b]
        if kind == "replace":
            new = draw(st.sampled_from(TOKENS))
        elif kind == "delete":
            new = ""
        elif kind == "duplicate":
            new = tok + " " + tok
        else:
            new = re.sub(r"\d", lambda _: str(draw(st.integers(0, 9))), tok)
        src = src[:a] + new + src[b:]
        spans = [m.span() for m in re.finditer(r"\S+", src)] or [(0, 0)]
    return src


@settings(max_examples=int(os.environ.get("COMET_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_give_diagnostics_not_crashes(text):
    _check(text)


def test_examples_parse_and_roundtrip():
    for src in SOURCES:
        module, _ = parse_module(src, CTX, "ex.mlir")
        once = print_module(module)
        assert print_module(parse_module(once, CTX, "ex2.mlir")[0]) == once


def test_unclosed_quote_on_long_line_terminates():
    # Regression: xDSL's string-literal regex backtracked exponentially here (minutes+).
    import subprocess
    import sys

    line = '  func.func @f(%x: i32, " ' + ", ".join(f"%a{i}: tensor<8x8xf16>" for i in range(12)) + ") {"
    code = ("import sys; from comet_ir.api import parse_module; from comet_ir.errors import CometError\n"
            "try:\n    parse_module(sys.stdin.read())\nexcept CometError as e:\n    print(e.located())\n")
    r = subprocess.run([sys.executable, "-c", code], input=line + "\n}\n", capture_output=True,
                       text=True, timeout=120)
    assert "End of file reached before closing string literal" in r.stdout, r.stdout + r.stderr
