// comet-lower-gpu: all-gather feeding a GEMM and a GEMM feeding a reduce-scatter become one
// cometgpu.kernel each (tile grid computed from M and N, comm blocks from the cost model,
// local-first / arrival tile order), with their signals and comm ops.
// RUN: comet-opt %s -p comet-lower-gpu | filecheck %s
// RUN: comet-opt %s -p 'comet-lower-gpu{comm=8 order=natural}' | filecheck %s --check-prefix=OPT
// RUN: not comet-opt %s -p 'comet-lower-gpu{comm=-5}' 2>&1 | filecheck %s --check-prefix=BADCOMM
// BADCOMM: lower_gpu.mlir: error: comet-lower-gpu: comm must be -1 (chosen by the cost model) or a block count >= 0, got -5
// RUN: comet-opt %s -p comet-lower-gpu > %t.1.mlir && comet-opt %t.1.mlir > %t.2.mlir && diff %t.1.mlir %t.2.mlir
// RUN: comet-opt %s -p comet-lower-gpu --print-op-generic | comet-opt - > %t.3.mlir && diff %t.1.mlir %t.3.mlir

builtin.module attributes {comet.arch = "h100"} {
  func.func @ag(%x: tensor<200x520xbf16>, %w: tensor<520x1000xbf16>) -> tensor<400x1000xbf16> {
    %g = comet.collective allgather %x axis 0 world 2 : (tensor<200x520xbf16>) -> tensor<400x520xbf16>
    %y = comet.gemm %g, %w : (tensor<400x520xbf16>, tensor<520x1000xbf16>) -> tensor<400x1000xbf16>
    func.return %y : tensor<400x1000xbf16>
  }
  func.func @rs(%x: tensor<600x776xbf16>, %w: tensor<776x1000xbf16>) -> tensor<300x1000xbf16> {
    %p = comet.gemm %x, %w : (tensor<600x776xbf16>, tensor<776x1000xbf16>) -> tensor<600x1000xbf16>
    %y = comet.collective reducescatter %p axis 0 world 2 reduce add : (tensor<600x1000xbf16>) -> tensor<300x1000xbf16>
    func.return %y : tensor<300x1000xbf16>
  }
}
// CHECK-LABEL: func.func @ag
// CHECK-NOT:   comet.collective
// CHECK:       %y = cometgpu.kernel ag_gemm %x, %w pattern ag_gemm world 2 tile [128, 256, 64] grid [4, 4] comm {{[0-9]+}} order local_first tiles [0, 4, 1, 5, 2, 6, 3, 7] cluster [2, 1] attributes {comet.predicted_us = {{.*}}, comet.sequential_us = {{.*}}, comet.strategy = "{{overlap|sequential}}"} : (tensor<200x520xbf16>, tensor<520x1000xbf16>) -> tensor<400x1000xbf16> {
// CHECK-NEXT:    cometgpu.signal ready count 2 scope rank
// CHECK-NEXT:    cometgpu.signal shard_ready count {{[0-9]+}} scope chunk
// CHECK-NEXT:    cometgpu.put_signal shard chunks {{[0-9]+}} signal shard_ready after [ready]
// CHECK-NEXT:    cometgpu.wait shard_ready role compute scope tile
// CHECK-NEXT:  }
// CHECK-LABEL: func.func @rs
// CHECK-NOT:   comet.gemm
// CHECK:       %y = cometgpu.kernel gemm_rs %x, %w pattern gemm_rs world 2 tile [128, 256, 64] grid [5, 4] comm {{[0-9]+}} order arrival
// CHECK:         cometgpu.arrive tile_done
// CHECK-NEXT:    cometgpu.wait tile_done role comm scope row_block
// CHECK-NEXT:    cometgpu.put_signal partial chunks {{[0-9]+}} signal partial_ready after [ready, tile_done]
// CHECK-NEXT:    cometgpu.reduce partial_ready

// OPT: cometgpu.kernel ag_gemm {{.*}} comm 8 tiles
// OPT: cometgpu.put_signal shard chunks 8
// OPT: cometgpu.kernel gemm_rs {{.*}} comm 8 tiles
