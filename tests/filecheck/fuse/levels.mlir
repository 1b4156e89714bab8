// RUN: comet-opt %s -p 'comet-decompose,comet-tile,comet-fuse{level=full}' | filecheck %s --check-prefix=FULL
// RUN: comet-opt %s -p 'comet-decompose,comet-tile,comet-fuse{level=partial}' | filecheck %s --check-prefix=PARTIAL
// RUN: comet-opt %s -p 'comet-decompose,comet-tile,comet-fuse{level=none}' | filecheck %s --check-prefix=NONE
// RUN: not comet-opt %s -p comet-fuse 2>&1 | filecheck %s --check-prefix=FORM
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile,comet-fuse{level=most}' 2>&1 | filecheck %s --check-prefix=OPT

builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<256x128xi8>, %b: tensor<128x256xi8>) -> tensor<256x256xf16> {
    %c = comet.gemm %a, %b : (tensor<256x128xi8>, tensor<128x256xi8>) -> tensor<256x256xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x256xf16>) -> tensor<256x256xf16>
    func.return %d : tensor<256x256xf16>
  }
}

// Full: one DRAM tile over A, B and the output; one GB tile; C stays in OB.
// FULL:      comet.tile temporal tensors [A, B, I] at [DRAM, DRAM, DRAM] child [GB, GB, GB]
// FULL-NEXT: comet.tile temporal tensors [A, B, I] at [GB, GB, GB] child [IB, WB, OB]
// FULL-NEXT: comet.binding sequential {
// FULL-NEXT: comet.tile temporal tensors [A, B, C] at [IB, WB, OB]
// FULL:      comet.tile temporal tensors [C, D] at [OB, OB] child [SE, SE]
// FULL-NOT:  at [DRAM, DRAM] child [GB, GB]

// Partial: shared DRAM tile, a GB tile per op (C goes back to GB between GEMM and ROWMAX).
// PARTIAL:      comet.tile temporal tensors [A, B, I] at [DRAM, DRAM, DRAM]
// PARTIAL-NEXT: comet.binding sequential {
// PARTIAL-NEXT: comet.tile temporal tensors [A, B, C] at [GB, GB, GB] child [IB, WB, OB]
// PARTIAL:      comet.tile temporal tensors [C, D] at [GB, GB] child [OB, OB]

// NONE: comet.binding sequential {
// NONE-NEXT: comet.tile temporal tensors [A, B, C] at [DRAM, DRAM, DRAM]
// NONE: comet.tile temporal tensors [C, D] at [DRAM, DRAM]

// FORM: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping): }}comet-fuse: expects the mapped form (one comet.mapping), found a workload func.func; run comet-tile first
// OPT: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping): }}comet-fuse: level 'most' is not one of none, partial, full
