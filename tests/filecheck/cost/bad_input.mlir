// Bad input to the cost model: one located error, non-zero exit, no traceback.
// An architecture lacking a level (unit or memory) the mapping needs:
// RUN: not comet-opt %examples/gemm_softmax_mapped.mlir --arch edge --target=cost-report 2>&1 | filecheck %s --check-prefix=UNIT
// UNIT: gemm_softmax_mapped.mlir: error: architecture 'edge' has no level 'GBuffer'
// UNIT-NOT: Traceback
// A collective whose source and destination levels are not one connected memory:
// RUN: rm -rf %t.dir && cp -r %reference/iterative_mapper %t.dir
// RUN: sed -i '/tag: *colop1/,/child:/ s/child: *GB/child:        OB/' %t.dir/mapping.yaml
// RUN: not comet-opt --import-reference %t.dir --reference-arch %t.dir/arch.yaml --reference-const %t.dir/edge_M256N256K128_const.yaml --target=cost-report 2>&1 | filecheck %s --check-prefix=COLOP
// COLOP: error: collective allreduce on 'D': source and destination levels ('GB' -> 'OB') must be the same memory
// COLOP-NOT: Traceback
