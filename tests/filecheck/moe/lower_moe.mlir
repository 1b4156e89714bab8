// comet-lower-moe: comet.moe -> router GEMM + cometmoe.route + layer0 (split M, local tiles
// first) + layer1 (split N, column tiles pipelined); comm blocks only with expert parallelism.
// RUN: comet-opt %s -p 'comet-lower-moe{ep=1 tp=1}' | filecheck %s --check-prefix=EP1
// RUN: comet-opt %s -p 'comet-lower-moe{ep=2 tp=1}' | filecheck %s --check-prefix=EP2
// RUN: comet-opt %s -p 'comet-lower-moe{ep=4 tp=2}' | filecheck %s --check-prefix=TP2
// RUN: comet-opt %s -p 'comet-lower-moe{ep=2}' > %t.1.mlir && comet-opt %t.1.mlir > %t.2.mlir && diff %t.1.mlir %t.2.mlir
// RUN: comet-opt %s -p 'comet-lower-moe{ep=2}' --print-op-generic | comet-opt - > %t.3.mlir && diff %t.1.mlir %t.3.mlir

func.func @moe(%x: tensor<2048x4096xbf16>, %router: tensor<4096x8xbf16>, %w1: tensor<8x4096x14336xbf16>, %w3: tensor<8x4096x14336xbf16>, %w2: tensor<8x14336x4096xbf16>) -> tensor<2048x4096xbf16> {
  %y = comet.moe %x, %router, %w1, %w3, %w2 topk 2 experts 8 : (tensor<2048x4096xbf16>, tensor<4096x8xbf16>, tensor<8x4096x14336xbf16>, tensor<8x4096x14336xbf16>, tensor<8x14336x4096xbf16>) -> tensor<2048x4096xbf16>
  func.return %y : tensor<2048x4096xbf16>
}
// EP1-NOT: comet.moe
// EP1: %[[L:.*]] = comet.gemm %x, %router : (tensor<2048x4096xbf16>, tensor<4096x8xbf16>) -> tensor<2048x8xbf16>
// EP1: %[[I:.*]], %[[G:.*]] = cometmoe.route %[[L]] {topk = 2 : i64, experts = 8 : i64} : tensor<2048x8xbf16> -> tensor<2048x2xi64>, tensor<2048x2xf32>
// EP1: %[[H:.*]] = cometmoe.layer0 %x, %[[I]], %w1, %w3 {ep = 1 : i64, tp = 1 : i64, {{.*}}comm_blocks = 0 : i64, split = "M", order = "local_first"{{.*}}} : {{.*}} -> tensor<?x14336xbf16>
// EP1: %[[Y:.*]] = cometmoe.layer1 %[[H]], %[[I]], %[[G]], %w2 {ep = 1 : i64, {{.*}}comm_blocks = 0 : i64, split = "N", order = "column_pipelined"{{.*}}} : {{.*}} -> tensor<2048x4096xbf16>
// EP1: func.return %[[Y]]

// EP2: cometmoe.layer0 {{.*}}{ep = 2 : i64, tp = 1 : i64, {{.*}}comm_blocks = {{[1-9][0-9]*}} : i64, split = "M", order = "local_first"
// EP2: cometmoe.layer1 {{.*}}{ep = 2 : i64, tp = 1 : i64, {{.*}}split = "N", order = "column_pipelined"

// TP2: cometmoe.layer0 {{.*}}{ep = 4 : i64, tp = 2 : i64, {{.*}} -> tensor<?x7168xbf16>
// TP2: cometmoe.layer1 {{.*}} : (tensor<?x7168xbf16>, tensor<2048x2xi64>, tensor<2048x2xf32>, tensor<8x14336x4096xbf16>) -> tensor<2048x4096xbf16>
