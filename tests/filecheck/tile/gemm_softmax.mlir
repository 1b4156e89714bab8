// RUN: comet-opt %s -p comet-decompose,comet-tile | filecheck %s
// RUN: comet-opt %s -p 'comet-decompose,comet-tile{level=DRAM factors=M8}' | filecheck %s --check-prefix=USER
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile{level=DRAM factors=M3}' 2>&1 | filecheck %s --check-prefix=NODIV
// RUN: not comet-opt %s -p 'comet-tile{level=L2}' 2>&1 | filecheck %s --check-prefix=LEVEL
// RUN: not comet-opt %s -p comet-decompose,comet-tile,comet-tile 2>&1 | filecheck %s --check-prefix=TWICE

builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<256x128xi8>, %b: tensor<128x256xi8>) -> tensor<256x256xf16> {
    %c = comet.gemm %a, %b : (tensor<256x128xi8>, tensor<128x256xi8>) -> tensor<256x256xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x256xf16>) -> tensor<256x256xf16>
    func.return %d : tensor<256x256xf16>
  }
}

// CHECK:      comet.mapping @gemm_softmax arch "edge" dims {M = 256, K = 128, N = 256} ins [A, B] outs [I]
// CHECK-NEXT: comet.opspec GEMM ins [A, B] out C dims [M, K, N] proj {A = {{\[\[}}M], [K]], B = {{\[\[}}K], [N]], C = {{\[\[}}M], [N]]} rw [C]
// CHECK-NEXT: comet.opspec ROWMAX ins [C] out D dims [M, K, N] proj {C = {{\[\[}}M], [N]], D = {{\[\[}}M]]} rw [D]
// CHECK:      comet.binding sequential {
// CHECK-NEXT: comet.tile temporal tensors [A, B, C] at [DRAM, DRAM, DRAM] child [GB, GB, GB]
// CHECK-NEXT: comet.tile temporal tensors [A, B, C] at [GB, GB, GB] child [IB, WB, OB]
// CHECK-NEXT: comet.tile temporal tensors [A, B, C] at [IB, WB, OB] child [GEMMEngine, GEMMEngine, GEMMEngine]
// CHECK-NEXT: comet.compute GEMM for GEMM on GEMMEngine tensors [A, B, C] primitive {M = 8, K = 32, N = {{[0-9]+}}}
// CHECK:      comet.tile temporal tensors [C, D] at [DRAM, DRAM] child [GB, GB]
// CHECK:      comet.compute rowmax for ROWMAX on SE tensors [C, D]
// CHECK:      comet.compute add for SUB on SE
// CHECK:      comet.compute exp for EXP on SE
// CHECK:      comet.compute rowsum for ROWSUM on SE
// CHECK:      comet.compute div for DIV on SE
// CHECK-NOT:  func.func

// USER: comet.tile temporal tensors [A, B, C] at [DRAM, DRAM, DRAM] child [GB, GB, GB] precision [8, 8, 16] factors [{M = [8, 8, 8], K = [1, 1, 1], N = [1, 1, 1]}]

// NODIV: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping): }}comet-tile: factor M:3 at level DRAM does not divide M = 256 for GEMM
// LEVEL: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping): }}comet-tile: level 'L2' is not a level of architecture 'edge'
// TWICE: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping): }}comet-tile: the module is already in mapped form
