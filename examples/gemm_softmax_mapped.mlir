// GEMM (M=256, N=1024, K=4096) -> softmax on a 2x2 mesh, hand-mapped: the reference-COMET
// example (../shared/reference/example_run) with its constants substituted. The GEMM output C
// is gathered along N at the output-buffer level before the softmax runs on one cluster.
comet.mapping @gemm_softmax arch "arch/example_run.yaml" dims {M = 256, N = 1024, K = 4096} ins [A, B] outs [D] {
  comet.opspec GEMM ins [A, B] out C dims [M, N, K] proj {A = [[M], [K]], B = [[K], [N]], C = [[M], [N]]} rw [C]
  comet.opspec softmax ins [C] out D dims [M, N] proj {C = [[M], [N]], D = [[M], [N]]} rw [D]
  comet.tile temporal tensors [A, B, D] at [DRAM, DRAM, DRAM] child [GBuffer, GBuffer, GBuffer] precision [8, 8, 8] factors [{M = [4, 4, 4], N = [1, 1, 1], K = [1, 1, 1]}] order MKN rmw [false, false, false] wb [false, false, true] serves [GEMM, GEMM, softmax] {
    comet.tile spatial tensors [A, B, D] at [DRAM, DRAM, DRAM] child [GBuffer, GBuffer, GBuffer] precision [8, 8, 8] factors [{M = [1, 1, 1], N = [2, 2, 1], K = [1, 1, 1]}, {M = [1, 1, 1], N = [2, 2, 1], K = [1, 1, 1]}] order MKN rmw [false, false, false] wb [false, false, true] serves [GEMM, GEMM, softmax] {
      comet.tile temporal tensors [A, B, D] at [GBuffer, GBuffer, GBuffer] child [IBuffer, WBuffer, OBuffer] precision [8, 8, 8] factors [{M = [8, 8, 8], N = [1, 1, 1], K = [1, 1, 1]}] order MKN rmw [false, false, false] wb [false, false, false] serves [GEMM, GEMM, softmax] {
        comet.tile spatial tensors [A, B, D] at [GBuffer, GBuffer, GBuffer] child [IBuffer, WBuffer, OBuffer] precision [8, 8, 8] factors [{M = [1, 1, 1], N = [2, 2, 1], K = [1, 1, 1]}, {M = [1, 1, 1], N = [2, 2, 1], K = [1, 1, 1]}] order MKN rmw [false, false, false] wb [false, false, false] serves [GEMM, GEMM, softmax] {
          comet.binding sequential {
            comet.tile temporal tensors [A, B, C] at [IBuffer, WBuffer, OBuffer] child [macengine, macengine, macengine] precision [8, 8, 8] factors [{M = [2, 1, 2], N = [1, 1, 1], K = [4, 4, 4]}] order MKN rmw [false, false, false] wb [false, false, true] serves [GEMM, GEMM, GEMM] {
              comet.compute GEMM for GEMM on macengine tensors [A, B, C] primitive {M = 4, N = 64, K = 1024} steps {A = {M = 4, N = 64, K = 1024}, B = {M = 8, N = 64, K = 1024}, C = {M = 4, N = 64, K = 1024}} scale {A = 1, B = 1, C = 4} reduce_dims [K] reduce_factors [1024] rmw true specd true
            }
            comet.colop gather tensor C out C dim N src [GBuffer, OBuffer] dest [OBuffer] at OBuffer child OBuffer precision 8 tag colop1
            comet.tile temporal tensors [C, D] at [OBuffer, OBuffer] child [simdengine, simdengine] precision [16, 16] factors [{M = [8, 8], N = [128, 128], K = [1, 1]}] order MKN rmw [false, false] wb [false, true] serves [softmax, softmax] {
              comet.compute Softmax for softmax on simdengine tensors [C, D] primitive {M = 1, N = 8} steps {C = {M = 1, N = 8, K = 4096}, D = {M = 1, N = 8, K = 4096}}
            }
          }
        }
      }
    }
  }
}
