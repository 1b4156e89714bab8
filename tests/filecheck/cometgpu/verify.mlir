// cometgpu verifiers report the op and the field, located.
// RUN: comet-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @grid(%x: tensor<256x512xbf16>, %w: tensor<512x512xbf16>) -> tensor<512x512xbf16> {
  %y = cometgpu.kernel k %x, %w pattern ag_gemm world 2 tile [128, 256, 64] grid [4, 3] : (tensor<256x512xbf16>, tensor<512x512xbf16>) -> tensor<512x512xbf16> {
  }
  func.return %y : tensor<512x512xbf16>
}
// CHECK: cometgpu.kernel: grid: [4, 3] should be [4, 2] for M=512 N=512 tile 128x256

// -----
func.func @sig(%x: tensor<256x512xbf16>, %w: tensor<512x512xbf16>) -> tensor<512x512xbf16> {
  %y = cometgpu.kernel k %x, %w pattern ag_gemm world 2 tile [128, 256, 64] grid [4, 2] comm 4 : (tensor<256x512xbf16>, tensor<512x512xbf16>) -> tensor<512x512xbf16> {
    cometgpu.wait nowhere role compute scope tile
  }
  func.return %y : tensor<512x512xbf16>
}
// CHECK: cometgpu.wait: signal: no cometgpu.signal named 'nowhere' in the enclosing kernel

// -----
func.func @rs(%x: tensor<602x512xbf16>, %w: tensor<512x512xbf16>) -> tensor<150x512xbf16> {
  %y = cometgpu.kernel k %x, %w pattern gemm_rs world 4 tile [128, 256, 64] grid [5, 2] : (tensor<602x512xbf16>, tensor<512x512xbf16>) -> tensor<150x512xbf16> {
  }
  func.return %y : tensor<150x512xbf16>
}
// CHECK: cometgpu.kernel: x: rows 602 are not divisible by world=4 (reduce-scatter)
