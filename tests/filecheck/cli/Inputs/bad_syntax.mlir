func.func @f(%a: tensor<8x16xf16>) {
  %0 = comet.softmax %a axis : (tensor<8x16xf16>) -> tensor<8x16xf16>
  func.return
}
