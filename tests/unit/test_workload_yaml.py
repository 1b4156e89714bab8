"""YAML workloads: located validation errors, IR equal to the Python builders', same numbers."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from comet_ir.api import parse_module, print_module
from comet_ir.errors import CometError
from comet_ir.interp import random_inputs, run
from comet_ir.spec import workloads as w
from comet_ir.spec.workload_yaml import load_workload, load_workload_text
from comet_ir.cli.inputs import load_input_text

ROOT = Path(__file__).resolve().parents[2]
REF = Path(__file__).parents[1] / "data" / "reference"

GEMM_SOFTMAX = """\
name: gemm_softmax
arch: edge
dtype: f16
dtypes: {A: i8, B: i8}
dims: {M: 64, N: 32, K: 16}
ins: [A, B]
outs: [D]
operations:
  - name: GEMM
    kind: gemm
    ins: [A, B]
    out: C
    tensors:
      A: [M, K]
      B: [K, N]
      C: [M, N]
  - kind: softmax
    ins: [C]
    out: D
    axis: N
"""


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the nth line containing `needle` (derived from the text, not from us)."""
    hits = [i + 1 for i, l in enumerate(text.splitlines()) if needle in l]
    return hits[nth]


def _err(text: str, file="w.yaml", **kw) -> CometError:
    with pytest.raises(CometError) as ei:
        load_workload_text(text, file, **kw)
    return ei.value


def _check(text, where, needle, msg_part, nth=0):
    e = _err(text)
    assert e.file == "w.yaml"
    assert e.where == where, e.located()
    assert e.line == _line_of(text, needle, nth), e.located()
    assert msg_part in e.message, e.located()
    assert e.located().startswith(f"w.yaml:{e.line}:")
    return e


def _sub(old, new, text=GEMM_SOFTMAX):
    assert old in text
    return text.replace(old, new, 1)


# ------------------------------------------------------------------ positive: builders' IR


def _same(a, b):
    assert a.is_structurally_equivalent(b), print_module(a) + "\n---\n" + print_module(b)


def test_gemm_softmax_equals_builder():
    _same(load_workload_text(GEMM_SOFTMAX), w.gemm_softmax(64, 32, 16))


@pytest.mark.parametrize("path,builder", [
    ("examples/gemm_softmax.yaml", lambda: w.gemm_softmax(512, 512, 512)),
    ("examples/gemm_layernorm.yaml", lambda: w.gemm_layernorm(512, 512, 512)),
])
def test_examples_equal_builders(path, builder):
    m = load_workload(ROOT / path)
    _same(m, builder())
    # and equal to the hand-written MLIR examples
    mlir, _ = parse_module((ROOT / path.replace(".yaml", ".mlir")).read_text())
    _same(m, mlir)


def test_gemm_layernorm_affine_equals_builder():
    text = """
name: gemm_layernorm
arch: cloud
dtype: f16
dtypes: {A: i8, B: i8}
dims: {M: 8, N: 24, K: 4}
ins: [A, B, g, b]
outs: [D]
operations:
  - {kind: gemm, ins: [A, B], out: C, tensors: {A: [M, K], B: [K, N]}}
  - {kind: layernorm, ins: [C, g, b], out: D, eps: 1.0e-3, tensors: {g: [N], b: [N]}}
"""
    _same(load_workload_text(text), w.gemm_layernorm(8, 24, 4, arch="cloud", affine=True, eps=1e-3))


def test_attention_equals_builder():
    text = """
name: attention
dtype: f16
dims: {B: 2, H: 4, S: 16, D: 8}
ins: [Q, K, V]
outs: [O]
operations:
  - kind: attention
    ins: [Q, K, V]
    out: O
    causal: true
    tensors: {Q: [B, H, S, D], K: [B, H, S, D], V: [B, H, S, D], O: [B, H, S, D]}
"""
    _same(load_workload_text(text), w.attention(2, 4, 16, 8, causal=True))


def test_moe_equals_builder():
    text = """
name: moe
arch: h100
dtype: bf16
dims: {T: 16, H: 8, F: 12, E: 4}
ins: [x, r, w1, w3, w2]
outs: [y]
operations:
  - kind: moe
    ins: [x, r, w1, w3, w2]
    out: y
    topk: 2
    tensors: {x: [T, H], r: [H, E], w1: [E, H, F], w3: [E, H, F], w2: [E, F, H]}
"""
    _same(load_workload_text(text), w.moe(16, 8, 12, 4, 2))


def _run(m, seed=0):
    ins = random_inputs(m, seed=seed)
    return ins, run(m, ins)


