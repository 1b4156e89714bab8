// RUN: not comet-opt %s -p fused-gemm-distsm 2>&1 | filecheck %s
// RUN: sed 's/"h100"/"nosuch"/' %s > %t.mlir
// RUN: not comet-opt %t.mlir -p comet-decompose,comet-tile 2>&1 | filecheck %s --check-prefix=UNKNOWN

// The mapping passes need the accelerator hierarchy (DRAM -> GB -> IB/WB/OB); a GPU preset
// has none, an unknown name is not an architecture.
builtin.module attributes {comet.arch = "h100"} {
  func.func @gemm_softmax(%a: tensor<256x128xi8>, %b: tensor<128x256xi8>) -> tensor<256x256xf16> {
    %c = comet.gemm %a, %b : (tensor<256x128xi8>, tensor<128x256xi8>) -> tensor<256x256xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x256xf16>) -> tensor<256x256xf16>
    func.return %d : tensor<256x256xf16>
  }
}

// CHECK: {{.*}}.mlir:8:3: error: func.func: architecture 'h100' has no DRAM/GB/IB/WB/OB accelerator hierarchy that the mapping passes know
// UNKNOWN: {{.*}}.mlir:8:3: error: func.func: unknown architecture 'nosuch'
