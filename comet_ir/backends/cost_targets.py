"""`--target=cost-report|cost-json|trace` and the `estimate(module, arch)` API.

Architecture resolution, first match wins: the `arch=` target option (or `--arch`), the
module's `comet.arch` attribute, the mapping's own `arch` field. A name is a preset
(`edge`, `cloud`, `h100`, `h200`); anything else is a spec file path.
"""
from __future__ import annotations

import json
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.utils.target import Target

from comet_ir.errors import CometError

# Directory of the input file being compiled: relative architecture paths named in the IR
# resolve against it (so `arch "arch/x.yaml"` works from any working directory).
SOURCE_DIR: ContextVar[str | None] = ContextVar("comet_source_dir", default=None)


def _module_arch(module: ModuleOp) -> str | None:
    a = module.attributes.get("comet.arch")
    return a.data if isinstance(a, StringAttr) else None


def resolve_arch(module: ModuleOp, override: Any = None, mapping_arch: str | None = None):
    from comet_ir.spec.presets import load_arch

    if override is not None and not isinstance(override, str):
        return override  # already an Arch / GpuArch object
    name = override or _module_arch(module) or mapping_arch
    if not name:
        raise CometError("no architecture: give --arch NAME|FILE, a target option arch=..., "
                         "or a module attribute comet.arch")
    base = SOURCE_DIR.get()
    if base and not os.path.isabs(name) and os.path.sep in name and not os.path.exists(name):
        name = os.path.join(base, name)
    return load_arch(name)


def _gpu_kernels(module: ModuleOp) -> list:
    return [op for op in module.walk() if op.name == "cometgpu.kernel"]


def estimate(module: ModuleOp, arch: Any = None):
    """Price the mapped program (or cometgpu kernels) in `module` on `arch`.

    Returns the cost backend's `CostReport` (accelerator) or the GPU model's report."""
    from comet_ir.backends.cost.moe_report import estimate_moe, has_moe
    from comet_ir.ir_tree import find_mappings

    if has_moe(module) and not find_mappings(module):
        name = arch if isinstance(arch, str) and arch else (_module_arch(module) or "h100")
        return estimate_moe(module, name)
    if _gpu_kernels(module):
        from comet_ir.backends.cost.gpu_model import estimate_gpu

        return estimate_gpu(module, resolve_arch(module, arch))
    from comet_ir.ir_tree import ir_to_tree, single_mapping

    mapping = single_mapping(module)
    program = ir_to_tree(mapping)
    from comet_ir.backends.cost.model import estimate_program
    from comet_ir.backends.cost.scheduled import estimate_scheduled, has_schedule

    accel = resolve_arch(module, arch, program.arch)
    if has_schedule(mapping):  # comet-schedule ran: price its makespans
        return estimate_scheduled(mapping, program, accel)
    return estimate_program(program, accel)


@dataclass(frozen=True)
class _CostTarget(Target):
    """Prices the module on the resolved architecture and writes `render(report)`."""

    arch: str = ""

    def render(self, report) -> str:
        raise NotImplementedError

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        output.write(self.render(estimate(module, self.arch or None)) + "\n")


@dataclass(frozen=True)
class CostReportTarget(_CostTarget):
    """Readable table: per-node latency, stalls, energy, utilisation, bottleneck, totals."""

    name = "cost-report"

    def render(self, report) -> str:
        if hasattr(report, "render"):
            return report.render()
        from comet_ir.backends.cost.report import render_report

        return render_report(report)


@dataclass(frozen=True)
class CostJsonTarget(_CostTarget):
    """Stable JSON schema (docs/cost-json.md): latency_cycles, energy_pj, nodes, ..."""

    name = "cost-json"

    def render(self, report) -> str:
        return json.dumps(report.to_json(), indent=2)


@dataclass(frozen=True)
class TraceTarget(_CostTarget):
    """Chrome / Perfetto trace-event JSON of the node timeline."""

    name = "trace"

    def render(self, report) -> str:
        if hasattr(report, "to_chrome_trace"):
            return json.dumps(report.to_chrome_trace())
        from comet_ir.backends.cost.trace import to_chrome_trace

        return json.dumps(to_chrome_trace(report))
