// RUN: not comet-opt %s -p 'comet-decompose{ops=gemm}' 2>&1 | filecheck %s
// CHECK: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping|builtin.module): }}comet-decompose: unknown op kind(s) ['gemm'] in ops=
// CHECK-NOT: Traceback

builtin.module {
}
