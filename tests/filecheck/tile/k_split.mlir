// RUN: comet-opt %s -p comet-decompose,comet-tile | filecheck %s
// RUN: comet-opt %s -p 'comet-decompose,comet-tile,comet-fuse{level=full}' | filecheck %s --check-prefix=FUSED
// RUN: comet-opt %s -p fused-gemm-distsm | filecheck %s --check-prefix=PIPE

// edge: GB = 2 MiB per cluster. With N = 1024 spread over 4 clusters, B's slice at full K is
// 4096 x 256 i8 = 1 MiB, 2 MiB double buffered: it cannot share GB with A, so comet-tile
// splits K at DRAM (K = 2 at DRAM: 2 x 512 KiB chunks of B, double buffered 1 MiB).
builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<256x4096xi8>, %b: tensor<4096x1024xi8>) -> tensor<256x1024xf16> {
    %c = comet.gemm %a, %b : (tensor<256x4096xi8>, tensor<4096x1024xi8>) -> tensor<256x1024xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x1024xf16>) -> tensor<256x1024xf16>
    func.return %d : tensor<256x1024xf16>
  }
}

// CHECK:      comet.tile temporal tensors [A, B, C] at [DRAM, DRAM, DRAM] child [GB, GB, GB] precision [8, 8, 16] factors [{M = [{{[0-9]+}}, {{[0-9]+}}, {{[0-9]+}}], K = [2, 2, 2], N = [1, 1, 1]}]
// the vector ops do not index K: no K loop
// CHECK:      comet.tile temporal tensors [C, D] at [DRAM, DRAM] child [GB, GB] precision [16, 16] factors [{M = [{{[0-9]+}}, {{[0-9]+}}], K = [1, 1], N = [1, 1]}]

// Fused: the shared DRAM tile has no K loop; the GEMM's own DRAM tile (K = 2) sits inside it,
// and the GEMM output goes through GB (full fusion degrades to partial with a K split).
// FUSED:      comet.tile temporal tensors [A, B, I] at [DRAM, DRAM, DRAM] child [GB, GB, GB] precision [8, 8, 16] factors [{M = [{{[0-9]+}}, {{[0-9]+}}, {{[0-9]+}}], K = [1, 1, 1], N = [1, 1, 1]}]
// FUSED-NEXT: comet.binding sequential {
// FUSED-NEXT: comet.tile temporal tensors [A, B, C] at [DRAM, DRAM, DRAM] child [GB, GB, GB] precision [8, 8, 16] factors [{M = [1, 1, 1], K = [2, 2, 2], N = [1, 1, 1]}]
// FUSED-NEXT: comet.tile temporal tensors [A, B, C] at [GB, GB, GB] child [IB, WB, OB]

// The whole pipeline fits (comet-verify-capacity passes); one cluster spread, at the outer DRAM tile.
// PIPE:      comet.tile temporal tensors [A, B, I] at [DRAM, DRAM, DRAM]
// PIPE-NEXT: comet.tile spatial tensors [A, B, I] at [DRAM, DRAM, DRAM]
// PIPE-NEXT: comet.binding sequential {
// PIPE-NEXT: comet.tile temporal tensors [A, B, C] at [DRAM, DRAM, DRAM] child [GB, GB, GB] precision [8, 8, 16] factors [{M = [1, 1, 1], K = [2, 2, 2], N = [1, 1, 1]}]
// PIPE-NEXT: comet.tile temporal tensors [A, B, C] at [GB, GB, GB]
// PIPE:      comet.colop allreduce tensor D
// PIPE:      comet.colop allreduce tensor G
