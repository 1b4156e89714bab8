"""comet-map on an architecture where no strategy fits: one located error naming the refusal
closest to fitting (the tightest constraint), exit 1 — not a traceback, not an empty result."""
import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

from comet_ir.spec.presets import load_arch
from comet_ir.spec.refarch import dump_reference_arch

EX = Path(__file__).resolve().parents[2] / "examples"


def test_nothing_fits_names_the_tightest_constraint(tmp_path):
    a = copy.deepcopy(load_arch("edge"))      # load_arch hands out a shared, cached preset
    # core buffers of 16 bytes: no GEMM tile of any strategy fits (a 2 x 2 bf16 tile pair needs 64)
    for t in ("InputBuffer", "WeightBuffer", "OutputBuffer"):
        a.memory_types[t] = dataclasses.replace(a.memory_types[t], width=1, depth=16)
    arch = tmp_path / "tiny.yaml"
    arch.write_text(dump_reference_arch(a))
    src = (EX / "gemm_softmax.mlir").read_text().replace('comet.arch = "edge"', f'comet.arch = "{arch}"')
    f = tmp_path / "gs.mlir"
    f.write_text(src)
    p = subprocess.run([sys.executable, "-m", "comet_ir.cli.opt", str(f), "-p", "comet-map{budget=10}"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1
    err = p.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "no candidate mapping fits" in err and "tightest constraint" in err
    assert "bytes of IB (16 available)" in err
