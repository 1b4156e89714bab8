"""Comet MoE on GPUs. `CometMoE` (torch.nn.Module) is imported lazily: torch stays optional.

    from comet_ir.backends.cuda.moe import CometMoE
"""
from __future__ import annotations


def __getattr__(name):
    if name in ("CometMoE", "reference_moe", "route", "permutation"):
        try:
            from comet_ir.backends.cuda.moe import module
        except ImportError as e:  # torch missing
            from comet_ir.errors import CometError
            raise CometError(f"comet_ir.backends.cuda.moe.{name} needs torch: {e}") from None
        return getattr(module, name)
    raise AttributeError(name)
