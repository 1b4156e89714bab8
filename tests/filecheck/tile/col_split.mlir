// RUN: not comet-opt %s -p comet-decompose,comet-tile 2>&1 | filecheck %s --check-prefix=WHOLE
// RUN: comet-opt %s -p 'comet-decompose,comet-tile{col_split=true}' | filecheck %s
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile{col_split=true},comet-fuse{level=full}' 2>&1 | filecheck %s --check-prefix=FULL

// 8 heads, 256 keys of 64 (f16) on edge: one query row block of 8 needs all 256 keys of K in
// WB (256 x 64 x 2 B = 32 KiB, 64 KiB double buffered > 32 KiB), so whole rows do not fit.
builtin.module attributes {comet.arch = "edge"} {
  func.func @attention(%q: tensor<1x8x256x64xf16>, %k: tensor<1x8x256x64xf16>, %v: tensor<1x8x256x64xf16>) -> tensor<1x8x256x64xf16> {
    %o = comet.attention %q, %k, %v : (tensor<1x8x256x64xf16>, tensor<1x8x256x64xf16>, tensor<1x8x256x64xf16>) -> tensor<1x8x256x64xf16>
    func.return %o : tensor<1x8x256x64xf16>
  }
}

// (reported for the smallest row block, 1 row, K split in two: V alone is 256 x 64 x 2 B, doubled 64 KiB)
// WHOLE: {{.*}}.mlir:8:3: error: func.func: comet-tile: no tiling fits the core buffers of 'edge': GEMM2 needs 65536 bytes of WB (32768 available)

// col_split: every op that indexes N loops over it at GB (N > 1 there), the row max included.
// CHECK:      comet.tile temporal tensors [A, C, F] at [GB, GB, GB] child [IB, WB, OB] precision [16, 16, 16] factors [{B = [1, 1, 1], M = [{{[0-9]+}}, {{[0-9]+}}, {{[0-9]+}}], K = [1, 1, 1], N = [{{[2-9]|[1-9][0-9]+}}, {{.*}}
// CHECK:      comet.tile temporal tensors [G, I] at [GB, GB] child [OB, OB] precision [16, 16] factors [{B = [1, 1], M = [{{[0-9]+}}, {{[0-9]+}}], K = [1, 1], N = [{{[2-9]|[1-9][0-9]+}}, {{.*}}
// CHECK:      comet.compute rowmax for ROWMAX

// FULL: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-fuse: cannot fully fuse: N is tiled at GB
