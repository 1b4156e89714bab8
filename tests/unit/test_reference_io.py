"""Reference-COMET interop: import -> IR -> export -> re-import is lossless; bad inputs are located."""
import os

import pytest

from comet_ir.api import make_context, parse_module, print_module
from comet_ir.errors import CometError
from comet_ir.ir_tree import ir_to_tree, program_module, single_mapping
from comet_ir.spec.reference import export_reference, import_reference

HERE = os.path.dirname(__file__)
REF = os.path.join(HERE, "..", "data", "reference")
EX = os.path.join(HERE, "..", "..", "examples", "gemm_softmax_mapped.mlir")



def _mapping_text(prog) -> str:
    prog.arch = "A"
    return print_module(program_module(prog))


def test_example_run_imports_to_the_shipped_hand_mapping():
    _, prog = import_reference(os.path.join(REF, "example_run"))
    shipped, _ = parse_module(open(EX).read(), make_context(), "ex")
    hand = ir_to_tree(single_mapping(shipped))
    hand.name = prog.name
    assert _mapping_text(prog) == _mapping_text(hand)


@pytest.mark.parametrize("case", ["example_run", "iterative_mapper"])
def test_export_then_reimport_is_identical(tmp_path, case):
    d = os.path.join(REF, case)
    kw = {}
    if case == "iterative_mapper":
        kw = dict(arch_file=os.path.join(d, "arch.yaml"), const_file=os.path.join(d, "edge_M256N256K128_const.yaml"))
    _, prog = import_reference(d, **kw)
    export_reference(prog, kw.get("arch_file", os.path.join(d, "arch.yaml")), tmp_path)
    _, again = import_reference(tmp_path)
    again.name = prog.name
    assert _mapping_text(again) == _mapping_text(prog)


def test_unknown_collective_type_is_rejected(tmp_path):
    d = os.path.join(REF, "example_run")
    for f in ("arch.yaml", "problem.yaml", "const.yaml"):
        (tmp_path / f).write_text(open(os.path.join(d, f)).read())
    (tmp_path / "mapping.yaml").write_text(open(os.path.join(d, "mapping.yaml")).read().replace(
        "type:         gather", "type:         allshuffle"))
    with pytest.raises(CometError) as e:
        import_reference(tmp_path)
    msg = e.value.located()
    assert "mapping.yaml:" in msg and "unknown collective type 'allshuffle'" in msg


def test_missing_constant_is_located(tmp_path):
    d = os.path.join(REF, "example_run")
    for f in ("arch.yaml", "problem.yaml", "mapping.yaml"):
        (tmp_path / f).write_text(open(os.path.join(d, f)).read())
    (tmp_path / "const.yaml").write_text(open(os.path.join(d, "const.yaml")).read().replace("MA_DRAM:  4", "MX_DRAM: 4"))
    with pytest.raises(CometError, match="'MA_DRAM' is neither an integer nor a constant"):
        import_reference(tmp_path)


def test_factors_that_do_not_multiply_to_the_dimension(tmp_path):
    d = os.path.join(REF, "example_run")
    for f in ("arch.yaml", "problem.yaml", "mapping.yaml"):
        (tmp_path / f).write_text(open(os.path.join(d, f)).read())
    (tmp_path / "const.yaml").write_text(open(os.path.join(d, "const.yaml")).read().replace("MA_DRAM:  4", "MA_DRAM:  8"))
    with pytest.raises(CometError) as e:
        import_reference(tmp_path)
    msg = e.value.located()
    assert "mapping.yaml: error:" in msg and "dimension M of tensor A (operation GEMM) tiles to 512" in msg, msg
