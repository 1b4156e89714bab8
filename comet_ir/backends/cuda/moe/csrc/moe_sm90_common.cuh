// Shared by the MoE kernel libraries (moe_kernels.cu, moe_layer1.cu): the bounded-wait flag
// primitives of the comm/compute hand-offs and the CUTLASS 3.x sm90 grouped-GEMM building blocks
// (element and layout types, the register-only epilogue base, the ptr-array mainloop). Each
// library is its own translation unit, so everything here is defined once per library.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cstdint>

#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/gemm/kernel/tile_scheduler.hpp"
#include "cutlass/util/packed_stride.hpp"
#include "cutlass/epilogue/thread/linear_combination.h"

using namespace cute;

// ------------------------------------------------------------------ flags with bounded waits
// A wait longer than timeout_ns sets *err to (at least) `code` and gives up: garbage in, an
// error raised by the host, never a hang. sys != 0: system scope (peers on other GPUs).
__device__ __forceinline__ long long globaltimer_ns() {
  long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ int ld_acquire(const int* p, int sys) {
  int v;
  if (sys) asm volatile("ld.acquire.sys.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  else asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void red_release_add(int* p, int v, int sys) {
  if (sys) asm volatile("red.release.sys.global.add.s32 [%0], %1;" :: "l"(p), "r"(v) : "memory");
  else asm volatile("red.release.gpu.global.add.s32 [%0], %1;" :: "l"(p), "r"(v) : "memory");
}
__device__ bool wait_at_least(const int* p, int need, int sys, long long timeout_ns, int* err, int code) {
  if (ld_acquire(p, sys) >= need) return true;
  long long t0 = globaltimer_ns();
  while (ld_acquire(p, sys) < need) {
    __nanosleep(64);
    if (globaltimer_ns() - t0 > timeout_ns) {
      if (err) atomicMax(err, code);
      return false;
    }
  }
  return true;
}

#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
// ------------------------------------------------------------------ grouped GEMM building blocks
using ProblemShape = cutlass::gemm::GroupProblemShape<Shape<int, int, int>>;
using Element = cutlass::bfloat16_t;
using LayoutA = cutlass::layout::RowMajor;      // activations [M, K]
using LayoutB = cutlass::layout::ColumnMajor;   // weights stored [N, K] (K contiguous)
using LayoutD = cutlass::layout::RowMajor;      // output [M, N]
using StrideDPtr = cutlass::detail::TagToStrideC_t<LayoutD*>;
constexpr int kAlign = 8;

// What CUTLASS's grouped (ptr-array) GEMM kernel asks of a collective epilogue that works from
// the accumulator registers only (no SMEM, no workspace, no source C); `Args` is the epilogue's
// own argument block, passed to the device unchanged.
template <class Args>
struct RegisterEpilogue {
  using EpilogueSchedule = cutlass::epilogue::PtrArrayNoSmemWarpSpecialized;
  using DispatchPolicy = EpilogueSchedule;
  using ElementC = Element;
  using ElementD = Element;
  using ElementAccumulator = float;
  using ElementCompute = float;
  using ElementScalar = float;
  using ElementOutput = Element;
  // only named by the device adapter's type aliases; these epilogues compute their own output
  using ThreadEpilogueOp = cutlass::epilogue::thread::LinearCombination<Element, 1, float, float>;
  using StrideC = StrideDPtr;
  using StrideD = StrideDPtr;
  using InternalStrideC = cute::remove_pointer_t<StrideC>;
  using InternalStrideD = cute::remove_pointer_t<StrideD>;
  using GmemTiledCopyC = void;
  using GmemTiledCopyD = void;
  struct SharedStorage {};
  using TensorMapStorage = SharedStorage;
  using Arguments = Args;
  using Params = Arguments;

  template <class PS> static constexpr Params to_underlying_arguments(PS const&, Arguments const& a, void*) { return a; }
  template <class PS> static size_t get_workspace_size(PS const&, Arguments const&, int) { return 0; }
  template <class PS>
  static cutlass::Status initialize_workspace(PS const&, Arguments const&, void*, cudaStream_t, cutlass::CudaHostAdapter* = nullptr) {
    return cutlass::Status::kSuccess;
  }

  CUTLASS_HOST_DEVICE RegisterEpilogue(Params const& p) : params(p) {}
  CUTLASS_DEVICE bool is_source_needed() { return false; }

  Params params;
};

// The ptr-array (grouped) sm90 mainloop over bf16 A/B with fp32 accumulation; its stage count is
// what SMEM holds once `Epilogue` has its share.
template <class TileShape_, class ClusterShape_, class Epilogue_,
          class KernelSchedule_ = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>
using GroupedMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA*, kAlign, Element, LayoutB*, kAlign,
    float, TileShape_, ClusterShape_,
    cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue_::SharedStorage))>,
    KernelSchedule_>::CollectiveOp;
#endif
