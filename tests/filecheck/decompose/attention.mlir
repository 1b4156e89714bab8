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

// flash=true: deferred normalisation, the division after the second GEMM (what the KV loop of
// comet-online-softmax needs); the row sum is taken from the exp, not used before the GEMM.
// RUN: comet-opt %s -p 'comet-decompose{flash=true}' | filecheck %s --check-prefix=FLASH
// FLASH:      %[[S:.*]] = comet.gemm %q, %k batch 2 transpose_b true
// FLASH-NEXT: %[[SC:.*]] = comet.scale {{.*}} %[[S]]
// FLASH-NEXT: %[[MK:.*]] = comet.causal_mask %[[SC]]
// FLASH-NEXT: %[[M:.*]] = comet.reduce max %[[MK]] axis 3
// FLASH-NEXT: %[[D:.*]] = comet.sub %[[MK]], %[[M]]
// FLASH-NEXT: %[[E:.*]] = comet.exp %[[D]]
// FLASH-NEXT: %[[U:.*]] = comet.gemm %[[E]], %v batch 2
// FLASH-NEXT: %[[L:.*]] = comet.reduce add %[[E]] axis 3
// FLASH-NEXT: %[[O:.*]] = comet.div %[[U]], %[[L]]
// FLASH-NEXT: func.return %[[O]]