def test_interp_decomposed_softmax_matches_builder():
    """Softmax written out as rowmax/sub/exp/rowsum/div equals the builder's comet.softmax."""
    text = """
dtype: f16
dtypes: {A: i8, B: i8}
dims: {M: 12, N: 20, K: 8}
ins: [A, B]
outs: [H]
operations:
  - {kind: gemm, ins: [A, B], out: C, tensors: {A: [M, K], B: [K, N]}}
  - {kind: rowmax, ins: [C], out: D, tensors: {D: [M]}}
  - {kind: sub, ins: [C, D], out: E}
  - {kind: exp, ins: [E], out: F}
  - {kind: reduce, op: add, axis: N, ins: [F], out: G}
  - {kind: div, ins: [F, G], out: H, tensors: {H: [M, N]}}
"""
    m = load_workload_text(text)
    ref = w.gemm_softmax(12, 20, 8)
    ins, out = _run(m)
    (want,) = run(ref, ins)
    np.testing.assert_allclose(out[0], want, rtol=1e-12, atol=1e-12)
    # and the numbers are a softmax of A @ B computed here independently
    c = ins[0] @ ins[1]
    e = np.exp(c - c.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out[0], e / e.sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("path", ["examples/gemm_softmax.yaml", "examples/gemm_layernorm.yaml"])
def test_interp_examples_match_builders(path):
    m = load_workload(ROOT / path)
    b = w.gemm_softmax(512, 512, 512) if "softmax" in path else w.gemm_layernorm(512, 512, 512)
    ins, out = _run(m, seed=3)
    np.testing.assert_allclose(out[0], run(b, ins)[0], rtol=1e-12)


def test_misc_ops_semantics():
    """scale/add/mul/gelu/silu/reduce mean/transposed gemm, checked against numpy directly."""
    text = """
dtype: f32
dims: {M: 6, N: 5, K: 3}
ins: [A, Bt, bias]
outs: [Y, R]
operations:
  - {kind: gemm, ins: [A, Bt], out: C, tensors: {A: [M, K], Bt: [N, K], C: [M, N]}}
  - {kind: add, ins: [C, bias], out: C2, tensors: {bias: [N]}}
  - {kind: scale, factor: 0.5, ins: [C2], out: C3}
  - {kind: gelu, ins: [C3], out: G}
  - {kind: silu, ins: [G], out: S}
  - {kind: mul, ins: [S, C3], out: Y}
  - {kind: reduce, op: mean, ins: [Y], out: R, tensors: {R: [N]}}
"""
    m = load_workload_text(text)
    gemm = next(op for op in m.walk() if op.name == "comet.gemm")
    assert gemm.field("transpose_b") is True
    (a, bt, bias), (y, r) = _run(m)
    c3 = 0.5 * (a @ bt.T + bias)
    g = 0.5 * c3 * (1 + np.tanh(np.sqrt(2 / np.pi) * (c3 + 0.044715 * c3 ** 3)))
    s = g / (1 + np.exp(-g))
    np.testing.assert_allclose(y, s * c3, rtol=1e-12)
    np.testing.assert_allclose(r, (s * c3).mean(axis=0, keepdims=True), rtol=1e-12)


def test_roundtrip_and_name_hints():
    m = load_workload_text(GEMM_SOFTMAX)
    text = print_module(m)
    assert "%C = comet.gemm %A, %B" in text
    m2, _ = parse_module(text)
    assert print_module(m2) == text


# ------------------------------------------------------------------ reference problem.yaml



def test_reference_iterative_mapper_problem():
    d = REF / "iterative_mapper"
    m = load_workload(d / "problem.yaml", const_path=d / "edge_M256N256K128_const.yaml")
    names = [op.name for op in m.walk() if op.name.startswith("comet.")]
    assert names == ["comet.gemm", "comet.reduce", "comet.sub", "comet.exp", "comet.reduce",
                     "comet.div"]
    # the const file says M=256 N=256 K=128; the decomposed softmax equals the builder's
    ref = w.gemm_softmax(256, 256, 128)
    ins, out = _run(m)
    np.testing.assert_allclose(out[0], run(ref, ins)[0], rtol=1e-10)



def test_reference_example_run_problem_uses_sibling_const():
    # const.yaml beside problem.yaml gives C_precision: 4 (f32); sizes from `instance`
    m = load_workload(REF / "example_run" / "problem.yaml")
    _same(m, _rename(w.gemm_softmax(256, 1024, 4096, out_dtype="f32"), "problem"))
    assert load_input_text(REF / "example_run" / "problem.yaml").startswith("builtin.module")


def _rename(m, name):
    from xdsl.dialects.builtin import StringAttr

    f = next(op for op in m.walk() if op.name == "func.func")
    f.sym_name = StringAttr(name)
    return m


REF_PROBLEM = """\
problem:
  io:
    ins: A,B
    outs: D
  dimensions: [M,N,K]
  instance:
    M: M
    N: 64
    K: 32
  operations:
  - name: GEMM
    ins: A,B
    out: C
    dimensions: [M,N,K]
    tensors:
      - name: A
        projection:
          - [[M]]
          - [[K]]
      - name: B
        projection:
          - [[K]]
          - [[N]]
      - name: C
        projection:
          - [[M]]
          - [[N]]
        read-write: True
  - name: softmax
    ins: C
    out: D
    dimensions: [M,N]
"""


def test_reference_inline_const(tmp_path):
    p = tmp_path / "problem.yaml"
    p.write_text(REF_PROBLEM)
    (tmp_path / "c.yaml").write_text("const:\n  M: 16\n")
    m = load_workload(p, const_path=tmp_path / "c.yaml")
    _same(m, _rename(w.gemm_softmax(16, 64, 32), "problem"))


def test_reference_symbolic_size_without_const():
    e = _err(REF_PROBLEM)
    assert e.where == "problem.instance.M"
    assert e.line == _line_of(REF_PROBLEM, "M: M")
    assert "const" in e.message


def test_reference_unknown_op():
    text = REF_PROBLEM.replace("M: M", "M: 8").replace("- name: softmax", "- name: LOGSUMEXP")
    e = _err(text)
    assert e.where == "problem.operations[1].name"
    assert e.line == _line_of(text, "LOGSUMEXP")
    assert "no comet equivalent" in e.message


def test_reference_gemm_contraction_mismatch():
    text = REF_PROBLEM.replace("M: M", "M: 8").replace("          - [[K]]\n          - [[N]]",
                                                      "          - [[M]]\n          - [[N]]")
    e = _err(text)
    assert e.where == "problem.operations[0].tensors[1].projection"
    assert "contraction" in e.message


# ------------------------------------------------------------------ negative: one per rule


def test_malformed_yaml():
    text = GEMM_SOFTMAX + "  - kind: [exp\n"
    e = _err(text)
    assert "malformed YAML" in e.message and e.line is not None and e.line >= 20


def test_empty_file():
    e = _err("")
    assert e.line == 1 and "empty" in e.message


def test_top_level_not_mapping():
    _check("- 1\n- 2\n", "<top>", "- 1", "expected a mapping")


def test_unknown_top_key():
    t = _sub("arch: edge", "arch: edge\nfusion: full")
    _check(t, "fusion", "fusion:", "unknown key 'fusion'")


def test_duplicate_key():
    t = _sub("arch: edge", "arch: edge\narch: cloud")
    _check(t, "arch", "arch: cloud", "duplicate key")


def test_missing_top_key():
    t = _sub("outs: [D]\n", "")
    _check(t, "<top>", "name: gemm_softmax", "missing required key 'outs'")


def test_dims_wrong_type():
    t = _sub("dims: {M: 64, N: 32, K: 16}", "dims: [M, N, K]")
    _check(t, "dims", "dims:", "expected a mapping")


def test_dim_size_not_integer():
    t = _sub("N: 32", "N: '32'")
    _check(t, "dims.N", "dims:", "expected an integer")


def test_dim_size_float():
    t = _sub("N: 32", "N: 3.5")
    _check(t, "dims.N", "dims:", "expected an integer")


@pytest.mark.parametrize("bad", ["0", "-4"])
def test_dim_size_not_positive(bad):
    t = _sub("dims: {M: 64, N: 32, K: 16}", f"dims:\n  M: 64\n  N: {bad}\n  K: 16")
    _check(t, "dims.N", f"N: {bad}", "positive")


def test_unknown_dtype():
    t = _sub("dtype: f16", "dtype: f8")
    _check(t, "dtype", "dtype: f8", "unknown element type 'f8'")


def test_dtypes_unknown_tensor():
    t = _sub("dtypes: {A: i8, B: i8}", "dtypes: {A: i8, Z: i8}")
    _check(t, "dtypes", "dtypes:", "unknown tensor 'Z'")


def test_ins_wrong_type():
    t = _sub("ins: [A, B]\n", "ins: {A: 1}\n")
    _check(t, "ins", "ins: {A: 1}", "expected a list")


def test_operations_not_list():
    t = GEMM_SOFTMAX.split("operations:")[0] + "operations: 3\n"
    _check(t, "operations", "operations: 3", "expected a list")


def test_no_operations():
    t = GEMM_SOFTMAX.split("operations:")[0] + "operations: []\n"
    _check(t, "operations", "operations: []", "at least one operation")


def test_missing_op_field():
    t = _sub("    out: D\n", "")
    _check(t, "operations[1]", "- kind: softmax", "missing required key 'out'")


def test_unknown_kind():
    t = _sub("kind: softmax", "kind: logsoftmax")
    _check(t, "operations[1].kind", "kind: logsoftmax", "unknown operation kind")


def test_unknown_op_key():
    t = _sub("    axis: N\n", "    axis: N\n    eps: 0.1\n")
    _check(t, "operations[1].eps", "eps: 0.1", "unknown key 'eps' for a softmax")


def test_wrong_arity():
    t = _sub("ins: [C]", "ins: [C, A]")
    _check(t, "operations[1].ins", "ins: [C, A]", "softmax takes 1 inputs, got 2")


def test_two_outputs():
    t = _sub("out: D", "out: [D, E]")
    _check(t, "operations[1].out", "out: [D, E]", "exactly one output")


def test_undefined_tensor():
    t = _sub("ins: [C]", "ins: [X]")
    _check(t, "operations[1].ins[0]", "ins: [X]", "undefined tensor 'X'")


def test_undefined_dim_in_projection():
    t = _sub("A: [M, K]", "A: [M, L]")
    _check(t, "operations[0].tensors.A[1]", "A: [M, L]", "undefined dim 'L'")


def test_undefined_dim_in_op_dims():
    t = _sub("    out: C\n", "    out: C\n    dims: [M, N, Q]\n")
    _check(t, "operations[0].dims[2]", "dims: [M, N, Q]", "undefined dim 'Q'")


def test_repeated_dim_in_projection():
    t = _sub("C: [M, N]", "C: [M, M]")
    _check(t, "operations[0].tensors.C[1]", "C: [M, M]", "appears twice")


def test_projection_wrong_type():
    t = _sub("C: [M, N]", "C: MN")
    _check(t, "operations[0].tensors.C", "C: MN", "list of dim names")


def test_gemm_contraction_dims_differ():
    t = _sub("B: [K, N]", "B: [M, N]")
    _check(t, "operations[0].tensors.B", "B: [M, N]", "contraction dims differ")


def test_gemm_output_projection_inconsistent():
    t = _sub("      C: [M, N]", "      C: [N, M]")
    _check(t, "operations[0].tensors.C", "C: [N, M]", "inconsistent with gemm")


def test_projection_differs_from_earlier():
    t = _sub("    axis: N\n", "    axis: N\n    tensors: {C: [M, K]}\n")
    _check(t, "operations[1].tensors.C", "tensors: {C: [M, K]}", "differs from its projection")


def test_projection_of_unrelated_tensor():
    t = _sub("    axis: N\n", "    axis: N\n    tensors: {A: [M, K]}\n")
    _check(t, "operations[1].tensors.A", "tensors: {A: [M, K]}", "neither an input nor the output")


def test_axis_not_a_dim_of_input():
    t = _sub("axis: N", "axis: K")
    _check(t, "operations[1].axis", "axis: K", "not a dim of 'C'")


def test_input_without_projection():
    t = _sub("      A: [M, K]\n", "")
    _check(t, "ins[0]", "ins: [A, B]", "input 'A' has no projection")


def test_single_assignment():
    t = _sub("out: D", "out: C")
    _check(t, "operations[1].out", "out: C", "already defined", nth=1)


def test_undefined_output():
    t = _sub("outs: [D]", "outs: [Z]")
    _check(t, "outs[0]", "outs: [Z]", "undefined output tensor 'Z'")


def test_bad_identifier():
    t = _sub("out: D", "out: 'D-1'")
    _check(t, "operations[1].out", "out: 'D-1'", "not an identifier")


def test_broadcast_mismatch():
    text = """
dims: {M: 4, N: 8}
ins: [X, m]
outs: [Y]
operations:
  - {kind: exp, ins: [X], out: E, tensors: {X: [M, N]}}
  - kind: sub
    ins: [E, m]
    out: Y
    tensors: {m: [M]}
"""
    _check(text, "operations[1].ins", "ins: [E, m]", "do not broadcast")


def test_elementwise_dtype_mismatch():
    text = """
dims: {N: 8}
dtypes: {b: f32}
ins: [a, b]
outs: [y]
operations:
  - {kind: add, ins: [a, b], out: y, tensors: {a: [N], b: [N]}}
"""
    _check(text, "operations[0].ins", "kind: add", "element types differ")


def test_declared_dtype_on_non_gemm_result():
    t = _sub("dtypes: {A: i8, B: i8}", "dtypes: {A: i8, B: i8, D: f32}")
    _check(t, "operations[1].out", "out: D", "only gemm results")


def test_reduce_unknown_op():
    text = """
dims: {M: 4, N: 8}
ins: [X]
outs: [R]
operations:
  - {kind: reduce, op: prod, ins: [X], out: R, tensors: {X: [M, N]}}
"""
    _check(text, "operations[0].op", "op: prod", "unknown reduce op 'prod'")


def test_reduce_output_projection_drops_two_dims():
    text = """
dims: {M: 4, N: 8}
ins: [X]
outs: [R]
operations:
  - kind: rowsum
    ins: [X]
    out: R
    tensors: {X: [M, N], R: []}
"""
    _check(text, "operations[0].tensors.R", "R: []", "at least one dim")


def test_scale_missing_factor():
    text = """
dims: {N: 8}
ins: [X]
outs: [Y]
operations:
  - kind: scale
    ins: [X]
    out: Y
    tensors: {X: [N]}
"""
    _check(text, "operations[0]", "- kind: scale", "missing required key 'factor'")


def test_layernorm_bad_eps():
    t = _sub("kind: softmax", "kind: layernorm")
    t = _sub("    axis: N\n", "    axis: N\n    eps: -1.0\n", t)
    _check(t, "operations[1].eps", "eps: -1.0", "must be > 0")


def test_layernorm_gamma_projection():
    text = """
dims: {M: 4, N: 8}
ins: [X, g, b]
outs: [Y]
operations:
  - {kind: layernorm, ins: [X, g, b], out: Y, tensors: {X: [M, N], g: [M], b: [M]}}
"""
    _check(text, "operations[0].ins", "kind: layernorm", "gamma/beta 'g'")


def test_attention_head_dim_mismatch():
    text = """
dims: {B: 1, H: 2, S: 8, D: 4, E: 6}
ins: [Q, K, V]
outs: [O]
operations:
  - kind: attention
    ins: [Q, K, V]
    out: O
    tensors:
      Q: [B, H, S, D]
      K: [B, H, S, E]
      V: [B, H, S, D]
"""
    _check(text, "operations[0].tensors.K", "K: [B, H, S, E]", "contraction dims differ")


def test_attention_causal_not_bool():
    text = """
dims: {B: 1, H: 2, S: 8, D: 4}
ins: [Q, K, V]
outs: [O]
operations:
  - kind: attention
    ins: [Q, K, V]
    out: O
    causal: maybe
    tensors: {Q: [B, H, S, D], K: [B, H, S, D], V: [B, H, S, D]}
"""
    _check(text, "operations[0].causal", "causal: maybe", "expected true or false")


def test_moe_topk_exceeds_experts():
    text = """
dims: {T: 4, H: 8, F: 6, E: 2}
ins: [x, r, w1, w3, w2]
outs: [y]
operations:
  - kind: moe
    ins: [x, r, w1, w3, w2]
    out: y
    topk: 3
    tensors: {x: [T, H], r: [H, E], w1: [E, H, F], w3: [E, H, F], w2: [E, F, H]}
"""
    _check(text, "operations[0].topk", "topk: 3", "must be <= experts")


def test_moe_weight_projection():
    text = """
dims: {T: 4, H: 8, F: 6, E: 2}
ins: [x, r, w1, w3, w2]
outs: [y]
operations:
  - kind: moe
    ins: [x, r, w1, w3, w2]
    out: y
    topk: 1
    tensors: {x: [T, H], r: [H, E], w1: [E, H, F], w3: [E, H, F], w2: [E, H, F]}
"""
    _check(text, "operations[0].tensors.w2", "tensors: {x: [T, H]", "'w2' is [E, H, F]")


# ------------------------------------------------------------------ files and CLI input


def test_missing_file(tmp_path):
    with pytest.raises(CometError) as ei:
        load_workload(tmp_path / "nope.yaml")
    assert "cannot read" in ei.value.message


def test_load_input_text(tmp_path):
    p = tmp_path / "w.yml"
    p.write_text(GEMM_SOFTMAX)
    text = load_input_text(p)
    m, _ = parse_module(text)
    _same(m, w.gemm_softmax(64, 32, 16))
    assert load_input_text(ROOT / "examples" / "gemm_softmax.mlir") is None
    p.write_text(_sub("N: 32", "N: 0"))
    with pytest.raises(CometError) as ei:
        load_input_text(p)
    assert ei.value.located().startswith(f"{p}:5:")
