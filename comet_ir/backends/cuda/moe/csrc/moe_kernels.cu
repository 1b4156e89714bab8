// comet_ir MoE kernels (generated layout plan: comet_ir/backends/cuda/moe/plan.py).
//   moe_gather      layer0 comm role: copy token rows into the expert-grouped buffer
//                   (row r <- x[perm[r] / topk]), 16-byte vectors, one warp per row.
//   moe_swiglu      h[r, :F] = silu(g[r, :F]) * g[r, F:2F]  (GEMM1 computes [w1 | w3] at once)
//   moe_combine     layer1 comm role: out[t] = sum_s gate[t,s] * y[inv[t*k+s]] (fp32 accumulate)
//   grouped GEMM    CUTLASS 3.x Hopper ptr-array grouped GEMM (TMA + wgmma, warp-specialised
//                   cooperative), problem sizes and pointers built on the device from the expert
//                   offsets, so a call never synchronises with the host (CUDA-graph capturable).
// C ABI (ctypes), every function returns 0 or a cudaError_t / -1 for CUTLASS failures.
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cstdint>
#include <cstdio>

#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

using namespace cute;

// ------------------------------------------------------------------ memory-role kernels
__global__ void moe_gather_kernel(const uint4* __restrict__ x, const int64_t* __restrict__ perm,
                                  uint4* __restrict__ xs, int rows, int vec_per_row, int topk) {
  int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  int nwarps = (gridDim.x * blockDim.x) >> 5;
  for (int r = warp; r < rows; r += nwarps) {
    const uint4* src = x + (perm[r] / topk) * (int64_t)vec_per_row;
    uint4* dst = xs + (int64_t)r * vec_per_row;
    for (int v = lane; v < vec_per_row; v += 32) dst[v] = src[v];
  }
}

__global__ void moe_swiglu_kernel(const __nv_bfloat162* __restrict__ g, __nv_bfloat162* __restrict__ h,
                                  int64_t rows, int f2 /* F/2 */) {
  int64_t n = rows * f2;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / f2, c = i - r * f2;
    float2 a = __bfloat1622float2(g[r * 2 * f2 + c]);
    float2 b = __bfloat1622float2(g[r * 2 * f2 + f2 + c]);
    a.x = a.x / (1.f + __expf(-a.x)) * b.x;
    a.y = a.y / (1.f + __expf(-a.y)) * b.y;
    h[i] = __float22bfloat162_rn(a);
  }
}

template <int K>
__global__ void moe_combine_kernel(const __nv_bfloat16* __restrict__ y, const int64_t* __restrict__ inv,
                                   const float* __restrict__ gates, __nv_bfloat16* __restrict__ out,
                                   int tokens, int hidden, int topk) {
  // one block per token, 8 bf16 per thread per step
  int t = blockIdx.x;
  if (t >= tokens) return;
  int64_t rows[8]; float w[8];
  int k = K > 0 ? K : topk;
#pragma unroll
  for (int s = 0; s < 8; ++s) if (s < k) { rows[s] = inv[(int64_t)t * k + s]; w[s] = gates[(int64_t)t * k + s]; }
  for (int c = threadIdx.x * 8; c < hidden; c += blockDim.x * 8) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma unroll
    for (int s = 0; s < 8; ++s) {
      if (s < k) {
        uint4 v = *reinterpret_cast<const uint4*>(y + rows[s] * hidden + c);
        const __nv_bfloat16* b = reinterpret_cast<const __nv_bfloat16*>(&v);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[j] += w[s] * __bfloat162float(b[j]);
      }
    }
    uint4 o; __nv_bfloat16* ob = reinterpret_cast<__nv_bfloat16*>(&o);
#pragma unroll
    for (int j = 0; j < 8; ++j) ob[j] = __float2bfloat16(acc[j]);
    *reinterpret_cast<uint4*>(out + (int64_t)t * hidden + c) = o;
  }
}

extern "C" int moe_gather(const void* x, const int64_t* perm, void* xs, int rows, int hidden, int topk,
                          void* stream) {
  if (rows == 0) return 0;
  if (hidden % 8) return -2;
  int blocks = min((rows + 7) / 8, 132 * 8);
  moe_gather_kernel<<<blocks, 256, 0, (cudaStream_t)stream>>>((const uint4*)x, perm, (uint4*)xs, rows,
                                                              hidden / 8, topk);
  return (int)cudaGetLastError();
}

