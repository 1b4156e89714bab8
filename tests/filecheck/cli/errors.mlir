// Bad input never gives a traceback: one located `error:` line, non-zero exit.
// RUN: not comet-opt %S/Inputs/bad_syntax.mlir 2>&1 | filecheck %s --check-prefix=SYNTAX
// SYNTAX: bad_syntax.mlir:2:30: error: Expected integer literal (an integer)
// SYNTAX-NOT: Traceback
// RUN: not comet-opt %S/Inputs/unknown_op.mlir 2>&1 | filecheck %s --check-prefix=UNKNOWN
// UNKNOWN: unknown_op.mlir:2:25: error: Operation comet.frobnicate is not registered
// RUN: not comet-opt %S/Inputs/bad_enum.mlir 2>&1 | filecheck %s --check-prefix=ENUM
// ENUM: bad_enum.mlir:3:15: error: Expected `allreduce`, `allgather`, `reducescatter`, `broadcast`, `gather`, `scatter`, `reduce`, or `alltoall`.
// RUN: not comet-opt %S/Inputs/missing_field.mlir 2>&1 | filecheck %s --check-prefix=FIELD
// FIELD: missing_field.mlir:3:15: error: 'comet.colop' expects 'child'
// RUN: not comet-opt %S/does_not_exist.mlir 2>&1 | filecheck %s --check-prefix=MISSING
// MISSING: does_not_exist.mlir: error: no such file
// RUN: not comet-opt %s -p comet-no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// PASS: <pass-pipeline>: error: unknown pass 'comet-no-such-pass'
// RUN: not comet-opt %s --pass-pipeline='builtin.module(comet-no-such-pass)' 2>&1 | filecheck %s --check-prefix=PASS
// RUN: not comet-opt %s --pass-pipeline='builtin.module(a{' 2>&1 | filecheck %s --check-prefix=MALFORMED
// MALFORMED: <pass-pipeline>: error: malformed pass pipeline
// RUN: not comet-opt %s --pass-pipeline='func.func(x)' 2>&1 | filecheck %s --check-prefix=NESTED
// NESTED: <pass-pipeline>: error: nested op pipelines
// RUN: not comet-opt %s --target=no-such-target 2>&1 | filecheck %s --check-prefix=TARGET
// TARGET: <target>: error: unknown target 'no-such-target'
// RUN: not comet-opt %s --no-such-flag 2>&1 | filecheck %s --check-prefix=FLAG
// FLAG: comet-opt: error: unrecognized arguments: --no-such-flag
// RUN: cp %S/Inputs/bad_syntax.mlir %t.in.mlir && not comet-opt %t.in.mlir -o %t.in.mlir 2>&1 | filecheck %s --check-prefix=SAME
// SAME: error: refusing to overwrite the input file with the output
// RUN: cmp %t.in.mlir %S/Inputs/bad_syntax.mlir
// RUN: not comet-opt %s -o %t.no-such-dir/x.mlir 2>&1 | filecheck %s --check-prefix=NODIR
// NODIR: x.mlir: error: cannot write the output: No such file or directory
// NODIR-NOT: Traceback
// A run that fails leaves an earlier output file as it was (the write goes through a rename).
// RUN: echo keep > %t.keep && not comet-opt %S/Inputs/bad_syntax.mlir -o %t.keep 2>/dev/null; filecheck %s --check-prefix=KEEP < %t.keep
// KEEP: keep
// RUN: not comet-opt %s --arch %t.no-such-arch.yaml 2>&1 | filecheck %s --check-prefix=ARCH
// ARCH: no-such-arch.yaml: error: No such file or directory
// RUN: not comet-opt %s --arch tpu9 2>&1 | filecheck %s --check-prefix=ARCHNAME
// ARCHNAME: error: unknown architecture 'tpu9': not a preset
// RUN: comet-opt %s -o %t.out.mlir && comet-opt %t.out.mlir | filecheck %s --check-prefix=OK
// OK: func.func @ok
// RUN: comet-opt --list-targets | filecheck %s --check-prefix=LIST
// LIST: mlir
// RUN: cat %s | comet-opt - | filecheck %s --check-prefix=OK
func.func @ok(%a: tensor<8x16xf16>) {
  func.return
}
