// comet-schedule annotates every binding child with {start, dur, unit} and the binding with
// its makespan; the annotated IR round-trips and is priced under the schedule.
// RUN: comet-opt --import-reference %reference/iterative_mapper --reference-arch %reference/iterative_mapper/arch.yaml --reference-const %reference/iterative_mapper/edge_M256N256K128_const.yaml -p comet-schedule 2>%t.err > %t.1.mlir
// RUN: filecheck %s < %t.1.mlir
// RUN: filecheck %s --check-prefix=ERR < %t.err
// RUN: comet-opt %t.1.mlir > %t.2.mlir && diff %t.1.mlir %t.2.mlir
// RUN: comet-opt %t.1.mlir --print-op-generic | comet-opt - | diff - %t.1.mlir
// RUN: comet-opt %t.1.mlir --target=cost-report | filecheck %s --check-prefix=COST
// CHECK: comet.binding sequential attributes {comet.schedule = {makespan = {{[0-9]+}} : i64, rule = {{[0-9]+}} : i64, optimal = true}}
// CHECK: comet.tile spatial {{.*}} attributes {comet.schedule = {start = 0 : i64, dur = {{[0-9]+}} : i64, unit = "GEMMEngine"}}
// CHECK: comet.colop allreduce {{.*}} attributes {comet.schedule = {start = {{[0-9]+}} : i64, dur = {{[0-9]+}} : i64, unit = "GB"}}
// ERR: comet-schedule: 3 binding(s) scheduled (latency)
// COST: sequential binding (scheduled)
// COST: total cycles (stalls + compute, reference definition):

// An integer for a float option is the number it names (xDSL's parser alone rejects `time_limit=2`).
// RUN: comet-opt %t.2.mlir -p 'comet-schedule{time_limit=2}' 2>&1 >/dev/null | filecheck %s --check-prefix=INTF
// INTF: comet-schedule: 3 binding(s) scheduled
// INTF-NOT: -0 cycles

// Same options, same schedule (two workers: interleaved search).
// RUN: comet-opt %t.2.mlir -p 'comet-schedule{workers=2 seed=5}' > %t.a.mlir 2>/dev/null
// RUN: comet-opt %t.2.mlir -p 'comet-schedule{workers=2 seed=5}' > %t.b.mlir 2>/dev/null
// RUN: diff %t.a.mlir %t.b.mlir

// A deadline below what the busiest unit needs: error naming that constraint, exit 1.
// RUN: not comet-opt %t.1.mlir -p 'comet-schedule{deadline=100}' 2>&1 | filecheck %s --check-prefix=DEAD
// DEAD: error: comet-schedule: sequential binding #0: infeasible: deadline 100 cycles is below the lower bound {{[0-9]+}} cycles set by {{.*}} (tightest constraint)

// Bad options and a workload-form input are clear errors.
// RUN: not comet-opt %t.1.mlir -p 'comet-schedule{objective=speed}' 2>&1 | filecheck %s --check-prefix=OBJ
// OBJ: error: comet-schedule: objective must be latency or energy, got 'speed'
// RUN: not comet-opt %examples/gemm_softmax.mlir -p comet-schedule 2>&1 | filecheck %s --check-prefix=WL
// WL: error: comet-schedule: expects the mapped form (one comet.mapping), found a workload func.func; run comet-tile first
