builtin.module {
  comet.mapping @two arch "edge" dims {M = 16, N = 8} ins [A, B] outs [D, E] {
    comet.opspec EXP ins [A] out D dims [M, N] proj {A = [[M], [N]], D = [[M], [N]]} rw [D]
    comet.opspec EXPB ins [B] out E dims [M, N] proj {B = [[M], [N]], E = [[M], [N]]} rw [E]
    comet.binding sequential {
      comet.tile temporal tensors [A, D] at [DRAM, DRAM] child [GB, GB] precision [16, 16] factors [{M = [2, 2], N = [1, 1]}] order NM rmw [false, false] wb [false, true] serves [EXP, EXP] {
        comet.tile temporal tensors [A, D] at [GB, GB] child [OB, OB] precision [16, 16] factors [{M = [2, 2], N = [2, 2]}] order NM rmw [false, false] wb [false, true] serves [EXP, EXP] {
          comet.tile temporal tensors [A, D] at [OB, OB] child [SE, SE] precision [16, 16] factors [{M = [2, 2], N = [2, 2]}] order NM rmw [false, false] wb [false, true] serves [EXP, EXP] {
            comet.compute exp for EXP on SE tensors [A, D] primitive {M = 2, N = 2} steps {A = {M = 2, N = 2}, D = {M = 2, N = 2}}
          }
        }
      }
      comet.tile temporal tensors [B, E] at [DRAM, DRAM] child [GB, GB] precision [16, 16] factors [{M = [8, 8], N = [2, 2]}] order MN rmw [false, false] wb [false, true] serves [EXPB, EXPB] {
        comet.tile temporal tensors [B, E] at [GB, GB] child [OB, OB] precision [16, 16] factors [{M = [1, 1], N = [2, 2]}] order NM rmw [false, false] wb [false, true] serves [EXPB, EXPB] {
          comet.tile temporal tensors [B, E] at [OB, OB] child [SE, SE] precision [16, 16] factors [{M = [1, 1], N = [1, 1]}] order NM rmw [false, false] wb [false, true] serves [EXPB, EXPB] {
            comet.compute exp for EXPB on SE tensors [B, E] primitive {M = 2, N = 2} steps {B = {M = 2, N = 2}, E = {M = 2, N = 2}}
          }
        }
      }
    }
  }
}
