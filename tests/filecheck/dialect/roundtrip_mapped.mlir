// Every mapped-form op and every enum value, custom and generic form, round-trips.
// RUN: comet-opt %s > %t.1.mlir && comet-opt %t.1.mlir > %t.2.mlir && diff %t.1.mlir %t.2.mlir
// RUN: comet-opt %s --print-op-generic | comet-opt - > %t.3.mlir && diff %t.1.mlir %t.3.mlir
// RUN: comet-opt %s | filecheck %s
// RUN: comet-opt %s --print-op-generic | filecheck %s --check-prefix=GEN

// CHECK: comet.mapping @m arch "edge" dims {M = 8, N = 16} ins [A] outs [D] {
// GEN: "comet.mapping"() <{sym_name = "m", arch = "edge", dims = {M = 8 : i64, N = 16 : i64}, ins = ["A"], outs = ["D"]}>
comet.mapping @m arch "edge" dims {M = 8, N = 16} ins [A] outs [D] {
  // CHECK: comet.opspec ew ins [A] out D dims [M, N] proj {A = {{\[\[}}M], [N{{\]\]}}, D = {{\[\[}}M], [N{{\]\]}}} rw [D]
  comet.opspec ew ins [A] out D dims [M, N] proj {A = [[M], [N]], D = [[M], [N]]} rw [D]
  // CHECK: comet.tile spatial tensors [A, D] at [GB, GB] child [OB, OB] precision [16, 16] factors [{M = [1, 1], N = [2, 2]}, {M = [1, 1], N = [2, 2]}] order NM rmw [false, false] wb [false, true] serves [ew, ew] {
  // GEN: "comet.tile"() <{kind = #comet<tile_kind spatial>, {{.*}} order = #comet.order<NM>
  comet.tile spatial tensors [A, D] at [GB, GB] child [OB, OB] precision [16, 16] factors [{M = [1, 1], N = [2, 2]}, {M = [1, 1], N = [2, 2]}] order NM rmw [false, false] wb [false, true] serves [ew, ew] {
    // CHECK: comet.binding pipeline {
    // GEN: "comet.binding"() <{kind = #comet<binding_kind pipeline>}>
    comet.binding pipeline {
      comet.binding sequential {
        comet.binding parallel {
          comet.binding sharing {
            // CHECK: comet.colop allreduce tensor A out A dim N reduce max src [GB] dest [GB] at GB child GB precision 16 tag c1
            // GEN: "comet.colop"() <{type = #comet<col allreduce>, {{.*}} reduce = #comet<reduce_op max>
            comet.colop allreduce tensor A out A dim N reduce max src [GB] dest [GB] at GB child GB precision 16 tag c1
            comet.colop allgather tensor A out A dim N src [GB] dest [GB] at GB child GB precision 16
            comet.colop reducescatter tensor A out A dim N reduce add src [GB] dest [GB] at GB child GB precision 16
            comet.colop broadcast tensor A out A dim N src [GB] dest [OB] at GB child OB precision 16
            // CHECK: comet.colop gather tensor A out A dim N src [GB, OB] dest [OB] at OB child OB precision 8 wb true
            comet.colop gather tensor A out A dim N src [GB, OB] dest [OB] at OB child OB precision 8 wb true
            comet.colop scatter tensor A out A dim N src [GB] dest [OB] at GB child OB precision 16
            comet.colop reduce tensor A out A dim N reduce min src [OB] dest [GB] at GB child GB precision 16
            comet.colop alltoall tensor A out A dim M src [GB] dest [GB] at GB child GB precision 16
            comet.colop allreduce tensor A out A dim N reduce mul src [GB] dest [GB] at GB child GB precision 16
          }
        }
      }
      // CHECK: comet.tile temporal tensors [A, D] at [OB, OB] child [SE, SE] precision [16, 16] factors [{M = [4, 4], N = [4, 4]}] order MN rmw [false, true] wb [false, true] serves [ew, ew] {
      comet.tile temporal tensors [A, D] at [OB, OB] child [SE, SE] precision [16, 16] factors [{M = [4, 4], N = [4, 4]}] order MN rmw [false, true] wb [false, true] serves [ew, ew] {
        // CHECK: comet.compute exp for ew on SE tensors [A, D] primitive {M = 2, N = 1} steps {A = {M = 2, N = 1}, D = {M = 2, N = 1}} scale {A = 2} reduce_dims [N] reduce_factors [1] rmw true specd true
        // GEN: "comet.compute"() <{kind = "exp", op = "ew", on = "SE"
        comet.compute exp for ew on SE tensors [A, D] primitive {M = 2, N = 1} steps {A = {M = 2, N = 1}, D = {M = 2, N = 1}} scale {A = 2} reduce_dims [N] reduce_factors [1] rmw true specd true
      }
    }
  }
}

// The shipped hand-mapped reference example round-trips too.
// RUN: comet-opt %examples/gemm_softmax_mapped.mlir > %t.4.mlir && comet-opt %t.4.mlir --print-op-generic | comet-opt - | diff - %t.4.mlir
