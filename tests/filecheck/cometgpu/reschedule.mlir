// comet-reschedule rewrites tile_order: local-first (own shard's row blocks, then the others in
// ring-arrival order), natural, or a given permutation; bad options are errors.
// RUN: comet-opt %s -p 'comet-reschedule{order=local-first rank=1}' | filecheck %s --check-prefix=LOCAL
// RUN: comet-opt %s -p 'comet-reschedule{order=natural}' | filecheck %s --check-prefix=NAT
// RUN: comet-opt %s -p 'comet-reschedule{order=given tiles="7,6,5,4,3,2,1,0"}' | filecheck %s --check-prefix=GIVEN
// RUN: not comet-opt %s -p 'comet-reschedule{order=given tiles="1,2"}' 2>&1 | filecheck %s --check-prefix=BAD

func.func @f(%x: tensor<256x512xbf16>, %w: tensor<512x512xbf16>) -> tensor<512x512xbf16> {
  %y = cometgpu.kernel k %x, %w pattern ag_gemm world 2 tile [128, 256, 64] grid [4, 2] comm 4 : (tensor<256x512xbf16>, tensor<512x512xbf16>) -> tensor<512x512xbf16> {
    cometgpu.signal ready count 2 scope rank
    cometgpu.signal shard_ready count 8 scope chunk
    cometgpu.put_signal shard chunks 4 signal shard_ready after [ready]
    cometgpu.wait shard_ready role compute scope tile
  }
  func.return %y : tensor<512x512xbf16>
}
// LOCAL: order local_first tiles [4, 6, 5, 7, 0, 2, 1, 3]
// NAT-NOT: order
// NAT: comm 4 tiles [0, 2, 4, 6, 1, 3, 5, 7]
// GIVEN: order given tiles [7, 6, 5, 4, 3, 2, 1, 0]
// BAD: error: comet-reschedule: given tiles must be a permutation of 0..7
