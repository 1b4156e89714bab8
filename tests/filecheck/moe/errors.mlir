// Bad configurations give one located error, no traceback.
// RUN: not comet-opt %s -p 'comet-lower-moe{ep=3}' 2>&1 | filecheck %s --check-prefix=EP3
// RUN: not comet-opt %s -p 'comet-lower-moe{tp=5}' 2>&1 | filecheck %s --check-prefix=TP5
// RUN: not comet-opt %s -p 'comet-lower-moe{ep=0}' 2>&1 | filecheck %s --check-prefix=EP0
// RUN: not comet-opt %s -p 'comet-lower-moe{arch="tpu"}' 2>&1 | filecheck %s --check-prefix=ARCH
func.func @moe(%x: tensor<64x128xbf16>, %router: tensor<128x8xbf16>, %w1: tensor<8x128x256xbf16>, %w3: tensor<8x128x256xbf16>, %w2: tensor<8x256x128xbf16>) -> tensor<64x128xbf16> {
  %y = comet.moe %x, %router, %w1, %w3, %w2 topk 2 experts 8 : (tensor<64x128xbf16>, tensor<128x8xbf16>, tensor<8x128x256xbf16>, tensor<8x128x256xbf16>, tensor<8x256x128xbf16>) -> tensor<64x128xbf16>
  func.return %y : tensor<64x128xbf16>
}
// EP3: error: comet-lower-moe: ep=3 does not divide experts=8
// EP3-NOT: Traceback
// TP5: error: comet-lower-moe: tp=5 does not divide ffn=256
// EP0: error: comet-lower-moe: ep and tp must be >= 1
// ARCH: error: moe cost model: unknown GPU arch 'tpu'
