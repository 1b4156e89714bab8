// RUN: comet-opt %s -p comet-decompose | filecheck %s

builtin.module attributes {comet.arch = "h100"} {
  func.func @moe(%x: tensor<32x16xbf16>, %r: tensor<16x4xbf16>, %w1: tensor<4x16x24xbf16>, %w3: tensor<4x16x24xbf16>, %w2: tensor<4x24x16xbf16>) -> tensor<32x16xbf16> {
    %y = comet.moe %x, %r, %w1, %w3, %w2 topk 2 experts 4 : (tensor<32x16xbf16>, tensor<16x4xbf16>, tensor<4x16x24xbf16>, tensor<4x16x24xbf16>, tensor<4x24x16xbf16>) -> tensor<32x16xbf16>
    func.return %y : tensor<32x16xbf16>
  }
}

// CHECK:      %[[L:.*]] = comet.gemm %x, %r : ({{.*}}) -> tensor<32x4xbf16>
// CHECK-NEXT: %[[V:.*]], %[[I:.*]] = comet.topk %[[L]] k 2 : (tensor<32x4xbf16>) -> (tensor<32x2xbf16>, tensor<32x2xi32>)
// CHECK:      %[[W:.*]] = comet.div
// CHECK-NEXT: %[[XE:.*]] = comet.moe_dispatch %x, %[[I]] experts 4 capacity 32 : ({{.*}}) -> tensor<4x32x16xbf16>
// CHECK-NEXT: %[[H1:.*]] = comet.gemm %[[XE]], %w1 batch 1 : ({{.*}}) -> tensor<4x32x24xbf16>
// CHECK-NEXT: %[[H3:.*]] = comet.gemm %[[XE]], %w3 batch 1
// CHECK-NEXT: %[[A:.*]] = comet.silu %[[H1]]
// CHECK-NEXT: %[[G:.*]] = comet.mul %[[A]], %[[H3]]
// CHECK-NEXT: %[[YE:.*]] = comet.gemm %[[G]], %w2 batch 1 : ({{.*}}) -> tensor<4x32x16xbf16>
// CHECK-NEXT: %[[Y:.*]] = comet.moe_combine %[[YE]], %[[I]], %[[W]]
// CHECK-NEXT: func.return %[[Y]]
