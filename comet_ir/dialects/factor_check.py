"""Whole-program check: loop factors down the tree times tile steps equal each dimension."""
from __future__ import annotations


def check_factor_products(mapping) -> None:
    # Filled in by the reference-validation rule (see comet_ir.spec.reference).
    return None
