// The cost targets price MoE layers with the GPU MoE model (workload form or lowered).
// RUN: comet-opt %examples/moe.mlir --target=cost-report | filecheck %s
// CHECK: MoE cost report on h100
// CHECK: layer 0: tokens 2048 hidden 4096 ffn 14336 experts 8 top-2 EP 1 TP 1
// CHECK: total
// RUN: comet-opt %examples/moe.mlir -p 'comet-lower-moe{ep=2}' --target=cost-json | filecheck %s --check-prefix=JSON
// JSON: "kind": "moe"
// JSON: "impl": "fused"
// RUN: not comet-opt %examples/moe.mlir --target='cost-report{arch=edge}' 2>&1 | filecheck %s --check-prefix=ARCH
// ARCH: error: moe cost model: unknown GPU arch 'edge'
