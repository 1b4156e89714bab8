"""Mapped IR <-> mapping tree conversion is lossless both ways."""
import os

from comet_ir.api import make_context, parse_module, print_module, verify_module
from comet_ir.ir_tree import ir_to_tree, program_module, single_mapping
from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, ComputeNode, TileNode

EX = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "gemm_softmax_mapped.mlir")


def test_example_roundtrips_through_tree():
    module, _ = parse_module(open(EX).read(), make_context(), "ex")
    prog = ir_to_tree(single_mapping(module))
    back = program_module(prog)
    verify_module(back)
    assert print_module(back) == print_module(module)


def test_tree_shape_matches_reference_example():
    module, _ = parse_module(open(EX).read(), make_context(), "ex")
    prog = ir_to_tree(single_mapping(module))
    assert prog.problem.dims == {"M": 256, "N": 1024, "K": 4096}
    assert [o.name for o in prog.problem.ops] == ["GEMM", "softmax"]
    root = prog.root
    assert isinstance(root, TileNode) and root.kind == "temporal" and root.targets == ["DRAM"] * 3
    # DRAM temporal -> DRAM spatial -> GB temporal -> GB spatial -> binding(seq){tile, colop, tile}
    node = root
    for kind in ("spatial", "temporal", "spatial"):
        node = node.body[0]
        assert isinstance(node, TileNode) and node.kind == kind
    binding = node.body[0]
    assert isinstance(binding, BindingNode) and binding.kind == "sequential"
    gemm_tile, colop, sm_tile = binding.children
    assert isinstance(colop, ColOpNode) and colop.type == "gather" and colop.src == ["GBuffer", "OBuffer"]
    assert isinstance(gemm_tile.body[0], ComputeNode) and gemm_tile.body[0].tile_steps["B"]["M"] == 8
    assert sm_tile.body[0].unit == "simdengine"
