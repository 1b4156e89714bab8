"""`comet-choose-split{arch=… max_comm=…}`: for every cometgpu.kernel, pick the comm/compute
thread-block split (`comm`) and the tile order (`order`, via comet-reschedule's policies) that
the GPU cost model predicts fastest (comet_ir/schedule/gpu_chooser.py; the whole space is
enumerated). The predicted time is reported on stderr."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError


@dataclass(frozen=True)
class ChooseSplitPass(ModulePass):
    name = "comet-choose-split"
    arch: str = ""
    max_comm: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.backends.cost.gpu_model import _module_arch
        from comet_ir.dialects.syntax import int_attr
        from comet_ir.passes.reschedule import set_order
        from comet_ir.schedule.gpu_chooser import KernelParams, choose

        kernels = [k for k in op.walk() if k.name == "cometgpu.kernel"]
        if not kernels:
            raise CometError("comet-choose-split: no cometgpu.kernel in the module (run comet-lower-gpu first)")
        if self.max_comm < 0:
            raise CometError("comet-choose-split: max_comm must be >= 0 (0 = half the SMs)")
        for k in kernels:
            arch = self.arch or _module_arch(k) or "h100"
            c, policy, ms = choose(KernelParams.of(k), arch, self.max_comm or None)
            k.properties["comm"] = int_attr(c)
            _resize_puts(k, c, int_attr)
            set_order(k, policy)
            sys.stderr.write(f"comet-choose-split: {k.field('pattern')} on {arch}: {c} comm blocks, "
                             f"order {policy}, predicted {ms * 1000:,.1f} us\n")


def _resize_puts(kernel, comm: int, int_attr) -> None:
    """One chunk per comm block: the puts' chunk count and their signals' flag count follow."""
    signals = {o.field("sym"): o for o in kernel.walk() if o.name == "cometgpu.signal"}
    for put in [o for o in kernel.walk() if o.name == "cometgpu.put_signal"]:
        put.properties["chunks"] = int_attr(comm)
        sig = signals.get(put.field("signal"))
        need = kernel.field("world") * comm
        if sig is not None and sig.field("count") < need:
            sig.properties["count"] = int_attr(need)
