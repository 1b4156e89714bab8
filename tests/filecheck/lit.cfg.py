# lit configuration for comet_ir: RUN lines call `comet-opt` and `filecheck`.
import os
import shutil
import sys

import lit.formats

config.name = "comet_ir"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["lit.cfg.py", "Inputs"]

# Use the tools of the interpreter running lit (the venv CI created), not whatever is on PATH.
bindir = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
for var in ("HOME", "PYTHONPATH", "COMET_CACHE_DIR"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
config.substitutions.append(("%examples", os.path.join(os.path.dirname(__file__), "..", "..", "examples")))
config.substitutions.append(("%reference", os.path.abspath(os.path.join(
    os.path.dirname(__file__), "..", "data", "reference"))))
if shutil.which("nvcc"):
    config.available_features.add("nvcc")
