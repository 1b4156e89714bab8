"""comet_ir: COMET dataflow compiler on xDSL.

(`available_passes()` lists passes: the name `comet_ir.passes` is the subpackage.)

    import comet_ir
    m = comet_ir.parse("examples/gemm_softmax.mlir")
    comet_ir.run_pipeline(m, "builtin.module(comet-decompose)")
    print(comet_ir.print_module(m))
"""
from comet_ir.api import (  # noqa: F401
    build_pipeline,
    load_dialects,
    make_context,
    parse,
    parse_module,
    available_passes,
    print_module,
    run_pipeline,
    verify_module,
)
from comet_ir.errors import CometError  # noqa: F401


def estimate(module, arch=None):
    """Latency/energy report of the mapped program in `module` (see backends/cost_targets)."""
    from comet_ir.backends.cost_targets import estimate as _estimate

    return _estimate(module, arch)

__version__ = "0.1.0"