extern "C" int moe_swiglu(const void* g, void* h, int64_t rows, int ffn, void* stream) {
  if (rows == 0) return 0;
  if (ffn % 2) return -2;
  int64_t n = rows * (ffn / 2);
  int blocks = (int)min<int64_t>((n + 255) / 256, 132 * 16);
  moe_swiglu_kernel<<<blocks, 256, 0, (cudaStream_t)stream>>>((const __nv_bfloat162*)g, (__nv_bfloat162*)h,
                                                              rows, ffn / 2);
  return (int)cudaGetLastError();
}

extern "C" int moe_combine(const void* y, const int64_t* inv, const float* gates, void* out, int tokens,
                           int hidden, int topk, void* stream) {
  if (tokens == 0) return 0;
  if (hidden % 8 || topk > 8) return -2;
  int threads = min(256, max(32, hidden / 8));
  auto s = (cudaStream_t)stream;
  if (topk == 2)
    moe_combine_kernel<2><<<tokens, threads, 0, s>>>((const __nv_bfloat16*)y, inv, gates, (__nv_bfloat16*)out, tokens, hidden, topk);
  else
    moe_combine_kernel<0><<<tokens, threads, 0, s>>>((const __nv_bfloat16*)y, inv, gates, (__nv_bfloat16*)out, tokens, hidden, topk);
  return (int)cudaGetLastError();
}


// ------------------------------------------------------------------ fused route + dispatch
// layer0's comm role at token granularity in three launches (no host sync):
//   moe_route_kernel     one warp per token: softmax over E (<= 256), top-k by repeated warp
//                        argmax (ties -> lower expert), gates renormalised over the k chosen,
//                        counts[e] += 1 (atomics)
//   moe_scan_kernel      offsets = exclusive prefix sum of counts, cursors = 0
//   moe_dispatch_kernel  one warp per token: row = offsets[e] + atomicAdd(cursor[e]); perm/inv;
//                        the token's row is copied into the expert-grouped buffer at `row`.
// Row order inside an expert follows the atomics (not stable), which does not change any
// result: every GEMM output row depends on its own input row only.
template <int EPL>  // experts per lane (E <= 32 * EPL)
__global__ void moe_route_kernel(const float* __restrict__ logits, int tokens, int experts, int topk,
                                 int64_t* __restrict__ idx, float* __restrict__ gates, int* __restrict__ counts) {
  int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (warp >= tokens) return;
  float v[EPL];
  float mx = -INFINITY;
#pragma unroll
  for (int i = 0; i < EPL; ++i) {
    int e = lane + 32 * i;
    float l = e < experts ? logits[(int64_t)warp * experts + e] : -INFINITY;
    v[i] = isnan(l) ? -INFINITY : l;   // NaN logits rank last; a removed entry becomes NaN
    mx = fmaxf(mx, v[i]);
  }
  for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
  float sel_sum = 0.f, sel_p[8]; int sel_e[8];
#pragma unroll
  for (int s = 0; s < 8; ++s) {
    if (s >= topk) break;
    float bv = -INFINITY; int be = 0x7fffffff;
#pragma unroll
    for (int i = 0; i < EPL; ++i) {
      int e = lane + 32 * i;
      if (e < experts && (v[i] > bv || (v[i] == bv && e < be))) { bv = v[i]; be = e; }  // NaN: false
    }
    for (int o = 16; o; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffff, bv, o); int oe = __shfl_xor_sync(0xffffffff, be, o);
      if (ov > bv || (ov == bv && oe < be)) { bv = ov; be = oe; }
    }
#pragma unroll
    for (int i = 0; i < EPL; ++i) if (lane + 32 * i == be) v[i] = NAN;  // never selected again
    float p = __expf(bv - mx);
    sel_p[s] = p; sel_e[s] = be; sel_sum += p;
  }
  if (lane < topk) {
    float p = 0.f; int e = 0;
#pragma unroll
    for (int s = 0; s < 8; ++s) if (s == lane) { p = sel_p[s]; e = sel_e[s]; }
    idx[(int64_t)warp * topk + lane] = e;
    gates[(int64_t)warp * topk + lane] = p / sel_sum;
    atomicAdd(counts + e, 1);
  }
}

__global__ void moe_scan_kernel(const int* __restrict__ counts, int experts, int64_t* __restrict__ offsets,
                                int* __restrict__ cursors) {
  if (threadIdx.x == 0) {
    int64_t acc = 0;
    for (int e = 0; e < experts; ++e) { offsets[e] = acc; acc += counts[e]; cursors[e] = 0; }
    offsets[experts] = acc;
  }
}

