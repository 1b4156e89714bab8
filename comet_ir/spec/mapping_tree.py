"""Plain-Python form of a mapped dataflow program.

This mirrors the reference COMET mapping file node for node (DataMovement_Tile,
inter_tile_binding, CollectiveOperation, Operation) so that three things can share it:
the reference importer/exporter, the cost model (pure functions of tree + arch), and the
`comet` dialect's mapped form (``comet_ir.ir_tree`` converts both ways, 1:1).

Conventions:
- ``TileNode.factors`` is a list of loop levels: one entry for a temporal tile, two for a
  spatial one (X = inner, Y = outer, as in the reference). Each entry maps a dimension name
  to one factor per tensor (same order as ``tensors``).
- ``order`` is the loop permutation written inner -> outer (reference ``permutation``).
- ``BindingNode`` groups siblings that share a binding kind; ``children`` are the grouped
  nodes in program order.
- Precisions are in bits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass
class TensorProjection:
    name: str
    projection: list[list[str]]  # one list of dims per tensor rank (affine sums of dims)
    read_write: bool = False


@dataclass
class ProblemOp:
    name: str
    ins: list[str]
    out: str
    dims: list[str]
    tensors: list[TensorProjection]


@dataclass
class Problem:
    dims: dict[str, int]
    ops: list[ProblemOp]
    ins: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)

    def op(self, name: str) -> ProblemOp:
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)


@dataclass
class TileNode:
    kind: str  # "temporal" | "spatial"
    targets: list[str]
    tensors: list[str]
    precision: list[int]
    rmw: list[bool]
    wb_output: list[bool]
    tags: list[str]
    factors: list[dict[str, list[int]]]
    order: str
    child_levels: list[str]
    body: list["Node"] = field(default_factory=list)


@dataclass
class BindingNode:
    kind: str  # "sequential" | "pipeline" | "parallel" | "sharing"
    children: list["Node"] = field(default_factory=list)


@dataclass
class ColOpNode:
    type: str  # allreduce|allgather|reducescatter|broadcast|gather|scatter|reduce|alltoall
    tensor_in: str
    tensor_out: str
    dimension: str
    src: list[str]
    dest: list[str]
    target: str
    child: str
    precision: int
    reduce_op: str = "none"  # add|max|min|mul|none
    tag: str = ""
    wb_output: bool = False


@dataclass
class ComputeNode:
    op_type: str  # GEMM, Softmax, rowmax, rowsum, add, exp, div, ...
    name: str  # which problem op it computes
    tensors: list[str]
    tile_primitive: dict[str, int]
    tile_steps: dict[str, dict[str, int]]
    scale: dict[str, int] = field(default_factory=dict)
    reduction_dims: list[str] = field(default_factory=list)
    reduction_factors: list[int] = field(default_factory=list)
    rmw: bool = False
    specd: bool = False
    unit: str = ""  # compute unit instance (reference child level, e.g. macengine)


Node = Union[TileNode, BindingNode, ColOpNode, ComputeNode]


@dataclass
class MappedProgram:
    name: str
    arch: str  # preset name or spec file path
    problem: Problem
    root: Node
