// Measurement aid (benchmarks only, not part of the runtime library): CUTLASS's own sm90 GEMM
// kernels -- GemmUniversal with its static persistent tile scheduler -- built from the same
// collectives as tp_gemm.cu.in (bf16 in / fp32 accumulate, TMA-store epilogue without C): the
// cooperative schedule at our default configuration (128x256x64, 2x1 cluster) and two ping-pong
// configurations. Timed beside our kernel and cuBLAS in one process, they separate "the
// collectives" from "our kernel loop around them", and show what ping-pong would buy.
#include <cuda_runtime.h>
#include <cstdint>

#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/util/packed_stride.hpp"

namespace comet_ref {
using namespace cute;
using Element = cutlass::bfloat16_t;
using RasterOrderOptions = typename cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90Params::RasterOrderOptions;

// One CUTLASS GEMM configuration: tile, cluster, mainloop schedule and its epilogue schedule; stage
// count as CUTLASS's examples choose it (whatever fits beside the epilogue's SMEM).
template <class TileShape, class ClusterShape, class Schedule, class EpiSchedule>
struct Config {
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, cutlass::layout::RowMajor, 8, Element, cutlass::layout::RowMajor, 8,
      EpiSchedule, cutlass::epilogue::fusion::LinearCombination<Element, float, void>>::CollectiveOp;
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      Element, cutlass::layout::RowMajor, 8, Element, cutlass::layout::ColumnMajor, 8, float,
      TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      Schedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
};

// 0: cooperative 128x256x64, cluster 2x1 (the configuration of our default kernel)
using Coop = Config<Shape<_128, _256, _64>, Shape<_2, _1, _1>, cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                    cutlass::epilogue::TmaWarpSpecializedCooperative>;
// 1, 2: ping-pong (each consumer warp group owns a whole tile; one's epilogue overlaps the other's
// mainloop), 128x128x64 and 64x256x64, cluster 2x1
using Ping128 = Config<Shape<_128, _128, _64>, Shape<_2, _1, _1>, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                       cutlass::epilogue::TmaWarpSpecialized>;
using Ping64 = Config<Shape<_64, _256, _64>, Shape<_2, _1, _1>, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                      cutlass::epilogue::TmaWarpSpecialized>;

struct HandleBase {
  void* workspace = nullptr;
  virtual ~HandleBase() { if (workspace) cudaFree(workspace); }
  virtual int run(cudaStream_t) = 0;
};
template <class C>
struct Handle : HandleBase {
  typename C::Gemm gemm;
  int run(cudaStream_t s) override {
    cutlass::Status st = gemm.run(s);
    return st == cutlass::Status::kSuccess ? int(cudaGetLastError()) : 3000 + int(st);
  }
};

template <class C>
HandleBase* make(const void* a, const void* b, void* d, int M, int N, int K, int raster, int swizzle, int sms, int* rc) {
  using Gemm = typename C::Gemm;
  using StrideA = typename Gemm::GemmKernel::StrideA;
  using StrideB = typename Gemm::GemmKernel::StrideB;
  using StrideD = typename Gemm::GemmKernel::StrideD;
  cutlass::KernelHardwareInfo hw;
  cudaGetDevice(&hw.device_id);
  hw.sm_count = sms;
  typename Gemm::Arguments args{
      cutlass::gemm::GemmUniversalMode::kGemm,
      {M, N, K, 1},
      {static_cast<Element const*>(a), cutlass::make_cute_packed_stride(StrideA{}, make_shape(M, K, 1)),
       static_cast<Element const*>(b), cutlass::make_cute_packed_stride(StrideB{}, make_shape(N, K, 1))},
      {{}, nullptr, StrideD{}, static_cast<Element*>(d), cutlass::make_cute_packed_stride(StrideD{}, make_shape(M, N, 1))},
      hw};
  args.scheduler.max_swizzle_size = swizzle;
  args.scheduler.raster_order = raster == 1 ? RasterOrderOptions::AlongM
                                : raster == 2 ? RasterOrderOptions::AlongN : RasterOrderOptions::Heuristic;
  auto* h = new Handle<C>;
  cutlass::Status st = h->gemm.can_implement(args);
  if (st != cutlass::Status::kSuccess) { *rc = 1000 + int(st); delete h; return nullptr; }
  const size_t ws = Gemm::get_workspace_size(args);
  if (ws && cudaMalloc(&h->workspace, ws) != cudaSuccess) { *rc = 2; delete h; return nullptr; }
  st = h->gemm.initialize(args, h->workspace);
  if (st != cutlass::Status::kSuccess) { *rc = 2000 + int(st); delete h; return nullptr; }
  *rc = 0;
  return h;
}
}  // namespace comet_ref

extern "C" {

int comet_ref_stages(int cfg) {
  using namespace comet_ref;
  return cfg == 1 ? int(Ping128::CollectiveMainloop::DispatchPolicy::Stages)
       : cfg == 2 ? int(Ping64::CollectiveMainloop::DispatchPolicy::Stages)
                  : int(Coop::CollectiveMainloop::DispatchPolicy::Stages);
}

// Set up one GEMM D[M,N] = A[M,K] (row-major) x B (stored [N,K], K contiguous) with configuration
// `cfg` (0 Coop, 1 Ping128, 2 Ping64). raster: 0 CUTLASS's heuristic, 1 along M, 2 along N;
// swizzle: CUTLASS's max_swizzle_size. Outside graph capture (initialize sets the kernel's SMEM
// attribute). Returns a handle, or null (*rc says why).
void* comet_ref_make(int cfg, const void* a, const void* b, void* d, int M, int N, int K, int raster, int swizzle,
                     int sms, int* rc) {
  using namespace comet_ref;
  if (cfg == 1) return make<Ping128>(a, b, d, M, N, K, raster, swizzle, sms, rc);
  if (cfg == 2) return make<Ping64>(a, b, d, M, N, K, raster, swizzle, sms, rc);
  return make<Coop>(a, b, d, M, N, K, raster, swizzle, sms, rc);
}

int comet_ref_run(void* h, void* stream) {
  return static_cast<comet_ref::HandleBase*>(h)->run(static_cast<cudaStream_t>(stream));
}

void comet_ref_free(void* h) { delete static_cast<comet_ref::HandleBase*>(h); }

}  // extern "C"
