comet.mapping @m arch "edge" dims {M = 8} ins [A] outs [A] {
  comet.opspec ew ins [A] out A dims [M] proj {A = [[M]]}
  comet.colop allgather tensor A out A dim M src [GB] dest [GB] at GB precision 16
}
