// RUN: comet-opt %s -p fused-gemm-distsm | filecheck %s --check-prefix=DIST
// RUN: comet-opt %s -p 'comet-decompose,comet-tile,comet-fuse,comet-distribute,comet-insert-collectives{strategy=dist level=OB}' | filecheck %s --check-prefix=DISTOB
// RUN: comet-opt %s -p fused-sm | filecheck %s --check-prefix=SINGLE
// RUN: comet-opt %s -p unfused | filecheck %s --check-prefix=UNFUSED
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile,comet-insert-collectives{strategy=ring}' 2>&1 | filecheck %s --check-prefix=BAD
// RUN: not comet-opt %s -p 'comet-tile,comet-fuse,comet-distribute,comet-insert-collectives' 2>&1 | filecheck %s --check-prefix=MONO

builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<256x128xi8>, %b: tensor<128x256xi8>) -> tensor<256x256xf16> {
    %c = comet.gemm %a, %b : (tensor<256x128xi8>, tensor<128x256xi8>) -> tensor<256x256xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x256xf16>) -> tensor<256x256xf16>
    func.return %d : tensor<256x256xf16>
  }
}

// distSM: row max and row sum are combined across the units holding parts of a row.
// DIST:      comet.compute rowmax for ROWMAX
// DIST-NEXT: }
// DIST-NEXT: }
// DIST-NEXT: comet.colop allreduce tensor D out D dim N reduce max src [GB] dest [GB] at GB child GB
// DIST-NOT:  gather
// DIST:      comet.compute rowsum for ROWSUM
// DIST:      comet.colop allreduce tensor G out G dim N reduce add src [GB] dest [GB] at GB child GB

// DISTOB: comet.colop allreduce tensor D out D dim N reduce max src [OB] dest [OB] at OB

// SM: one gather of the GEMM output into the output buffer, the softmax on one unit.
// SINGLE:      comet.compute GEMM
// SINGLE:      comet.colop gather tensor C out C dim N src [GB, OB] dest [OB] at OB child OB
// SINGLE-NEXT: comet.tile
// SINGLE-NOT:  allreduce

// UNFUSED-NOT: comet.colop

// BAD: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping): }}comet-insert-collectives: strategy 'ring' is not one of dist, single
// MONO: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-insert-collectives: SOFTMAX is a monolithic Softmax spread over several units; run comet-decompose first

// rows=true (the paper's SM with the vector work spread): the gather, then each vector op's
// core spatial tile spreads rows M over the 2x2 cores, N whole per core.
// RUN: comet-opt %s -p fused-sm-rows | filecheck %s --check-prefix=ROWS
// ROWS:      comet.colop gather tensor C out C dim N src [GB, OB] dest [OB] at OB child OB
// ROWS-NEXT: comet.tile spatial tensors [C, D] at [GB, GB] child [OB, OB] precision [16, 16] factors [{M = [2, 2], K = [1, 1], N = [1, 1]}, {M = [2, 2], K = [1, 1], N = [1, 1]}]
// ROWS-NEXT: comet.tile temporal tensors [C, D] at [OB, OB] child [SE, SE] precision [16, 16] factors [{M = [{{[0-9]+}}, {{[0-9]+}}], K = [1, 1], N = [32, 32]}]

// a level that is neither the global nor the output buffer
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile,comet-distribute,comet-insert-collectives{level=DRAM}' 2>&1 | filecheck %s --check-prefix=LEVEL
// LEVEL: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-insert-collectives: level 'DRAM' must be the global buffer (GB) or the output buffer (OB) of 'edge'
