// GEMM followed by a row LayerNorm (workload form), on the paper's edge accelerator.
builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_layernorm(%a: tensor<256x1024xi8>, %b: tensor<1024x1024xi8>) -> tensor<256x1024xf16> {
    %c = comet.gemm %a, %b : (tensor<256x1024xi8>, tensor<1024x1024xi8>) -> tensor<256x1024xf16>
    %d = comet.layernorm %c axis 1 eps 1.0e-05 : (tensor<256x1024xf16>) -> tensor<256x1024xf16>
    func.return %d : tensor<256x1024xf16>
  }
}
