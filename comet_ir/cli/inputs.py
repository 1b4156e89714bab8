"""Input-format detection for `comet-opt`: YAML workloads become workload-form MLIR text.

    text = load_input_text(path)   # MLIR text for *.yaml / *.yml, None for anything else

A `.yaml`/`.yml` input is a workload file (`docs/workloads.md`): the comet workload format, or a
reference-COMET `problem.yaml` (its `const.yaml` is taken from beside it when present). Errors
are `CometError`s located at the YAML node (`file:line:col: error: path: message`).
"""
from __future__ import annotations

import os

YAML_SUFFIXES = (".yaml", ".yml")


def is_yaml_input(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(YAML_SUFFIXES)


def load_input_text(path: str | os.PathLike, const_path: str | None = None) -> str | None:
    """MLIR text of the workload in `path` if it is a YAML file, else None (parse it as MLIR)."""
    if not is_yaml_input(path):
        return None
    from comet_ir.api import print_module
    from comet_ir.spec.workload_yaml import load_workload

    return print_module(load_workload(path, const_path=const_path))
