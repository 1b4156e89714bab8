"""The `comet` dialect: workload form (tensor ops) and mapped form (tiles, bindings,
collectives, compute) of compound ML operations. See docs/dialect.md."""
from __future__ import annotations

from xdsl.ir import Dialect

from comet_ir.dialects.comet_enums import (
    BindingKindAttr,
    ColTypeAttr,
    LoopOrderAttr,
    ReduceKindAttr,
    ReduceOpAttr,
    TileKindAttr,
)
from comet_ir.dialects.comet_mapped import *  # noqa: F401,F403
from comet_ir.dialects.comet_mapped import MAPPED_OPS
from comet_ir.dialects.comet_moe import MOE_OPS  # primitives of comet-decompose
from comet_ir.dialects.comet_workload import *  # noqa: F401,F403
from comet_ir.dialects.comet_workload import WORKLOAD_OPS

Comet = Dialect(
    "comet",
    [*WORKLOAD_OPS, *MAPPED_OPS, *MOE_OPS],
    [ColTypeAttr, ReduceOpAttr, BindingKindAttr, TileKindAttr, ReduceKindAttr, LoopOrderAttr],
)
