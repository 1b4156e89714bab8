// One case per workload-op verifier rule; each diagnostic names the op and the field, located.
// RUN: comet-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @f(%a: tensor<8x16xf16>, %b: tensor<16x4xf16>) {
  // CHECK: verify_workload.mlir:6:3: error: comet.gemm: lhs: rank 2 but batch=1 needs rank 3
  %0 = comet.gemm %a, %b batch 1 : (tensor<8x16xf16>, tensor<16x4xf16>) -> tensor<8x4xf16>
  func.return
}
// -----
func.func @f(%a: tensor<2x8x16xf16>, %b: tensor<3x16x4xf16>) {
  // CHECK: error: comet.gemm: batch: batch dims differ
  %0 = comet.gemm %a, %b batch 1 : (tensor<2x8x16xf16>, tensor<3x16x4xf16>) -> tensor<2x8x4xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>, %b: tensor<12x4xf16>) {
  // CHECK: error: comet.gemm: rhs: contraction size 12 does not match lhs K=16
  %0 = comet.gemm %a, %b : (tensor<8x16xf16>, tensor<12x4xf16>) -> tensor<8x4xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>, %b: tensor<16x4xf16>) {
  // CHECK: error: comet.gemm: result: shape (8, 5) should be (8, 4)
  %0 = comet.gemm %a, %b : (tensor<8x16xf16>, tensor<16x4xf16>) -> tensor<8x5xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>, %b: tensor<16x4xf16>) {
  // CHECK: error: comet.gemm: batch: must be >= 0
  %0 = comet.gemm %a, %b batch -1 : (tensor<8x16xf16>, tensor<16x4xf16>) -> tensor<8x4xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>) {
  // CHECK: error: comet.softmax: axis: 2 is out of range for rank 2
  %0 = comet.softmax %a axis 2 : (tensor<8x16xf16>) -> tensor<8x16xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>) {
  // CHECK: error: comet.softmax: result: shape (16, 8) differs from input shape (8, 16)
  %0 = comet.softmax %a : (tensor<8x16xf16>) -> tensor<16x8xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>) {
  // CHECK: error: comet.layernorm: eps: must be > 0
  %0 = comet.layernorm %a eps 0.0 : (tensor<8x16xf16>) -> tensor<8x16xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>, %g: tensor<16xf16>) {
  // CHECK: error: comet.layernorm: affine: takes either no operands or gamma and beta
  %0 = comet.layernorm %a, %g : (tensor<8x16xf16>, tensor<16xf16>) -> tensor<8x16xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>, %g: tensor<8xf16>) {
  // CHECK: error: comet.layernorm: affine: gamma/beta must have shape (16,)
  %0 = comet.layernorm %a, %g, %g : (tensor<8x16xf16>, tensor<8xf16>, tensor<8xf16>) -> tensor<8x16xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>) {
  // CHECK: error: comet.layernorm: result: shape (8, 8) differs from input shape (8, 16)
  %0 = comet.layernorm %a : (tensor<8x16xf16>) -> tensor<8x8xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>) {
  // CHECK: error: comet.exp: result: shape (8,) differs from input shape (8, 16)
  %0 = comet.exp %a : (tensor<8x16xf16>) -> tensor<8xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>) {
  // CHECK: error: comet.reduce: result: shape (8,) should be (8, 1) (reduced axis kept as 1)
  %0 = comet.reduce add %a axis 1 : (tensor<8x16xf16>) -> tensor<8xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>, %b: tensor<8x4xf16>) {
  // CHECK: error: comet.add: rhs: shapes (8, 16) and (8, 4) do not broadcast
  %0 = comet.add %a, %b : (tensor<8x16xf16>, tensor<8x4xf16>) -> tensor<8x16xf16>
  func.return
}
// -----
func.func @f(%a: tensor<8x16xf16>, %b: tensor<8x1xf16>) {
  // CHECK: error: comet.div: result: shape (8, 1) should be the broadcast shape (8, 16)
  %0 = comet.div %a, %b : (tensor<8x16xf16>, tensor<8x1xf16>) -> tensor<8x1xf16>
  func.return
}
// -----
func.func @f(%q: tensor<2x8x4xf16>) {
  // CHECK: error: comet.attention: q: must be rank 4 [B, H, S, D], got rank 3
  %0 = comet.attention %q, %q, %q : (tensor<2x8x4xf16>, tensor<2x8x4xf16>, tensor<2x8x4xf16>) -> tensor<2x8x4xf16>
  func.return
}
// -----
func.func @f(%q: tensor<1x2x8x4xf16>, %k: tensor<1x2x8x8xf16>) {
  // CHECK: error: comet.attention: k: head dim 8 does not match q head dim 4
  %0 = comet.attention %q, %k, %k : (tensor<1x2x8x4xf16>, tensor<1x2x8x8xf16>, tensor<1x2x8x8xf16>) -> tensor<1x2x8x8xf16>
  func.return
}
// -----
func.func @f(%q: tensor<1x2x8x4xf16>, %k: tensor<1x2x6x4xf16>, %v: tensor<1x2x5x4xf16>) {
  // CHECK: error: comet.attention: v: sequence length 5 does not match k's 6
  %0 = comet.attention %q, %k, %v : (tensor<1x2x8x4xf16>, tensor<1x2x6x4xf16>, tensor<1x2x5x4xf16>) -> tensor<1x2x8x4xf16>
  func.return
}
// -----
func.func @f(%q: tensor<1x2x8x4xf16>, %k: tensor<1x2x6x4xf16>) {
  // CHECK: error: comet.attention: causal: needs equal query and key lengths
  %0 = comet.attention %q, %k, %k causal true : (tensor<1x2x8x4xf16>, tensor<1x2x6x4xf16>, tensor<1x2x6x4xf16>) -> tensor<1x2x8x4xf16>
  func.return
}
// -----
func.func @f(%q: tensor<1x2x8x4xf16>, %k: tensor<1x3x8x4xf16>) {
  // CHECK: error: comet.attention: k: batch/head dims differ
  %0 = comet.attention %q, %k, %k : (tensor<1x2x8x4xf16>, tensor<1x3x8x4xf16>, tensor<1x3x8x4xf16>) -> tensor<1x2x8x4xf16>
  func.return
}
// -----
func.func @f(%q: tensor<1x2x8x4xf16>) {
  // CHECK: error: comet.attention: result: shape (1, 2, 8, 8) should be (1, 2, 8, 4)
  %0 = comet.attention %q, %q, %q : (tensor<1x2x8x4xf16>, tensor<1x2x8x4xf16>, tensor<1x2x8x4xf16>) -> tensor<1x2x8x8xf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>, %r: tensor<16x4xbf16>, %w1: tensor<4x16x32xbf16>, %w2: tensor<4x32x16xbf16>) {
  // CHECK: error: comet.moe: topk: 5 must be in [1, experts=4]
  %0 = comet.moe %x, %r, %w1, %w1, %w2 topk 5 experts 4 : (tensor<8x16xbf16>, tensor<16x4xbf16>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>, %r: tensor<16x3xbf16>, %w1: tensor<4x16x32xbf16>, %w2: tensor<4x32x16xbf16>) {
  // CHECK: error: comet.moe: router: must be (16, 4)
  %0 = comet.moe %x, %r, %w1, %w1, %w2 topk 2 experts 4 : (tensor<8x16xbf16>, tensor<16x3xbf16>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>, %r: tensor<16x4xbf16>, %w1: tensor<4x8x32xbf16>, %w2: tensor<4x32x16xbf16>) {
  // CHECK: error: comet.moe: w1: must be (4, 16, F), got (4, 8, 32)
  %0 = comet.moe %x, %r, %w1, %w1, %w2 topk 2 experts 4 : (tensor<8x16xbf16>, tensor<16x4xbf16>, tensor<4x8x32xbf16>, tensor<4x8x32xbf16>, tensor<4x32x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>, %r: tensor<16x4xbf16>, %w1: tensor<4x16x32xbf16>, %w3: tensor<4x16x16xbf16>, %w2: tensor<4x32x16xbf16>) {
  // CHECK: error: comet.moe: w3: must be (4, 16, 32)
  %0 = comet.moe %x, %r, %w1, %w3, %w2 topk 2 experts 4 : (tensor<8x16xbf16>, tensor<16x4xbf16>, tensor<4x16x32xbf16>, tensor<4x16x16xbf16>, tensor<4x32x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>, %r: tensor<16x4xbf16>, %w1: tensor<4x16x32xbf16>, %w2: tensor<4x16x16xbf16>) {
  // CHECK: error: comet.moe: w2: must be (4, 32, 16)
  %0 = comet.moe %x, %r, %w1, %w1, %w2 topk 2 experts 4 : (tensor<8x16xbf16>, tensor<16x4xbf16>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x16x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<2x8x16xbf16>, %r: tensor<16x4xbf16>, %w1: tensor<4x16x32xbf16>, %w2: tensor<4x32x16xbf16>) {
  // CHECK: error: comet.moe: x: must be [tokens, hidden], got rank 3
  %0 = comet.moe %x, %r, %w1, %w1, %w2 topk 2 experts 4 : (tensor<2x8x16xbf16>, tensor<16x4xbf16>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>, %r: tensor<16x4xbf16>, %w1: tensor<4x16x32xbf16>, %w2: tensor<4x32x16xbf16>) {
  // CHECK: error: comet.moe: result: must be (8, 16)
  %0 = comet.moe %x, %r, %w1, %w1, %w2 topk 2 experts 4 : (tensor<8x16xbf16>, tensor<16x4xbf16>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>) -> tensor<4x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>) {
  // CHECK: error: comet.collective: reduce: 'allreduce' needs a reduce-op
  %0 = comet.collective allreduce %x world 2 : (tensor<8x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>) {
  // CHECK: error: comet.collective: reduce: 'allgather' takes no reduce-op (got 'max')
  %0 = comet.collective allgather %x world 2 reduce max : (tensor<8x16xbf16>) -> tensor<16x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>) {
  // CHECK: error: comet.collective: axis: size 16 is not divisible by world=3
  %0 = comet.collective reducescatter %x axis 1 world 3 reduce add : (tensor<8x16xbf16>) -> tensor<8x5xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>) {
  // CHECK: error: comet.collective: result: shape (8, 16) should be (16, 16)
  %0 = comet.collective allgather %x world 2 : (tensor<8x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%x: tensor<8x16xbf16>) {
  // CHECK: error: comet.collective: world: must be >= 1
  %0 = comet.collective alltoall %x world 0 : (tensor<8x16xbf16>) -> tensor<8x16xbf16>
  func.return
}
// -----
func.func @f(%m: tensor<8x16xf16>) {
  // CHECK: error: comet.compound: body: 0 block arguments for 1 operands
  %0 = comet.compound "blk" %m : (tensor<8x16xf16>) -> tensor<8x16xf16> {
    %z = comet.exp %m : (tensor<8x16xf16>) -> tensor<8x16xf16>
    comet.yield %z : (tensor<8x16xf16>) -> ()
  }
  func.return
}
// -----
func.func @f(%m: tensor<8x16xf16>) {
  // CHECK: error: comet.compound: body: yielded types differ from the result types
  %0 = comet.compound "blk" %m : (tensor<8x16xf16>) -> tensor<8x8xf16> {
  ^bb0(%y: tensor<8x16xf16>):
    comet.yield %y : (tensor<8x16xf16>) -> ()
  }
  func.return
}
// -----
func.func @f(%m: tensor<8x16xf16>) {
  // CHECK: error: comet.exp: Operation comet.exp terminates block in single-block region but is not a terminator
  %0 = comet.compound "blk" %m : (tensor<8x16xf16>) -> tensor<8x16xf16> {
  ^bb0(%y: tensor<8x16xf16>):
    %z = comet.exp %y : (tensor<8x16xf16>) -> tensor<8x16xf16>
  }
  func.return
}
