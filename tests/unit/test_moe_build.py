"""The MoE kernel library compiles with nvcc for sm_90a (no GPU needed). Slow (~2 min on 2
cores): runs whenever nvcc and the CUTLASS headers are present (CUTLASS_DIR, or the
nvidia-cutlass wheel; .ci/run fetches the headers when nvcc is there); COMET_BUILD_TESTS=0
turns it off."""
import os
import shutil

import pytest

from comet_ir.backends.cuda.moe import kernels

pytestmark = pytest.mark.slow


@pytest.mark.skipif(os.environ.get("COMET_BUILD_TESTS") == "0", reason="COMET_BUILD_TESTS=0")
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_build_and_load(tmp_path):
    if kernels.cutlass_root() is None:
        pytest.skip("CUTLASS headers not found")
    lib = kernels.build(tmp_path / "libcomet_moe.so")
    import ctypes
    so = ctypes.CDLL(str(lib))
    for sym in ("moe_route_dispatch", "moe_gather", "moe_swiglu", "moe_combine", "moe_gg_create", "moe_gg_run",
                "moe_layer0_run", "moe_ep_exchange", "moe_ep_return", "moe_local_bases"):
        assert hasattr(so, sym)
    # the ctypes mirrors of the kernel descriptors must match the C structs byte for byte
    assert so.moe_comm_desc_size() == ctypes.sizeof(kernels.CommDesc)
    assert so.moe_ep_desc_size() == ctypes.sizeof(kernels.EpDesc)


@pytest.mark.skipif(os.environ.get("COMET_BUILD_TESTS") == "0", reason="COMET_BUILD_TESTS=0")
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_build_shmem_transport(tmp_path):
    if kernels.nvshmem_root() is None:
        pytest.skip("NVSHMEM not found")
    import ctypes
    ctypes.CDLL(str(kernels.nvshmem_root() / "lib" / "libnvshmem_host.so.3"), mode=ctypes.RTLD_GLOBAL)
    so = ctypes.CDLL(str(kernels.build_shmem(tmp_path / "libcomet_moe_shmem.so")))
    for sym in ("moe_shmem_init", "moe_shmem_malloc", "moe_shmem_ptr", "moe_shmem_get_uid"):
        assert hasattr(so, sym)
    assert so.moe_shmem_uid_size() > 0


def test_nvcc_command_targets_sm90a(tmp_path):
    cmd = kernels.nvcc_command(tmp_path / "x.so", tmp_path)
    assert "-gencode=arch=compute_90a,code=sm_90a" in cmd and "-shared" in cmd


def test_unknown_variant():
    from comet_ir.errors import CometError
    with pytest.raises(CometError):
        kernels.GroupedGemm(8, 8, 7, 0)          # K not a multiple of 8


def test_variant_names_with_the_dynamic_schedule():
    """The dynamic-schedule kernels are variants of their own ("_dyn", before a split suffix);
    dynamic_variant() maps the defaults to them and refuses kernels that have none (gang order
    has its own fixed schedule), as parse_variant refuses suffixes in the wrong order."""
    from comet_ir.errors import CometError
    assert kernels.dynamic_variant("swiglu_pair_c12") == "swiglu_pair_c12_dyn"
    assert kernels.dynamic_variant("coop_128x256_c12_sk2") == "coop_128x256_c12_dyn_sk2"
    assert kernels.dynamic_variant("coop_128x256") == "coop_128x256_dyn"
    assert kernels.parse_variant("coop_128x256_c12_dyn_sk2") == ("coop_128x256_c12_dyn", 2)
    for bad in ("coop_128x256_c12_gang", "swiglu_pair_c22", "coop_128x128_c12_sk2"):
        with pytest.raises(CometError):
            kernels.dynamic_variant(bad)
    for bad in ("coop_128x256_c12_sk2_dyn", "swiglu_pair_c12_dyn_sk2", "x_dyn"):
        with pytest.raises(CometError):
            kernels.parse_variant(bad)
