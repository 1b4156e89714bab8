// Causal self-attention, one Llama-style layer slice: B=1, H=8, S=64, D=64 (workload form).
// Try: comet-opt examples/attention.mlir -p flash-attention --target=cost-report
builtin.module attributes {comet.arch = "edge"} {
  func.func @attention(%q: tensor<1x8x64x64xf16>, %k: tensor<1x8x64x64xf16>, %v: tensor<1x8x64x64xf16>) -> tensor<1x8x64x64xf16> {
    %o = comet.attention %q, %k, %v causal true : (tensor<1x8x64x64xf16>, tensor<1x8x64x64xf16>, tensor<1x8x64x64xf16>) -> tensor<1x8x64x64xf16>
    func.return %o : tensor<1x8x64x64xf16>
  }
}
