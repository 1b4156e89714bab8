"""CLI glue for reference-COMET interop: `--import-reference DIR` yields mapped-form IR text.

The mapping's `arch` field names the architecture file that was imported, so every later
stage (`--target=cost-report`, `comet-map`) prices the program on that architecture."""
from __future__ import annotations

import os

from comet_ir.api import print_module
from comet_ir.ir_tree import program_module


def import_reference_text(directory: str, arch_file: str | None = None,
                          const_file: str | None = None) -> str:
    from comet_ir.spec.reference import import_reference

    arch, program = import_reference(directory, arch_file=arch_file, const_file=const_file)
    program.arch = arch_file or os.path.join(directory, "arch.yaml")
    return print_module(program_module(program))
