// RUN: comet-opt %s -p comet-decompose | filecheck %s
// RUN: comet-opt %s -p 'comet-decompose{ops=layernorm}' | filecheck %s --check-prefix=KEEP

builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<256x4096xi8>, %b: tensor<4096x1024xi8>) -> tensor<256x1024xf16> {
    %c = comet.gemm %a, %b : (tensor<256x4096xi8>, tensor<4096x1024xi8>) -> tensor<256x1024xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x1024xf16>) -> tensor<256x1024xf16>
    func.return %d : tensor<256x1024xf16>
  }
}

// CHECK:      %[[C:.*]] = comet.gemm %a, %b
// CHECK-NEXT: %[[M:.*]] = comet.reduce max %[[C]] axis 1 : (tensor<256x1024xf16>) -> tensor<256x1xf16>
// CHECK-NEXT: %[[S:.*]] = comet.sub %[[C]], %[[M]] : (tensor<256x1024xf16>, tensor<256x1xf16>) -> tensor<256x1024xf16>
// CHECK-NEXT: %[[E:.*]] = comet.exp %[[S]]
// CHECK-NEXT: %[[Z:.*]] = comet.reduce add %[[E]] axis 1 : (tensor<256x1024xf16>) -> tensor<256x1xf16>
// CHECK-NEXT: %[[D:.*]] = comet.div %[[E]], %[[Z]]
// CHECK-NEXT: func.return %[[D]]
// CHECK-NOT:  comet.softmax

// KEEP: comet.softmax
