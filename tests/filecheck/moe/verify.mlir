// cometmoe verifiers.
// RUN: comet-opt %s --split-input-file --verify-diagnostics | filecheck %s
func.func @a(%l: tensor<16x8xf32>) {
  %i, %g = cometmoe.route %l {topk = 9 : i64, experts = 8 : i64} : tensor<16x8xf32> -> tensor<16x9xi64>, tensor<16x9xf32>
  func.return
}
// CHECK: topk 9 must be in [1, 8]
// -----
func.func @b(%x: tensor<16x128xbf16>, %i: tensor<16x2xi64>, %w: tensor<6x128x256xbf16>) {
  %h = cometmoe.layer0 %x, %i, %w, %w {ep = 4 : i64, tp = 1 : i64, experts = 6 : i64, topk = 2 : i64, tile = [128 : i64, 256 : i64], comm_blocks = 4 : i64, split = "M", order = "local_first"} : (tensor<16x128xbf16>, tensor<16x2xi64>, tensor<6x128x256xbf16>, tensor<6x128x256xbf16>) -> tensor<?x256xbf16>
  func.return
}
// CHECK: ep=4 does not divide experts=6
// -----
func.func @c(%x: tensor<16x128xbf16>, %i: tensor<16x2xi64>, %w: tensor<8x128x256xbf16>) {
  %h = cometmoe.layer0 %x, %i, %w, %w {ep = 2 : i64, tp = 1 : i64, experts = 8 : i64, topk = 2 : i64, tile = [128 : i64, 256 : i64], comm_blocks = 4 : i64, split = "N", order = "local_first"} : (tensor<16x128xbf16>, tensor<16x2xi64>, tensor<8x128x256xbf16>, tensor<8x128x256xbf16>) -> tensor<?x256xbf16>
  func.return
}
// CHECK: cometmoe.layer0 splits the shared tensor along M
