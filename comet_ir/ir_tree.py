"""Mapped-form IR <-> `comet_ir.spec.mapping_tree` (1:1, both ways).

The cost model, the reference importer/exporter and the mapper work on the plain tree; the
passes and the CLI work on IR. Round trip: `tree_to_ir(ir_to_tree(m))` prints identically.
"""
from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region

from comet_ir.dialects.comet_mapped import (
    BindingOp,
    ColOp,
    ComputeOp,
    MappingOp,
    OpSpecOp,
    TileOp,
)
from comet_ir.dialects.syntax import make_props
from comet_ir.errors import CometError
from comet_ir.spec.mapping_tree import (
    BindingNode,
    ColOpNode,
    ComputeNode,
    MappedProgram,
    Node,
    Problem,
    ProblemOp,
    TensorProjection,
    TileNode,
)

# ---------------------------------------------------------------------------- IR -> tree


def find_mappings(module) -> list[MappingOp]:
    return [op for op in module.walk() if isinstance(op, MappingOp)]


def single_mapping(module) -> MappingOp:
    maps = find_mappings(module)
    if len(maps) != 1:
        raise CometError(f"expected one comet.mapping (mapped form) in the module, found {len(maps)}"
                         + ("; run a mapping pipeline first (e.g. -p fused-distsm or comet-map)"
                            if not maps else ""))
    return maps[0]


def _node_to_tree(op) -> Node:
    if isinstance(op, TileOp):
        return TileNode(
            kind=op.field("kind"), targets=op.field("at"), tensors=op.field("tensors"),
            precision=op.field("precision"), rmw=op.field("rmw"), wb_output=op.field("wb"),
            tags=op.field("serves"), factors=op.field("factors"), order=op.field("order"),
            child_levels=op.field("child"), body=[_node_to_tree(c) for c in op.body.block.ops])
    if isinstance(op, BindingOp):
        return BindingNode(kind=op.field("kind"), children=[_node_to_tree(c) for c in op.body.block.ops])
    if isinstance(op, ColOp):
        return ColOpNode(
            type=op.field("type"), tensor_in=op.field("tensor"), tensor_out=op.field("out"),
            dimension=op.field("dim"), src=op.field("src"), dest=op.field("dest"),
            target=op.field("at"), child=op.field("child"), precision=op.field("precision"),
            reduce_op=op.field("reduce"), tag=op.field("tag"), wb_output=op.field("wb"))
    if isinstance(op, ComputeOp):
        return ComputeNode(
            op_type=op.field("kind"), name=op.field("op"), tensors=op.field("tensors"),
            tile_primitive=op.field("primitive"), tile_steps=op.field("steps"),
            scale=op.field("scale"), reduction_dims=op.field("reduce_dims"),
            reduction_factors=op.field("reduce_factors"), rmw=op.field("rmw"),
            specd=op.field("specd"), unit=op.field("on"))
    raise CometError(f"{op.name} is not a mapped-form node (expected comet.tile, comet.binding, "
                     "comet.colop or comet.compute)")


def ir_to_tree(mapping: MappingOp) -> MappedProgram:
    ops = []
    for s in mapping.opspecs():
        proj = s.field("proj")
        rw = set(s.field("rw"))
        names = list(dict.fromkeys(s.field("ins") + [s.field("out")]))
        ops.append(ProblemOp(
            name=s.field("op"), ins=s.field("ins"), out=s.field("out"), dims=s.field("dims"),
            tensors=[TensorProjection(t, proj[t], t in rw) for t in names]))
    problem = Problem(dims=mapping.field("dims"), ops=ops, ins=mapping.field("ins"),
                      outs=mapping.field("outs"))
    return MappedProgram(name=mapping.field("sym_name"), arch=mapping.field("arch"),
                         problem=problem, root=_node_to_tree(mapping.root()))


# ---------------------------------------------------------------------------- tree -> IR


def _region(children: list[Node]) -> Region:
    return Region(Block([_node_to_ir(c) for c in children]))


def _node_to_ir(node: Node):
    if isinstance(node, TileNode):
        return TileOp.build(properties=make_props(
            TileOp, kind=node.kind, tensors=node.tensors, at=node.targets, child=node.child_levels,
            precision=node.precision, factors=node.factors, order=node.order, rmw=node.rmw,
            wb=node.wb_output, serves=node.tags), regions=[_region(node.body)])
    if isinstance(node, BindingNode):
        return BindingOp.build(properties=make_props(BindingOp, kind=node.kind),
                               regions=[_region(node.children)])
    if isinstance(node, ColOpNode):
        return ColOp.build(properties=make_props(
            ColOp, type=node.type, tensor=node.tensor_in, out=node.tensor_out, dim=node.dimension,
            reduce=node.reduce_op, src=node.src, dest=node.dest, at=node.target, child=node.child,
            precision=node.precision, tag=node.tag, wb=node.wb_output))
    if isinstance(node, ComputeNode):
        return ComputeOp.build(properties=make_props(
            ComputeOp, kind=node.op_type, op=node.name, on=node.unit, tensors=node.tensors,
            primitive=node.tile_primitive, steps=node.tile_steps, scale=node.scale,
            reduce_dims=node.reduction_dims, reduce_factors=node.reduction_factors,
            rmw=node.rmw, specd=node.specd))
    raise TypeError(f"not a mapping-tree node: {node!r}")


def tree_to_ir(program: MappedProgram) -> MappingOp:
    specs = []
    for o in program.problem.ops:
        specs.append(OpSpecOp.build(properties=make_props(
            OpSpecOp, op=o.name, ins=o.ins, out=o.out, dims=o.dims,
            proj={t.name: t.projection for t in o.tensors},
            rw=[t.name for t in o.tensors if t.read_write])))
    return MappingOp.build(
        properties=make_props(MappingOp, sym_name=program.name, arch=program.arch,
                              dims=program.problem.dims, ins=program.problem.ins,
                              outs=program.problem.outs),
        regions=[Region(Block([*specs, _node_to_ir(program.root)]))])


def program_module(program: MappedProgram) -> ModuleOp:
    return ModuleOp([tree_to_ir(program)])
