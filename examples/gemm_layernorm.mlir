// GEMM (M=N=K=512) followed by a row LayerNorm (workload form), on the paper's edge accelerator.
// Try: comet-opt examples/gemm_layernorm.mlir -p fused-gemm-distln --target=cost-report
builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_layernorm(%a: tensor<512x512xi8>, %b: tensor<512x512xi8>) -> tensor<512x512xf16> {
    %c = comet.gemm %a, %b : (tensor<512x512xi8>, tensor<512x512xi8>) -> tensor<512x512xf16>
    %d = comet.layernorm %c axis 1 eps 1.0e-05 : (tensor<512x512xf16>) -> tensor<512x512xf16>
    func.return %d : tensor<512x512xf16>
  }
}