__global__ void moe_dispatch_kernel(const uint4* __restrict__ x, const int64_t* __restrict__ idx,
                                    const int64_t* __restrict__ offsets, int* __restrict__ cursors,
                                    int64_t* __restrict__ perm, int64_t* __restrict__ inv, uint4* __restrict__ xs,
                                    int tokens, int topk, int vec_per_row) {
  int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (warp >= tokens) return;
  const uint4* src = x + (int64_t)warp * vec_per_row;
  for (int s = 0; s < topk; ++s) {
    int64_t flat = (int64_t)warp * topk + s;
    int64_t row = 0;
    if (lane == 0) {
      int e = (int)idx[flat];
      row = offsets[e] + atomicAdd(cursors + e, 1);
      perm[row] = flat; inv[flat] = row;
    }
    row = __shfl_sync(0xffffffff, row, 0);
    uint4* dst = xs + row * vec_per_row;
    for (int i = lane; i < vec_per_row; i += 32) dst[i] = src[i];
  }
}

extern "C" int moe_route_dispatch(const float* logits, const void* x, int tokens, int hidden, int experts, int topk,
                                  int64_t* idx, float* gates, int* counts /* [2E] scratch */, int64_t* offsets,
                                  int64_t* perm, int64_t* inv, void* xs, void* stream) {
  if (tokens == 0) return 0;
  if (hidden % 8 || experts > 256 || topk > 8 || topk > experts) return -2;
  auto s = (cudaStream_t)stream;
  cudaMemsetAsync(counts, 0, sizeof(int) * experts, s);
  int blocks = (tokens + 7) / 8;  // 8 warps per block
  if (experts <= 32) moe_route_kernel<1><<<blocks, 256, 0, s>>>(logits, tokens, experts, topk, idx, gates, counts);
  else if (experts <= 64) moe_route_kernel<2><<<blocks, 256, 0, s>>>(logits, tokens, experts, topk, idx, gates, counts);
  else moe_route_kernel<8><<<blocks, 256, 0, s>>>(logits, tokens, experts, topk, idx, gates, counts);
  moe_scan_kernel<<<1, 32, 0, s>>>(counts, experts, offsets, counts + experts);
  moe_dispatch_kernel<<<blocks, 256, 0, s>>>((const uint4*)x, idx, offsets, counts + experts, perm, inv, (uint4*)xs,
                                             tokens, topk, hidden / 8);
  return (int)cudaGetLastError();
}

// ------------------------------------------------------------------ grouped GEMM (compute role)
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
using ProblemShape = cutlass::gemm::GroupProblemShape<Shape<int, int, int>>;
using Element = cutlass::bfloat16_t;
using LayoutA = cutlass::layout::RowMajor;      // activations [M, K]
using LayoutB = cutlass::layout::ColumnMajor;   // weights stored [N, K] (K contiguous)
using LayoutD = cutlass::layout::RowMajor;      // output [M, N]
constexpr int kAlign = 8;

template <class TileShape_, class ClusterShape_, class KernelSchedule_, class EpilogueSchedule_>
struct GroupedGemm {
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape_, ClusterShape_,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, LayoutD*, kAlign, Element, LayoutD*, kAlign, EpilogueSchedule_,
      cutlass::epilogue::fusion::LinearCombination<Element, float, void>>::CollectiveOp;
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA*, kAlign, Element, LayoutB*, kAlign,
      float, TileShape_, ClusterShape_,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule_>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
};

// variants: 0 coop 128x256x64 cluster 2x1; 1 pingpong 128x128x64 cluster 2x1;
//           2 coop 256x128x64 cluster 2x1; 3 coop 128x256x64 cluster 1x2; 4 coop 128x256x64 cluster 1x1
using Coop = GroupedGemm<Shape<_128, _256, _64>, Shape<_2, _1, _1>,
                         cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                         cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
using Ping = GroupedGemm<Shape<_128, _128, _64>, Shape<_2, _1, _1>,
                         cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong,
                         cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong>;

