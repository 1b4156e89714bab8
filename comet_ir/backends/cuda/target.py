"""`--target=cuda`: write CUDA source for the cometgpu kernels of a module.

Input in the comet workload form (all-gather feeding a GEMM, a GEMM feeding a reduce-scatter)
is lowered with `comet-lower-gpu` first. `arch` defaults to the module's `comet.arch`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target


@dataclass(frozen=True)
class CudaTarget(Target):
    name = "cuda"
    arch: str = ""

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from comet_ir.backends.cuda.codegen import emit_module
        from comet_ir.dialects.cometgpu import KernelOp
        from comet_ir.passes.lower_gpu import LowerToGpu

        if not any(isinstance(op, KernelOp) for op in module.walk()):
            module = module.clone()
            LowerToGpu(arch=self.arch).apply(ctx, module)
        output.write(emit_module(module, self.arch or None))
