// Mixtral-8x7B MoE layer (hidden 4096, ffn 14336, 8 experts, top-2) on 2048 tokens (workload form).
builtin.module attributes {comet.arch = "h100"} {
  func.func @moe(%x: tensor<2048x4096xbf16>, %router: tensor<4096x8xbf16>, %w1: tensor<8x4096x14336xbf16>, %w3: tensor<8x4096x14336xbf16>, %w2: tensor<8x14336x4096xbf16>) -> tensor<2048x4096xbf16> {
    %y = comet.moe %x, %router, %w1, %w3, %w2 topk 2 experts 8 : (tensor<2048x4096xbf16>, tensor<4096x8xbf16>, tensor<8x4096x14336xbf16>, tensor<8x4096x14336xbf16>, tensor<8x14336x4096xbf16>) -> tensor<2048x4096xbf16>
    func.return %y : tensor<2048x4096xbf16>
  }
}
