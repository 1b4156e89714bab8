// edge: GB = 2048 x 1024 = 2097152 bytes per cluster. With N = 1024 spread over the 2x2
// clusters each GB holds the int8 weight slice B = 4096 x 256 = 1 MiB, doubled 2 MiB, plus A
// (with the DRAM K split that comet-tile would choose forbidden: K1 at DRAM).
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile{level=DRAM factors=K1},comet-fuse{level=full},comet-distribute,comet-insert-collectives,comet-verify-capacity' 2>&1 | filecheck %s
// RUN: comet-opt %s -p fused-gemm-distsm | filecheck %s --check-prefix=OK
// CHECK: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.tile: comet-verify-capacity: tensor B (operation GEMM) needs 2097152 bytes in GB (double buffered)
// CHECK-SAME: 2097152 available
// CHECK-NOT: Traceback
// A small GEMM fits.
// RUN: comet-opt %S/../tile/gemm_softmax.mlir -p fused-gemm-distsm | filecheck %s --check-prefix=OK
// OK: comet.mapping
// RUN: not comet-opt %s -p comet-verify-capacity 2>&1 | filecheck %s --check-prefix=FORM
// FORM: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping): }}comet-verify-capacity: expects the mapped form

builtin.module attributes {comet.arch = "edge"} {
  func.func @gemm_softmax(%a: tensor<256x4096xi8>, %b: tensor<4096x1024xi8>) -> tensor<256x1024xf16> {
    %c = comet.gemm %a, %b : (tensor<256x4096xi8>, tensor<4096x1024xi8>) -> tensor<256x1024xf16>
    %d = comet.softmax %c axis 1 : (tensor<256x1024xf16>) -> tensor<256x1024xf16>
    func.return %d : tensor<256x1024xf16>
  }
}
