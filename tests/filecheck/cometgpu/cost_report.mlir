// --target=gpu-cost-report prices the cometgpu kernels (lowering the workload form first):
// GEMM on the compute blocks, communication on the comm blocks, overlap vs sequential choice.
// RUN: comet-opt %examples/tp_ag_gemm.mlir --target=gpu-cost-report | filecheck %s
// RUN: comet-opt %examples/tp_ag_gemm.mlir -p comet-lower-gpu --target='gpu-cost-report{arch=h200}' | filecheck %s --check-prefix=H200
// CHECK: cometgpu ag_gemm  M=8192 N=7168 K=4096 world=2 on h100
// CHECK: communication ({{[0-9]+}} comm blocks)
// CHECK: overlap kernel
// CHECK: sequential fallback
// CHECK: choice: {{overlap|sequential}} (comm blocks {{[0-9]+}}), latency {{[0-9.]+}} us
// H200: on h200
