"""CUDA code generation from cometgpu kernels: constants come from the IR, the IR op is named in
the source, bad configurations are refused, and (when nvcc and the CUTLASS headers are
present) every shipped example compiles for sm_90a. NVSHMEM headers are optional for the
compile check (-DCOMET_WITH_NVSHMEM=0 keeps the device code identical: the kernels use peer
mappings, not the NVSHMEM device API)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from comet_ir.api import parse_module, run_pipeline
from comet_ir.backends.cuda import codegen, runtime
from comet_ir.dialects.cometgpu import KernelOp
from comet_ir.errors import CometError

REPO = Path(__file__).resolve().parents[2]
EX = REPO / "examples"


def kernel(name="tp_ag_gemm.mlir", pipeline="comet-lower-gpu"):
    m, _ = parse_module((EX / name).read_text())
    run_pipeline(m, pipeline)
    return m, next(op for op in m.walk() if isinstance(op, KernelOp))


def test_constants_come_from_the_ir():
    m, k = kernel(pipeline="comet-lower-gpu{comm=20}")
    src = codegen.emit_module(m)
    assert "constexpr int kTileM = 128;" in src and "constexpr int kTileN = 256;" in src
    assert "constexpr int kTileK = 64;" in src
    assert "constexpr int kStages = 4;" in src           # (128+256)*64*2 B = 48 KiB per stage in 228 KiB
    assert "kDefaultCommBlocks = 20;" in src
    assert "kIrM = 8192, kIrN = 7168, kIrK = 4096, kIrWorld = 2" in src
    assert "cometgpu.kernel ag_gemm %x, %w pattern ag_gemm" in src   # the IR op, as a comment
    assert "namespace comet_ag_gemm" in src and "comet_ag_gemm_tp_gemm(" in src
    assert "KernelTmaWarpSpecializedCooperative" in src


def test_stage_count_follows_smem_budget():
    cfg = codegen.KernelConfig("k", "gemm", 128, 128, 128, 1, (128, 128, 64), 0, 132, 228)
    assert cfg.stages == min(codegen.MAX_STAGES, (228 * 1024 - codegen.SMEM_RESERVE) // (256 * 64 * 2))
    with pytest.raises(CometError, match="fewer than 2 stages"):
        codegen.KernelConfig("k", "gemm", 128, 128, 128, 1, (256, 256, 256), 0, 132, 228).stages


def test_bad_tiles_refused():
    cfg = codegen.KernelConfig("k", "gemm", 128, 128, 128, 1, (64, 256, 64), 0, 132, 228)
    with pytest.raises(CometError, match="BM >= 128"):
        codegen.emit_kernel(cfg)


def test_target_lowers_workload_form(tmp_path):
    out = tmp_path / "rs.cu"
    r = subprocess.run(["comet-opt", str(EX / "tp_gemm_rs.mlir"), "--target=cuda", "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    src = out.read_text()
    assert "cometgpu.kernel gemm_rs" in src and "rs_reduce_kernel" in src


def test_two_kernels_one_translation_unit():
    text = """
