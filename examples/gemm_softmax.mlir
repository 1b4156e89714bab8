// GEMM followed by a row softmax (workload form), on the paper's edge accelerator.
builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<256x4096xi8>, %b: tensor<4096x1024xi8>) -> tensor<256x1024xf16> {
    %c = comet.gemm %a, %b : (tensor<256x4096xi8>, tensor<4096x1024xi8>) -> tensor<256x1024xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x1024xf16>) -> tensor<256x1024xf16>
    func.return %d : tensor<256x1024xf16>
  }
}
