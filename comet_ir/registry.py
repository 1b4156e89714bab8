"""The one registry of comet_ir dialects, passes and targets.

Entries are lazy "module:attribute" strings so that importing comet_ir stays cheap and an
optional backend (CUDA) that fails to import does not break the rest. Every later feature
adds a line here; the `comet-opt` driver, the `xdsl.universe` entry point and the Python API
all read these tables.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

DIALECTS: dict[str, str] = {
    "comet": "comet_ir.dialects.comet:Comet",
    "cometgpu": "comet_ir.dialects.cometgpu:CometGPU",
    "cometmoe": "comet_ir.dialects.cometgpu_moe:CometMoE",
}

PASSES: dict[str, str] = {
    "comet-decompose": "comet_ir.passes.decompose:DecomposePass",
    "comet-tile": "comet_ir.passes.tile:TilePass",
    "comet-fuse": "comet_ir.passes.fuse:FusePass",
    "comet-distribute": "comet_ir.passes.distribute:DistributePass",
    "comet-insert-collectives": "comet_ir.passes.insert_collectives:InsertCollectivesPass",
    "comet-verify-capacity": "comet_ir.passes.verify_capacity:VerifyCapacityPass",
    "comet-online-softmax": "comet_ir.passes.online_softmax:OnlineSoftmaxPass",
    "comet-lower-moe": "comet_ir.passes.lower_moe:LowerMoE",
    "comet-map": "comet_ir.passes.map:MapPass",
    "comet-lower-gpu": "comet_ir.passes.lower_gpu:LowerToGpu",
    "comet-reschedule": "comet_ir.passes.reschedule:RescheduleTiles",
    "comet-schedule": "comet_ir.passes.schedule:SchedulePass",
    "comet-choose-split": "comet_ir.passes.choose_split:ChooseSplitPass",
}

TARGETS: dict[str, str] = {
    "cost-report": "comet_ir.backends.cost_targets:CostReportTarget",
    "cost-json": "comet_ir.backends.cost_targets:CostJsonTarget",
    "trace": "comet_ir.backends.cost_targets:TraceTarget",
    "cuda": "comet_ir.backends.cuda.target:CudaTarget",
    "gpu-cost-report": "comet_ir.backends.cost.gpu_model:GpuCostReportTarget",
}

# Named pipelines (the paper's strategies and common flows): name -> pipeline string.
PIPELINES: dict[str, str] = {
    # the paper's strategies (docs/passes.md)
    "unfused": "comet-decompose,comet-tile,comet-distribute{simd_dims=M,N idle=true},comet-insert-collectives,comet-verify-capacity",
    "fused-distsm": "comet-decompose,comet-tile,comet-fuse{level=partial},comet-distribute{idle=true},comet-insert-collectives{strategy=dist},comet-verify-capacity",
    "fused-gemm-distsm": "comet-decompose,comet-tile,comet-fuse{level=full},comet-distribute{idle=true},comet-insert-collectives{strategy=dist},comet-verify-capacity",
    "fused-gemm-distln": "comet-decompose,comet-tile,comet-fuse{level=full},comet-distribute{idle=true},comet-insert-collectives{strategy=dist},comet-verify-capacity",
    "fused-sm": "comet-decompose,comet-tile,comet-fuse{level=full},comet-distribute{idle=true},comet-insert-collectives{strategy=single level=OB},comet-verify-capacity",
    "fused-ln": "comet-decompose,comet-tile,comet-fuse{level=full},comet-distribute{idle=true},comet-insert-collectives{strategy=single level=OB},comet-verify-capacity",
    # SM / LN with the vector work spread over rows (each unit gathers whole rows)
    "fused-sm-rows": "comet-decompose,comet-tile,comet-fuse{level=full},comet-distribute{idle=true},comet-insert-collectives{strategy=single level=OB rows=true},comet-verify-capacity",
    "fused-ln-rows": "comet-decompose,comet-tile,comet-fuse{level=full},comet-distribute{idle=true},comet-insert-collectives{strategy=single level=OB rows=true},comet-verify-capacity",
    "flash-attention": "comet-decompose{flash=true},comet-tile{kv_loop=true},comet-fuse{level=full},comet-distribute{dims=B,M idle=true},comet-online-softmax,comet-insert-collectives,comet-verify-capacity",
    "partially-fused-attention": "comet-decompose,comet-tile{col_split=true},comet-fuse{level=partial},comet-distribute{dims=B,M idle=true},comet-insert-collectives,comet-verify-capacity",
    "unfused-attention": "comet-decompose,comet-tile{col_split=true},comet-distribute{dims=B,M idle=true},comet-insert-collectives,comet-verify-capacity",
}


def load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def loader(ref: str) -> Callable[[], Any]:
    return lambda: load(ref)