// GEMM1 with the SwiGLU fused into the epilogue: D = silu(acc) * C, C = x @ w3 (the "up" GEMM,
// computed first by a plain variant), acc = x @ w1. Epilogue visitor tree (EVT).
using namespace cutlass::epilogue::fusion;
using SwigluEVT = Sm90EVT<Sm90Compute<cutlass::multiplies, Element, float, cutlass::FloatRoundStyle::round_to_nearest>,
                          Sm90EVT<Sm90Compute<cutlass::epilogue::thread::SiLu, float, float, cutlass::FloatRoundStyle::round_to_nearest>,
                                  Sm90AccFetch>,
                          Sm90SrcFetch<Element>>;
struct GroupedGemmSwiglu {
  using TileShape_ = Shape<_128, _256, _64>;
  using ClusterShape_ = Shape<_2, _1, _1>;
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape_, ClusterShape_,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      Element, LayoutD*, kAlign, Element, LayoutD*, kAlign,
      cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative, SwigluEVT>::CollectiveOp;
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA*, kAlign, Element, LayoutB*, kAlign,
      float, TileShape_, ClusterShape_,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
};

using Coop256 = GroupedGemm<Shape<_256, _128, _64>, Shape<_2, _1, _1>,
                            cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                            cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
using CoopC12 = GroupedGemm<Shape<_128, _256, _64>, Shape<_1, _2, _1>,
                            cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                            cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
using CoopC11 = GroupedGemm<Shape<_128, _256, _64>, Shape<_1, _1, _1>,
                            cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                            cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;

__global__ void moe_group_args_kernel(int groups, const int64_t* offsets, int n, int k,
                                      typename ProblemShape::UnderlyingProblemShape* shapes,
                                      const Element** pa, const Element** pb, Element** pd, const Element** pc,
                                      const Element* a, const Element* b, Element* d, const Element* c,
                                      int64_t b_gstride) {
  int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= groups) return;
  int64_t r0 = offsets[g], m = offsets[g + 1] - r0;
  shapes[g] = make_shape(int(m), n, k);
  pa[g] = a + r0 * k;
  pb[g] = b + (int64_t)g * b_gstride;
  pd[g] = d + r0 * n;
  if (pc) pc[g] = c + r0 * n;
}

struct GGBase {
  virtual ~GGBase() {}
  virtual int run(const int64_t*, const void*, const void*, void*, const void*, int64_t, void*) = 0;
};

template <class G, bool kSwiglu = false>
struct GG : GGBase {
  using Gemm = typename G::Gemm;
  using SA = typename Gemm::GemmKernel::InternalStrideA;
  using SB = typename Gemm::GemmKernel::InternalStrideB;
  using SD = typename Gemm::GemmKernel::InternalStrideD;
  int groups, n, k;
  typename ProblemShape::UnderlyingProblemShape* shapes = nullptr;
  const Element** pa = nullptr; const Element** pb = nullptr; Element** pd = nullptr; const Element** pc = nullptr;
  SA* sa = nullptr; SB* sb = nullptr; SD* sd = nullptr;
  void* workspace = nullptr;
  Gemm gemm;
  int err = 0;

