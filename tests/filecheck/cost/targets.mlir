// The cost targets on the shipped hand-mapped example and on an imported reference case.
// RUN: comet-opt %examples/gemm_softmax_mapped.mlir --target=cost-report | filecheck %s --check-prefix=REPORT
// REPORT: cost report: gemm_softmax on example_run
// REPORT: temporal tile DRAM [A,B,D]{{ +}}2,274,694
// REPORT: gather C over N
// REPORT: GEMM                                    268,288
// REPORT: total cycles (stalls + compute, reference definition): 3,141,418
// RUN: comet-opt %examples/gemm_softmax_mapped.mlir --target=cost-json | filecheck %s --check-prefix=JSON
// JSON: "schema": 1
// JSON: "latency_cycles":
// JSON: "energy_pj":
// JSON: "nodes": [
// RUN: comet-opt %examples/gemm_softmax_mapped.mlir --target=trace | filecheck %s --check-prefix=TRACE
// TRACE: {"traceEvents": [{"name": "temporal tile DRAM [A,B,D]", "cat": "tile", "ph": "X"
// RUN: comet-opt --import-reference %reference/example_run --target=cost-report | filecheck %s --check-prefix=IMPORT
// IMPORT: GEMM                                    268,288
// RUN: comet-opt --import-reference %reference/example_run | comet-opt - --print-op-generic | filecheck %s --check-prefix=IR
// IR: "comet.colop"() <{type = #comet<col gather>
// RUN: not comet-opt %examples/gemm_softmax.mlir --target=cost-report 2>&1 | filecheck %s --check-prefix=WORKLOAD
// WORKLOAD: gemm_softmax.mlir: error: expected one comet.mapping (mapped form) in the module, found 0
// RUN: comet-opt %examples/gemm_softmax.mlir -p fused-gemm-distsm --target='cost-report{arch=cloud}' 2>&1 | filecheck %s --check-prefix=ARCH
// ARCH: cost report: gemm_softmax on cloud
// RUN: not comet-opt %examples/gemm_softmax.mlir -p fused-gemm-distsm --target='cost-report{arch=nope}' 2>&1 | filecheck %s --check-prefix=NOARCH
// NOARCH: error: unknown architecture 'nope'
// A mapping that does not fit a buffer is an error, never a price.
// RUN: sed 's/      depth: 4096/      depth: 8/' %examples/arch/example_run.yaml > %t.small.yaml
// RUN: not comet-opt %examples/gemm_softmax_mapped.mlir --arch %t.small.yaml --target=cost-report 2>&1 | filecheck %s --check-prefix=FIT
// FIT: gemm_softmax_mapped.mlir: error: comet-verify-capacity: tensor {{[A-Z]}} (operation GEMM) needs {{[0-9]+}} bytes in {{[IW]}}Buffer (double buffered)
