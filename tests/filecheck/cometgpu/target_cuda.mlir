// --target=cuda lowers the workload form and writes CUDA naming the IR op; the constants are
// computed from the IR (tile, pipeline stages from the SMEM budget, comm blocks, shapes).
// RUN: comet-opt %examples/tp_ag_gemm.mlir --target=cuda | filecheck %s
// RUN: comet-opt %examples/tp_ag_gemm.mlir -p 'comet-lower-gpu{comm=16}' --target=cuda | filecheck %s --check-prefix=C16
// CHECK: // comet_ir CUDA backend: 1 kernel(s): ag_gemm
// CHECK: //   %y = cometgpu.kernel ag_gemm %x, %w pattern ag_gemm world 2
// CHECK: namespace comet_ag_gemm {
// CHECK: constexpr int kTileM = 128;
// CHECK: constexpr int kStages = 4;
// CHECK: kIrM = 8192, kIrN = 7168, kIrK = 4096, kIrWorld = 2;
// CHECK: cutlass::gemm::KernelTmaWarpSpecializedCooperative
// CHECK: __global__ void __launch_bounds__(kThreads, 1)
// CHECK: int comet_ag_gemm_tp_gemm(
// C16: kDefaultCommBlocks = 16;
