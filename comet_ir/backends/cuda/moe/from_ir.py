"""From IR to the runtime: read the MoE layers of a module (workload form `comet.moe`, or the
lowered `cometmoe.layer0/layer1` of `comet-lower-moe`) as plain configurations that
`CometMoE.from_ir` instantiates. torch-free."""
from __future__ import annotations

from dataclasses import dataclass

from comet_ir.errors import CometError


@dataclass(frozen=True)
class MoELayerConfig:
    tokens: int
    hidden: int
    ffn: int
    experts: int
    topk: int
    ep: int = 1
    tp: int = 1
    comm_blocks: int = 0
    tile: tuple[int, int] = (128, 256)
    layer0_order: str = "local_first"
    layer1_order: str = "column_pipelined"


def moe_configs(module) -> list[MoELayerConfig]:
    from comet_ir.dialects.comet_workload import MoEOp
    from comet_ir.dialects.cometgpu_moe import Layer0Op, Layer1Op

    out = []
    for op in module.walk():
        if isinstance(op, MoEOp):
            t, h = op.x.type.get_shape()
            out.append(MoELayerConfig(t, h, op.w1.type.get_shape()[2], op.experts.value.data, op.topk.value.data))
        elif isinstance(op, Layer0Op):
            a = op.attributes
            t, h = op.x.type.get_shape()
            l1 = next((u.operation for u in op.results[0].uses if isinstance(u.operation, Layer1Op)), None)
            if l1 is None:
                raise CometError("cometmoe.layer0 without a cometmoe.layer1 user")
            out.append(MoELayerConfig(
                t, h, op.w1.type.get_shape()[2], a["experts"].value.data, a["topk"].value.data,
                a["ep"].value.data, a["tp"].value.data, a["comm_blocks"].value.data,
                tuple(x.value.data for x in a["tile"].data), a["order"].data, l1.attributes["order"].data))
    return out