func.func @f(%x: tensor<256x512xbf16>, %w: tensor<512x512xbf16>, %a: tensor<512x512xbf16>, %b: tensor<512x256xbf16>) -> (tensor<512x512xbf16>, tensor<256x256xbf16>) {
  %g = comet.collective allgather %x axis 0 world 2 : (tensor<256x512xbf16>) -> tensor<512x512xbf16>
  %y = comet.gemm %g, %w : (tensor<512x512xbf16>, tensor<512x512xbf16>) -> tensor<512x512xbf16>
  %p = comet.gemm %a, %b : (tensor<512x512xbf16>, tensor<512x256xbf16>) -> tensor<512x256xbf16>
  %z = comet.collective reducescatter %p axis 0 world 2 reduce add : (tensor<512x256xbf16>) -> tensor<256x256xbf16>
  func.return %y, %z : tensor<512x512xbf16>, tensor<256x256xbf16>
}"""
    m, _ = parse_module(text)
    run_pipeline(m, "comet-lower-gpu")
    src = codegen.emit_module(m)
    assert "namespace comet_ag_gemm" in src and "namespace comet_gemm_rs" in src
    assert src.count("!defined(COMET_NVSHMEM_HELPERS)") == 4     # shared helpers guarded (2 branches x 2 kernels)


def test_runtime_library_holds_one_kernel_per_tile():
    src, prefixes = runtime.runtime_source()
    assert prefixes == ["comet_tp_", "comet_tp_128x128_", "comet_tp_128x64_", "comet_tp_256x128_"]
    for ns in ("comet_tp", "comet_tp_128x128", "comet_tp_128x64", "comet_tp_256x128"):
        assert f"namespace {ns} {{" in src
    # stages from the SMEM budget left after the epilogue's 18 KiB (34 KiB for 128x256, whose
    # epilogue stores 128x64 subtiles: runtime.TILE_EPILOGUE): 48 / 32 / 24 / 48 KiB per stage ->
    # 4, 6, 8 (the cap) and 4; the 128x64 kernel (small M) runs without a cluster, the 256x128
    # one with cuBLAS's 1x2 cluster (two column blocks share the A tile)
    stages = [int(x.split(";")[0]) for x in src.split("constexpr int kStages = ")[1:]]
    clusters_m = [int(x.split(";")[0]) for x in src.split("constexpr int kClusterM = ")[1:]]
    clusters_n = [int(x.split(";")[0]) for x in src.split("constexpr int kClusterN = ")[1:]]
    assert stages == [4, 6, 8, 4] and clusters_m == [2, 2, 1, 1] and clusters_n == [1, 1, 1, 2]
    assert src.count("extern \"C\" {") == 4


@pytest.mark.parametrize("name,bad", [("COMET_RS_BLOCKS_PER_SM", "abc"), ("COMET_RS_BLOCKS_PER_SM", "0"),
                                      ("COMET_TP_CLUSTER", "two"), ("COMET_TP_STAGES", "-1")])
def test_bad_experiment_knob_is_a_user_error(monkeypatch, name, bad):
    monkeypatch.setenv(name, bad)
    with pytest.raises(CometError, match=name):
        runtime.runtime_source()


def test_reduce_blocks_knob_reaches_the_source(monkeypatch):
    assert "#define COMET_RS_BLOCKS_PER_SM 8" in runtime.runtime_source()[0]    # the template's default
    monkeypatch.setenv("COMET_RS_BLOCKS_PER_SM", "4")
    src = runtime.runtime_source()[0]
    assert src.index("#define COMET_RS_BLOCKS_PER_SM 4") < src.index("#ifndef COMET_RS_BLOCKS_PER_SM")


def test_runtime_errors_without_toolchain(monkeypatch, tmp_path):
    monkeypatch.setenv("COMET_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "cutlass_root", lambda: None)
    with pytest.raises(CometError, match="CUTLASS headers not found"):
        runtime.build("// nothing")
    monkeypatch.setattr(runtime, "cutlass_root", lambda: tmp_path)
    monkeypatch.setattr(runtime, "nvshmem_root", lambda: None)
    with pytest.raises(CometError, match="NVSHMEM not found"):
        runtime.build("// nothing")


def _cutlass():
    env = os.environ.get("CUTLASS_DIR")
    return Path(env) if env else runtime.cutlass_root()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("COMET_BUILD_TESTS") == "0", reason="COMET_BUILD_TESTS=0")
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_examples_compile_for_sm90a(tmp_path):
    cutlass = _cutlass()
    if cutlass is None or not (cutlass / "include" / "cutlass" / "cutlass.h").exists():
        pytest.skip("CUTLASS headers not found (pip install nvidia-cutlass==4.2.0.0 or set CUTLASS_DIR)")
    nv = runtime.nvshmem_root()
    procs = []
    sources = {name: codegen.emit_module(kernel(name)[0]) for name in ("tp_ag_gemm.mlir", "tp_gemm_rs.mlir")}
    # the runtime's library: four kernels in one translation unit (host helpers per namespace)
    sources["runtime"] = runtime.runtime_source()[0]
    for name, text in sources.items():   # all at once: 2 cores, ~40 s per kernel
        src = tmp_path / (name + ".cu")
        src.write_text(text)
        cmd = runtime.nvcc_command(src, tmp_path / (name + ".o"), cutlass, nv, shared=False)
        if nv is None:
            cmd = [c for c in cmd if not c.startswith("-DCOMET_WITH_NVSHMEM")] + ["-DCOMET_WITH_NVSHMEM=0"]
        procs.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for name, p in procs:
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, f"{name}: nvcc failed\n{out[-4000:]}"
        assert "serialized" not in out, out     # wgmma must not be serialised (no extern calls)
        assert (tmp_path / (name + ".o")).stat().st_size > 10000
