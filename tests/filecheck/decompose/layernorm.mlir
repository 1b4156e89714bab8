// RUN: comet-opt %s -p comet-decompose | filecheck %s

builtin.module attributes {comet.arch = "edge"} {
  func.func @ln(%x: tensor<8x16xf16>, %g: tensor<16xf16>, %b: tensor<16xf16>) -> tensor<8x16xf16> {
    %y = comet.layernorm %x, %g, %b axis 1 eps 0.001 : (tensor<8x16xf16>, tensor<16xf16>, tensor<16xf16>) -> tensor<8x16xf16>
    func.return %y : tensor<8x16xf16>
  }
}

// CHECK:      %[[MU:.*]] = comet.reduce mean %x axis 1 : (tensor<8x16xf16>) -> tensor<8x1xf16>
// CHECK-NEXT: %[[XC:.*]] = comet.sub %x, %[[MU]]
// CHECK-NEXT: %[[SQ:.*]] = comet.mul %[[XC]], %[[XC]]
// CHECK-NEXT: %[[VAR:.*]] = comet.reduce mean %[[SQ]] axis 1
// CHECK-NEXT: %[[R:.*]] = comet.rsqrt %[[VAR]] eps 0.001 : (tensor<8x1xf16>) -> tensor<8x1xf16>
// CHECK-NEXT: %[[N:.*]] = comet.mul %[[XC]], %[[R]]
// CHECK-NEXT: %[[G:.*]] = comet.mul %[[N]], %g : (tensor<8x16xf16>, tensor<16xf16>) -> tensor<8x16xf16>
// CHECK-NEXT: %[[Y:.*]] = comet.add %[[G]], %b
// CHECK-NEXT: func.return %[[Y]]
