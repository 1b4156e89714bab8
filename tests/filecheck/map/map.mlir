// comet-map picks a strategy for a workload and reports its top candidates on stderr.
// RUN: comet-opt %examples/gemm_softmax.mlir -p 'comet-map{budget=60 refine=false}' 2>%t.err | filecheck %s
// RUN: filecheck %s --check-prefix=ERR < %t.err
// CHECK: comet.mapping @gemm_softmax arch "edge"
// CHECK: comet.colop
// ERR: comet-map: {{[0-9]+}} candidates priced; best latency
// RUN: not comet-opt %examples/gemm_softmax.mlir -p 'comet-map{objective=speed}' 2>&1 | filecheck %s --check-prefix=OBJ
// OBJ: error: comet-map: objective must be latency, energy or edp, got 'speed'
// RUN: comet-opt --import-reference %reference/iterative_mapper --reference-arch %reference/iterative_mapper/arch.yaml --reference-const %reference/iterative_mapper/edge_M256N256K128_const.yaml -p 'comet-map{budget=2}' 2>&1 >/dev/null | filecheck %s --check-prefix=REMAP
// REMAP: comet-map: {{[0-9]+}} candidates priced
// REMAP: not proven optimal
// A tiny mapped program: its tiling space is searched exhaustively and said so.
// RUN: comet-opt %S/../../data/map/tiny_exp.mlir -p 'comet-map{budget=30}' 2>&1 >/dev/null | filecheck %s --check-prefix=EXH
// EXH: the space was searched exhaustively; the result is optimal under the cost model
