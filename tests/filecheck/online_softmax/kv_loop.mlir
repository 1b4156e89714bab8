// RUN: comet-opt %s -p 'comet-decompose{flash=true},comet-tile{kv_loop=true},comet-fuse{level=full},comet-distribute{dims=B,M}' | filecheck %s --check-prefix=BEFORE
// RUN: comet-opt %s -p 'comet-decompose{flash=true},comet-tile{kv_loop=true},comet-fuse{level=full},comet-distribute{dims=B,M},comet-online-softmax{chunks=4}' | filecheck %s
// RUN: comet-opt %s -p 'flash-attention' | filecheck %s --check-prefix=AUTO
// RUN: not comet-opt %s -p comet-online-softmax 2>&1 | filecheck %s --check-prefix=FORM
// RUN: not comet-opt %s -p 'comet-decompose,comet-tile{kv_loop=true},comet-fuse{level=full},comet-online-softmax{chunks=2}' 2>&1 | filecheck %s --check-prefix=NOTFLASH
// RUN: not comet-opt %s -p 'comet-decompose{flash=true},comet-tile{kv_loop=true},comet-online-softmax{chunks=2}' 2>&1 | filecheck %s --check-prefix=UNFUSED
// RUN: not comet-opt %s -p 'comet-decompose{flash=true},comet-tile{kv_loop=true},comet-fuse{level=full},comet-online-softmax{chunks=3}' 2>&1 | filecheck %s --check-prefix=NODIV

// 8 heads, 1024 keys of 64 (f16) on edge: the scores of a row block and K, V at full
// sequence length overflow the 32 KiB weight buffer, so flash-attention needs the KV loop.
builtin.module attributes {comet.arch = "edge"} {
  func.func @attention(%q: tensor<1x8x1024x64xf16>, %k: tensor<1x8x1024x64xf16>, %v: tensor<1x8x1024x64xf16>) -> tensor<1x8x1024x64xf16> {
    %o = comet.attention %q, %k, %v : (tensor<1x8x1024x64xf16>, tensor<1x8x1024x64xf16>, tensor<1x8x1024x64xf16>) -> tensor<1x8x1024x64xf16>
    func.return %o : tensor<1x8x1024x64xf16>
  }
}

// Before: one fused row-block tile; the key-sequence dimension N is whole inside it.
// BEFORE:     comet.opspec GEMM2 ins [L, D] out O
// BEFORE:     comet.opspec DIV ins [O, P] out Q
// BEFORE:     comet.tile temporal tensors [A, C, D, Q] at [GB, GB, GB, GB] child [IB, WB, WB, OB]
// BEFORE-NEXT: comet.binding sequential {
// BEFORE-NOT: comet.compute exp for CORR

// After: a GB-level KV loop (N = 4 chunks) around the ops that index N, the running-max
// correction after the row max, rescales of the two running sums, the division after the loop.
// CHECK:      comet.opspec ROWMAX ins [G] out I
// CHECK-NEXT: comet.opspec CORR ins [I] out R
// CHECK:      comet.opspec RESCALE_O ins [O, R] out O
// CHECK-NEXT: comet.opspec GEMM2 ins [L, D] out O
// CHECK-NEXT: comet.opspec RESCALE_P ins [P, R] out P
// CHECK-NEXT: comet.opspec ROWSUM ins [L] out P
// CHECK:      comet.tile temporal tensors [A, C, D, Q] at [GB, GB, GB, GB] child [IB, WB, WB, OB]
// CHECK-NEXT: comet.binding sequential {
// CHECK-NEXT: comet.tile temporal tensors [A, C, D] at [GB, GB, GB] child [IB, WB, WB] precision [16, 16, 16] factors [{B = [1, 1, 1], M = [1, 1, 1], K = [1, 1, 1], N = [4, 4, 4], E = [1, 1, 1]}]
// CHECK-NEXT: comet.binding sequential {
// CHECK:      comet.compute GEMM for GEMM on GEMMEngine
// CHECK:      comet.compute rowmax for ROWMAX on SE
// CHECK:      comet.compute exp for CORR on SE tensors [I, R]
// CHECK:      comet.compute add for SUB on SE
// CHECK:      comet.compute exp for EXP on SE
// CHECK:      comet.compute mult for RESCALE_O on SE tensors [R, O]
// CHECK:      comet.compute GEMM for GEMM2 on GEMMEngine
// CHECK:      comet.compute mult for RESCALE_P on SE tensors [R, P]
// CHECK:      comet.compute rowsum for ROWSUM on SE
// CHECK:      comet.compute div for DIV on SE tensors [O, P, Q]

// The named pipeline picks the smallest chunk count that fits (then verifies capacity).
// AUTO:      comet.tile temporal tensors [A, C, D] at [GB, GB, GB] child [IB, WB, WB] precision [16, 16, 16] factors [{B = [1, 1, 1], M = [1, 1, 1], K = [1, 1, 1], N = [{{[0-9]+}}, {{[0-9]+}}, {{[0-9]+}}], E = [1, 1, 1]}]
// AUTO:      comet.compute exp for CORR

// FORM: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: {{(func.func|comet.mapping): }}comet-online-softmax: expects the mapped form (one comet.mapping), found a workload func.func; run comet-tile first
// NOTFLASH: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-online-softmax: the row sum O is used inside the N loop
// UNFUSED: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-online-softmax: the row max is not inside a fused tile; run comet-fuse{level=full} first
// NODIV: {{.*}}.mlir:{{[0-9]+}}:{{[0-9]+}}: error: comet.mapping: comet-online-softmax: N loop of GEMM is not divisible into 3 chunks
