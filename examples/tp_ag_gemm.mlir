// Tensor-parallel all-gather + GEMM (column-parallel linear layer), per rank, world = 2:
// Y[8192, 7168] = allgather(X_shard[4096, 4096]) @ W_shard[4096, 7168]   (bf16).
// comet-opt examples/tp_ag_gemm.mlir -p comet-lower-gpu       -> one cometgpu.kernel
// comet-opt examples/tp_ag_gemm.mlir --target=cuda -o ag.cu   -> CUDA source
builtin.module attributes {comet.arch = "h100"} {
  func.func @ag_gemm(%x: tensor<4096x4096xbf16>, %w: tensor<4096x7168xbf16>) -> tensor<8192x7168xbf16> {
    %xg = comet.collective allgather %x axis 0 world 2 : (tensor<4096x4096xbf16>) -> tensor<8192x4096xbf16>
    %y = comet.gemm %xg, %w : (tensor<8192x4096xbf16>, tensor<4096x7168xbf16>) -> tensor<8192x7168xbf16>
    func.return %y : tensor<8192x7168xbf16>
  }
}
