// GEMM (M=N=K=512) followed by a row softmax (workload form), on the paper's edge accelerator.
// Try: comet-opt examples/gemm_softmax.mlir -p fused-gemm-distsm --target=cost-report
builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<512x512xi8>, %b: tensor<512x512xi8>) -> tensor<512x512xf16> {
    %c = comet.gemm %a, %b : (tensor<512x512xi8>, tensor<512x512xi8>) -> tensor<512x512xf16>
    %d = comet.softmax %c axis 1 : (tensor<512x512xf16>) -> tensor<512x512xf16>
    func.return %d : tensor<512x512xf16>
  }
}
