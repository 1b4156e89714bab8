"""The one-kernel layer1 library (csrc/moe_layer1.cu) compiles with nvcc for sm_90a (no GPU needed;
~1 min on 2 cores) and its C descriptor matches the ctypes mirror in layer1.py. Runs when nvcc
and the CUTLASS headers are present; COMET_BUILD_TESTS=0 turns it off."""
import ctypes
import os
import shutil

import pytest

from comet_ir.backends.cuda.moe import kernels, layer1

pytestmark = pytest.mark.slow


@pytest.mark.skipif(os.environ.get("COMET_BUILD_TESTS") == "0", reason="COMET_BUILD_TESTS=0")
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_layer1_build_and_layout(tmp_path):
    if kernels.cutlass_root() is None:
        pytest.skip("CUTLASS headers not found")
    so = ctypes.CDLL(str(layer1.build(tmp_path / "libcomet_moe_layer1.so")))
    for sym in ("moe_l1_create", "moe_l1_run", "moe_l1_combine", "moe_l1_zero", "moe_l1_destroy", "moe_l1_grid_ctas"):
        assert hasattr(so, sym)
    assert so.moe_l1_desc_size() == ctypes.sizeof(layer1.L1Comm)
    assert so.moe_l1_tile_n() == layer1.TILE_N
