// Tensor-parallel GEMM + reduce-scatter (row-parallel linear layer), per rank, world = 2:
// Y_shard[4096, 4096] = reducescatter(X[8192, 7168] @ W_shard[7168, 4096])   (bf16, add).
// comet-opt examples/tp_gemm_rs.mlir -p comet-lower-gpu       -> one cometgpu.kernel
// comet-opt examples/tp_gemm_rs.mlir --target=cuda -o rs.cu   -> CUDA source
builtin.module attributes {comet.arch = "h100"} {
  func.func @gemm_rs(%x: tensor<8192x7168xbf16>, %w: tensor<7168x4096xbf16>) -> tensor<4096x4096xbf16> {
    %p = comet.gemm %x, %w : (tensor<8192x7168xbf16>, tensor<7168x4096xbf16>) -> tensor<8192x4096xbf16>
    %y = comet.collective reducescatter %p axis 0 world 2 reduce add : (tensor<8192x4096xbf16>) -> tensor<4096x4096xbf16>
    func.return %y : tensor<4096x4096xbf16>
  }
}
