// RUN: not comet-opt %s -p 'comet-decompose{ops=gemm}' 2>&1 | filecheck %s
// CHECK: error: comet-decompose: unknown op kind(s) ['gemm'] in ops=
// CHECK-NOT: Traceback

builtin.module {
}
