// RUN: comet-opt %s -p comet-decompose | filecheck %s
// RUN: comet-opt %s -p 'comet-decompose{ops=attention}' | filecheck %s --check-prefix=ATT

builtin.module attributes {comet.arch = "edge"} {
  func.func @attention(%q: tensor<1x2x16x64xf16>, %k: tensor<1x2x16x64xf16>, %v: tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16> {
    %o = comet.attention %q, %k, %v causal true : (tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16>
    func.return %o : tensor<1x2x16x64xf16>
  }
}

// 1/sqrt(64) = 0.125
// CHECK:      %[[S:.*]] = comet.gemm %q, %k batch 2 transpose_b true : ({{.*}}) -> tensor<1x2x16x16xf16>
// CHECK-NEXT: %[[SC:.*]] = comet.scale 0.125 %[[S]]
// CHECK-NEXT: %[[MK:.*]] = comet.causal_mask %[[SC]]
// CHECK-NEXT: comet.reduce max %[[MK]] axis 3
// CHECK:      %[[P:.*]] = comet.div
// CHECK-NEXT: %[[O:.*]] = comet.gemm %[[P]], %v batch 2 : ({{.*}}) -> tensor<1x2x16x64xf16>
// CHECK-NEXT: func.return %[[O]]

// ATT:      comet.causal_mask
// ATT-NEXT: comet.softmax %{{.*}} axis 3
