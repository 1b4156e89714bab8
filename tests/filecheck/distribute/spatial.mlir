// RUN: comet-opt %s -p 'comet-decompose,comet-tile,comet-fuse,comet-distribute' | filecheck %s
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile,comet-distribute{dims=Q}' 2>&1 | filecheck %s --check-prefix=DIM
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile,comet-distribute,comet-distribute' 2>&1 | filecheck %s --check-prefix=TWICE

builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<256x128xi8>, %b: tensor<128x256xi8>) -> tensor<256x256xf16> {
    %c = comet.gemm %a, %b : (tensor<256x128xi8>, tensor<128x256xi8>) -> tensor<256x256xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x256xf16>) -> tensor<256x256xf16>
    func.return %d : tensor<256x256xf16>
  }
}

// edge: 2x2 clusters (spatial at DRAM, X then Y), 2x2 cores per cluster (spatial at GB).
// CHECK:      comet.tile temporal tensors [A, B, I] at [DRAM, DRAM, DRAM]
// CHECK-NEXT: comet.tile spatial tensors [A, B, I] at [DRAM, DRAM, DRAM] child [GB, GB, GB] precision [8, 8, 16] factors [{M = [1, 1, 1], K = [1, 1, 1], N = [2, 2, 2]}, {M = [1, 1, 1], K = [1, 1, 1], N = [2, 2, 2]}]
// CHECK:      comet.tile spatial tensors [A, B, C] at [GB, GB, GB] child [IB, WB, OB] precision [8, 8, 16] factors [{M = [1, 1, 1], K = [1, 1, 1], N = [2, 2, 2]}, {M = [1, 1, 1], K = [1, 1, 1], N = [2, 2, 2]}]
// CHECK-NEXT: comet.tile temporal tensors [A, B, C] at [IB, WB, OB]

// DIM: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-distribute: unknown dimension 'Q'
// TWICE: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-distribute: the mapping is already distributed

// Bad input: before tiling (wrong form), an unknown mesh, a mesh that does not divide the loop.
// RUN: not comet-opt %s -p comet-distribute 2>&1 | filecheck %s --check-prefix=FORM
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile,comet-distribute{mesh=ring}' 2>&1 | filecheck %s --check-prefix=MESH
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile{level=DRAM factors=N32},comet-distribute' 2>&1 | filecheck %s --check-prefix=NODIV
// FORM: {{.*}}.mlir:6:3: error: func.func: comet-distribute: expects the mapped form (one comet.mapping), found a workload func.func; run comet-tile first
// MESH: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-distribute: mesh 'ring' is not one of all, clusters, cores
// NODIV: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-distribute: GEMM cannot be spread over 4 spatial units along N

// idle=true: a loop that runs out leaves units idle instead of failing (the spread divides the mesh).
// RUN: comet-opt %s -p 'comet-decompose,comet-tile{level=DRAM factors=N32},comet-distribute{idle=true}' | filecheck %s --check-prefix=IDLE
// IDLE:      comet.tile spatial tensors [A, B, C] at [DRAM, DRAM, DRAM] child [GB, GB, GB] precision [8, 8, 16] factors [{M = [1, 1, 1], K = [1, 1, 1], N = [2, 2, 2]}, {M = [1, 1, 1], K = [1, 1, 1], N = [2, 2, 2]}]
// IDLE:      comet.tile spatial tensors [A, B, C] at [GB, GB, GB] child [IB, WB, OB] precision [8, 8, 16] factors [{M = [1, 1, 1], K = [1, 1, 1], N = [1, 1, 1]}, {M = [1, 1, 1], K = [1, 1, 1], N = [1, 1, 1]}]