  GG(int groups_, int n_, int k_, int device, int sm_count) : groups(groups_), n(n_), k(k_) {
    cudaMalloc(&shapes, sizeof(*shapes) * groups);
    cudaMalloc(&pa, sizeof(void*) * groups); cudaMalloc(&pb, sizeof(void*) * groups); cudaMalloc(&pd, sizeof(void*) * groups);
    if (kSwiglu) cudaMalloc(&pc, sizeof(void*) * groups);
    cudaMalloc(&sa, sizeof(SA) * groups); cudaMalloc(&sb, sizeof(SB) * groups); cudaMalloc(&sd, sizeof(SD) * groups);
    // strides of row-major [M,K], [N,K] (K contiguous) and [M,N] do not depend on M
    SA ha = cutlass::make_cute_packed_stride(SA{}, {1, k, 1});
    SB hb = cutlass::make_cute_packed_stride(SB{}, {n, k, 1});
    SD hd = cutlass::make_cute_packed_stride(SD{}, {1, n, 1});
    for (int g = 0; g < groups; ++g) {
      cudaMemcpy(sa + g, &ha, sizeof(SA), cudaMemcpyHostToDevice);
      cudaMemcpy(sb + g, &hb, sizeof(SB), cudaMemcpyHostToDevice);
      cudaMemcpy(sd + g, &hd, sizeof(SD), cudaMemcpyHostToDevice);
    }
    cutlass::KernelHardwareInfo hw = cutlass::KernelHardwareInfo::make_kernel_hardware_info<typename Gemm::GemmKernel>(device);
    // compute role on fewer SMs when comm blocks take the rest (thread-block isolation ratio)
    if (sm_count > 0 && sm_count < hw.sm_count) hw.sm_count = sm_count;
    typename Gemm::Arguments args;
    decltype(args.epilogue.thread) fusion{};
    if constexpr (!kSwiglu) {
      fusion.alpha = 1.f; fusion.beta = 0.f;
      fusion.alpha_ptr = nullptr; fusion.beta_ptr = nullptr;
      fusion.alpha_ptr_array = nullptr; fusion.beta_ptr_array = nullptr;
      fusion.dAlpha = {cute::_0{}, cute::_0{}, 0}; fusion.dBeta = {cute::_0{}, cute::_0{}, 0};
      args = typename Gemm::Arguments{cutlass::gemm::GemmUniversalMode::kGrouped,
                                      {groups, shapes, nullptr},
                                      {pa, sa, pb, sb},
                                      {fusion, nullptr, sd, pd, sd},
                                      hw};
    } else {
      args = typename Gemm::Arguments{cutlass::gemm::GemmUniversalMode::kGrouped,
                                      {groups, shapes, nullptr},
                                      {pa, sa, pb, sb},
                                      {fusion, pc, sd, pd, sd},
                                      hw};
    }
    size_t ws = Gemm::get_workspace_size(args);
    if (ws) cudaMalloc(&workspace, ws);
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) { err = -3; return; }
    if (gemm.initialize(args, workspace) != cutlass::Status::kSuccess) { err = -4; return; }
    err = (int)cudaDeviceSynchronize();
  }
  ~GG() {
    cudaFree(shapes); cudaFree(pa); cudaFree(pb); cudaFree(pd); cudaFree(sa); cudaFree(sb); cudaFree(sd);
    if (pc) cudaFree(pc);
    if (workspace) cudaFree(workspace);
  }
  int run(const int64_t* offsets, const void* a, const void* b, void* d, const void* c, int64_t b_gstride,
          void* stream) override {
    auto s = (cudaStream_t)stream;
    if (kSwiglu && !c) return -7;
    moe_group_args_kernel<<<(groups + 127) / 128, 128, 0, s>>>(groups, offsets, n, k, shapes, pa, pb, pd, pc,
        (const Element*)a, (const Element*)b, (Element*)d, (const Element*)c, b_gstride > 0 ? b_gstride : (int64_t)n * k);
    int e = (int)cudaGetLastError();
    if (e) return e;
    if (gemm.run(s) != cutlass::Status::kSuccess) return -5;
    return (int)cudaGetLastError();
  }
};
#endif

extern "C" void* moe_gg_create(int variant, int groups, int n, int k, int device, int sm_count, int* err) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  GGBase* h = nullptr; int e = 0;
  switch (variant) {
    case 0: { auto* p = new GG<Coop>(groups, n, k, device, sm_count); e = p->err; h = p; break; }
    case 1: { auto* p = new GG<Ping>(groups, n, k, device, sm_count); e = p->err; h = p; break; }
    case 2: { auto* p = new GG<Coop256>(groups, n, k, device, sm_count); e = p->err; h = p; break; }
    case 3: { auto* p = new GG<CoopC12>(groups, n, k, device, sm_count); e = p->err; h = p; break; }
    case 4: { auto* p = new GG<CoopC11>(groups, n, k, device, sm_count); e = p->err; h = p; break; }
    case 5: { auto* p = new GG<GroupedGemmSwiglu, true>(groups, n, k, device, sm_count); e = p->err; h = p; break; }
    default: *err = -6; return nullptr;
  }
  *err = e;
  if (e) { delete h; return nullptr; }
  return h;
#else
  *err = -1; return nullptr;
#endif
}

// D[rows of g] = A[rows of g] @ B[g]^T  (variant 5: D = silu(A @ B[g]^T) * C[rows of g]);
// B[g] starts at b + g * b_gstride elements (0: packed [G, N, K]).
extern "C" int moe_gg_run(void* h, const int64_t* offsets, const void* a, const void* b, void* d, const void* c,
                          int64_t b_gstride, void* stream) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  return static_cast<GGBase*>(h)->run(offsets, a, b, d, c, b_gstride, stream);
#else
  return -1;
#endif
}

extern "C" void moe_gg_destroy(void* h) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  delete static_cast<GGBase*>(h);
#endif
}
