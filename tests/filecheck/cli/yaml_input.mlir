// A YAML workload is accepted wherever an .mlir file is; its errors are located in the YAML.
// RUN: comet-opt %examples/gemm_softmax.yaml | filecheck %s
// CHECK: comet.gemm
// CHECK: comet.softmax
// RUN: printf 'dims: {M: 0}\n' > %t.bad.yaml && not comet-opt %t.bad.yaml 2>&1 | filecheck %s --check-prefix=BAD
// BAD: bad.yaml:1:{{[0-9]+}}: error:
// BAD-NOT: Traceback
// An unknown preset is located at the `arch:` value of the YAML, not in the generated IR.
// RUN: sed 's/^arch: edge/arch: mars/' %examples/gemm_softmax.yaml > %t.arch.yaml && not comet-opt %t.arch.yaml 2>&1 | filecheck %s --check-prefix=ARCH
// ARCH: arch.yaml:5:7: error: arch: unknown architecture preset 'mars' (presets: cloud, edge, h100, h200; or give a .yaml file)
