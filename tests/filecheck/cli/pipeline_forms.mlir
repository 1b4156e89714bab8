// The MLIR and xDSL pipeline forms run the same passes; IR dumps go to stderr.
// RUN: comet-opt %s --pass-pipeline='builtin.module(comet-decompose)' > %t.mlir.out
// RUN: comet-opt %s -p comet-decompose > %t.xdsl.out
// RUN: diff %t.mlir.out %t.xdsl.out
// RUN: filecheck %s < %t.mlir.out
// RUN: comet-opt %s -p comet-decompose --mlir-print-ir-after-all 2>&1 >/dev/null | filecheck %s --check-prefix=DUMP
// RUN: not comet-opt %s -p 'comet-decompose{nope=1}' 2>&1 | filecheck %s --check-prefix=OPT
// RUN: comet-opt --list-passes | filecheck %s --check-prefix=LIST
// RUN: not comet-opt %s --pass-pipeline='builtin.module(comet-decompose)' -p comet-decompose 2>&1 | filecheck %s --check-prefix=BOTH

// CHECK-NOT: comet.softmax
// CHECK: comet.reduce max
// DUMP: // -----// IR Dump After comet-decompose //----- //
// DUMP: comet.reduce max
// OPT: <pass-pipeline>: error: bad options for pass 'comet-decompose'
// LIST: comet-decompose
// BOTH: error: give either --pass-pipeline or -p, not both
func.func @f(%a: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %0 = comet.softmax %a axis 1 : (tensor<8x16xf32>) -> tensor<8x16xf32>
  func.return %0 : tensor<8x16xf32>
}
