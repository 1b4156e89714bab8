// Every workload op, custom form: print -> parse -> print is identical, and the generic form
// parses back to the same custom text.
// RUN: comet-opt %s > %t.1.mlir && comet-opt %t.1.mlir > %t.2.mlir && diff %t.1.mlir %t.2.mlir
// RUN: comet-opt %s --print-op-generic | comet-opt - > %t.3.mlir && diff %t.1.mlir %t.3.mlir
// RUN: comet-opt %s | filecheck %s
// RUN: comet-opt %s --print-op-generic | filecheck %s --check-prefix=GEN

func.func @all(%a: tensor<2x8x16xf16>, %b: tensor<2x16x4xf16>, %m: tensor<8x16xf16>, %w: tensor<16x16xf16>,
               %g: tensor<16xf16>, %q: tensor<1x2x8x4xf16>, %x: tensor<8x16xbf16>, %r: tensor<16x4xbf16>,
               %w1: tensor<4x16x32xbf16>, %w3: tensor<4x16x32xbf16>, %w2: tensor<4x32x16xbf16>) {
  // CHECK: comet.gemm %{{.*}}, %{{.*}} batch 1 : (tensor<2x8x16xf16>, tensor<2x16x4xf16>) -> tensor<2x8x4xf16>
  // GEN: "comet.gemm"(%{{.*}}, %{{.*}}) <{batch = 1 : i64, transpose_b = false}>
  %0 = comet.gemm %a, %b batch 1 : (tensor<2x8x16xf16>, tensor<2x16x4xf16>) -> tensor<2x8x4xf16>
  // CHECK: comet.gemm %{{.*}}, %{{.*}} transpose_b true : (tensor<8x16xf16>, tensor<16x16xf16>) -> tensor<8x16xf16>
  %1 = comet.gemm %m, %w transpose_b true : (tensor<8x16xf16>, tensor<16x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.softmax %{{.*}} axis 1
  // GEN: "comet.softmax"(%{{.*}}) <{axis = 1 : i64}>
  %2 = comet.softmax %1 axis 1 : (tensor<8x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.layernorm %{{.*}}, %{{.*}}, %{{.*}} eps 1.0e-06
  %3 = comet.layernorm %2, %g, %g eps 1.0e-06 : (tensor<8x16xf16>, tensor<16xf16>, tensor<16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.layernorm %{{.*}} : (tensor<8x16xf16>) -> tensor<8x16xf16>
  %4 = comet.layernorm %3 : (tensor<8x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.exp
  %5 = comet.exp %4 : (tensor<8x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.silu
  %6 = comet.silu %5 : (tensor<8x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.gelu
  %7 = comet.gelu %6 : (tensor<8x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.scale 0.125 %{{.*}}
  // GEN: "comet.scale"(%{{.*}}) <{factor = 1.250000e-01 : f64}>
  %8 = comet.scale 0.125 %7 : (tensor<8x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.reduce max %{{.*}} axis 1 : (tensor<8x16xf16>) -> tensor<8x1xf16>
  // GEN: "comet.reduce"(%{{.*}}) <{kind = #comet<reduce_kind max>, axis = 1 : i64}>
  %9 = comet.reduce max %8 axis 1 : (tensor<8x16xf16>) -> tensor<8x1xf16>
  // CHECK: comet.reduce mean %{{.*}} axis 0
  %10 = comet.reduce mean %8 axis 0 : (tensor<8x16xf16>) -> tensor<1x16xf16>
  // CHECK: comet.sub %{{.*}}, %{{.*}} : (tensor<8x16xf16>, tensor<8x1xf16>) -> tensor<8x16xf16>
  %11 = comet.sub %8, %9 : (tensor<8x16xf16>, tensor<8x1xf16>) -> tensor<8x16xf16>
  // CHECK: comet.add
  %12 = comet.add %11, %10 : (tensor<8x16xf16>, tensor<1x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.mul
  %13 = comet.mul %12, %12 : (tensor<8x16xf16>, tensor<8x16xf16>) -> tensor<8x16xf16>
  // CHECK: comet.div
  %14 = comet.div %13, %9 : (tensor<8x16xf16>, tensor<8x1xf16>) -> tensor<8x16xf16>
  // CHECK: comet.attention %{{.*}}, %{{.*}}, %{{.*}} causal true
  // GEN: "comet.attention"(%{{.*}}, %{{.*}}, %{{.*}}) <{causal = true}>
  %15 = comet.attention %q, %q, %q causal true : (tensor<1x2x8x4xf16>, tensor<1x2x8x4xf16>, tensor<1x2x8x4xf16>) -> tensor<1x2x8x4xf16>
  // CHECK: comet.moe %{{.*}} topk 2 experts 4
  // GEN: "comet.moe"({{.*}}) <{topk = 2 : i64, experts = 4 : i64}>
  %16 = comet.moe %x, %r, %w1, %w3, %w2 topk 2 experts 4 : (tensor<8x16xbf16>, tensor<16x4xbf16>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>) -> tensor<8x16xbf16>
  // CHECK: comet.collective allgather %{{.*}} world 2 : (tensor<8x16xbf16>) -> tensor<16x16xbf16>
  // GEN: "comet.collective"(%{{.*}}) <{kind = #comet<col allgather>, axis = 0 : i64, world = 2 : i64, reduce = #comet<reduce_op none>}>
  %17 = comet.collective allgather %16 world 2 : (tensor<8x16xbf16>) -> tensor<16x16xbf16>
  // CHECK: comet.collective reducescatter %{{.*}} axis 1 world 4 reduce add : (tensor<8x16xbf16>) -> tensor<8x4xbf16>
  %18 = comet.collective reducescatter %16 axis 1 world 4 reduce add : (tensor<8x16xbf16>) -> tensor<8x4xbf16>
  // CHECK: comet.compound "blk" %{{.*}} : (tensor<8x16xf16>) -> tensor<8x16xf16> {
  // CHECK: comet.yield %{{.*}} : (tensor<8x16xf16>) -> ()
  %19 = comet.compound "blk" %m : (tensor<8x16xf16>) -> tensor<8x16xf16> {
  ^bb0(%y: tensor<8x16xf16>):
    %z = comet.exp %y : (tensor<8x16xf16>) -> tensor<8x16xf16>
    comet.yield %z : (tensor<8x16xf16>) -> ()
  }
  func.return
}
