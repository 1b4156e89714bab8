// comet_ir MoE layer1 in one kernel (Comet: shared tensor split along N, column-pipelined
// return, thread-block isolation). Self-contained: its own library, libcomet_moe_layer1.so.
//
//   compute CTAs  grouped GEMM2 y = h @ w2 (CUTLASS 3.x sm90 ptr-array, TMA + wgmma, cooperative
//                 128x256x64, cluster 2x1, persistent). The static schedule visits each expert
//                 group N-major (raster AlongM: every row tile of column tile 0, then column 1, ...),
//                 so column tile j of a group completes while j+1 computes. The epilogue
//                 (PublishEpilogue, registers only) stores the tile, then the two consumer
//                 warpgroups meet at a named barrier and one thread fences and adds the tile's
//                 row count to counters[group][column tile] (release, GPU scope).
//   comm CTAs     the last `comm_ctas` CTAs of the launch (whole clusters) never run the GEMM;
//                 the tile scheduler's stride is the compute-CTA count (L1Scheduler). They walk
//                 the (group, column tile) items in the order the GEMM finishes them, wait
//                 (bounded) until an item's counter counts every row of the group, then copy the
//                 item's rows, column slice j only (512 bytes a row), to the token owner's return
//                 buffer at token granularity (peer pointers of an NVSHMEM symmetric buffer at
//                 ep > 1; the own buffer at ep == 1) and add the rows sent to the owner's signal
//                 sig[source PE][j] (release; system scope at ep > 1).
//   combine       moe_l1_combine: per column tile j, wait (bounded) until sig[s][j] counts every
//                 row this PE sent to each PE s, then out[t, slice j] = sum_k gate * ret[row].
// Bounded waits set *err (4: a GEMM2 tile never completed; 5: a peer never returned its rows)
// and go on: garbage in, an error raised by the host, never a hang.
#include "moe_sm90_common.cuh"

namespace l1 {

constexpr int kTileN = 256;          // column tile = the GEMM's BN; the comm moves 512-byte slices
constexpr int kVecPerSlice = kTileN / 8;
static_assert(kVecPerSlice == 32, "one 16-byte vector per lane per row slice");

// What the comm CTAs need (passed by value; pointers are device addresses).
struct L1Comm {
  const uint4* y;            // [rows, H/8] GEMM2 output, rows grouped by local expert (recv layout)
  const int64_t* recv_off;   // [epr + 1] group offsets of y
  const int* counts;         // [ep * E]: rows PE s sent to expert e (ep == 1: the route counts [E])
  const int64_t* send_off;   // [ep * (E + 1)]: send-layout offsets of every PE (ep == 1: offsets)
  const int64_t* perm;       // ep == 1: send row -> flat (token, slot); the return buffer is then
                             // in flat layout. nullptr: send layout (ep > 1)
  uint4* peer_ret[8];        // return buffer of each PE of the EP group
  int* peer_sig[8];          // signals of each PE, [ep * nt]: (source PE, column tile)
  int* counters;             // [epr * nt] rows finished per (group, column tile); set by moe_l1_run
  int* err;
  long long timeout_ns;
  int vec, experts, ep, me, nt, sys_scope;
};

// ------------------------------------------------------------------ compute role
using TileShape = Shape<_128, _256, _64>;
using ClusterShape = Shape<_2, _1, _1>;
constexpr int kPublishBarrier = 8;   // first named barrier CUTLASS leaves to users (ReservedNamedBarriers)

__shared__ int s_compute_ctas;       // tile-scheduler stride: the CTAs that run the GEMM

struct PublishArgs {
  Element** ptr_D = nullptr;   // per group: first row of the group in y
  int64_t ldd = 0;             // H
  int* counters = nullptr;     // [groups * nt]
  int nt = 0;
};

// Stores the tile (bf16x2 per thread), then publishes it: the 256 consumer threads meet at a
// named barrier (every store of the tile is then ordered before thread 0's next operations),
// thread 0 fences and adds the tile's rows to counters[group][column tile] with release.
struct PublishEpilogue : RegisterEpilogue<PublishArgs> {
  using RegisterEpilogue::RegisterEpilogue;
  template <class PS> static bool can_implement(PS const&, Arguments const& a) { return a.counters != nullptr; }

  template <class PS, class BS, class BC, class FE, class FL, class TiledMma, class Res>
  CUTLASS_DEVICE void operator()(PS problem_shape_mnkl, BS blk_shape, BC blk_coord, cute::Tensor<FE, FL> const& acc,
                                 TiledMma tiled_mma, Res, int thread_idx, char*) {
    static_assert(decltype(size<0, 0>(acc))::value == 2 && decltype(size<0, 1>(acc))::value == 2,
                  "expects the wgmma accumulator layout ((2,2,N/8), MMA_M, MMA_N)");
    constexpr int NJ = decltype(size<0, 2>(acc))::value;
    const int M = int(get<0>(problem_shape_mnkl)), N = int(get<1>(problem_shape_mnkl));
    auto [m_coord, n_coord, k_coord, l_coord] = blk_coord;
    const int m0 = int(m_coord) * int(size<0>(blk_shape)), n0 = int(n_coord) * int(size<1>(blk_shape));
    __nv_bfloat16* D = reinterpret_cast<__nv_bfloat16*>(params.ptr_D[l_coord]);
    auto thr = tiled_mma.get_thread_slice(thread_idx);
    Tensor cD = make_identity_tensor(take<0, 2>(blk_shape));
    Tensor tC = thr.partition_C(cD);
    CUTLASS_PRAGMA_UNROLL
    for (int mm = 0; mm < size<1>(acc); ++mm) {
      CUTLASS_PRAGMA_UNROLL
      for (int mn = 0; mn < size<2>(acc); ++mn) {
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < NJ; ++j) {
          CUTLASS_PRAGMA_UNROLL
          for (int r = 0; r < 2; ++r) {
            auto c0 = make_coord(make_coord(0, r, j), mm, mn);
            auto c1 = make_coord(make_coord(1, r, j), mm, mn);
            int row = m0 + int(get<0>(tC(c0))), col = n0 + int(get<1>(tC(c0)));
            if (row < M && col < N)
              *reinterpret_cast<__nv_bfloat162*>(D + (int64_t)row * params.ldd + col) =
                  __floats2bfloat162_rn(acc(c0), acc(c1));
          }
        }
      }
    }
    constexpr int kConsumers = decltype(size(tiled_mma))::value;
    asm volatile("bar.sync %0, %1;" :: "r"(kPublishBarrier), "r"(kConsumers) : "memory");
    int rows = min(int(size<0>(blk_shape)), M - m0);
    if (thread_idx == 0 && rows > 0) {
      __threadfence();
      red_release_add(params.counters + (int64_t)l_coord * params.nt + int(n_coord), rows, 0);
    }
  }
};

// CUTLASS's grouped persistent scheduler strides by the whole grid; here the comm CTAs (the
// last ones) are not part of the GEMM, so the stride is the compute-CTA count. Tile i still
// goes to CTA i mod stride (AlongM raster: linear index = blockIdx.x since gridDim.y == 1).
using GroupSchedulerBase = cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90Group<ProblemShape, 8>;
struct L1Scheduler : GroupSchedulerBase {
  using Base = GroupSchedulerBase;
  uint64_t idx_ = 0;
  uint64_t stride_ = 1;
  L1Scheduler() = default;
  CUTLASS_DEVICE L1Scheduler(typename Base::Params const& p, typename Base::SchedulerResponse* r) : Base(p, r) {
#if defined(__CUDA_ARCH__)
    idx_ = uint64_t(blockIdx.x) * uint64_t(gridDim.y) + uint64_t(blockIdx.y);
    stride_ = uint64_t(s_compute_ctas);
#endif
  }
  template <class Pipe, class State>
  CUTLASS_DEVICE auto advance_to_next_work(Pipe& pipe, State state, uint32_t advance_count = 1) {
    idx_ += stride_ * uint64_t(advance_count);
    auto work = this->get_current_work_for_linear_idx(idx_);
    pipe.producer_acquire(state);
    if (cute::elect_one_sync()) {
      this->response_ptr_[state.index()] = work;
      cutlass::arch::fence_view_async_shared();
      pipe.producer_commit(state);
    }
    return cute::make_tuple(work, true);
  }
};

}  // namespace l1

namespace cutlass::gemm::kernel::detail {
template <>
struct TileSchedulerSelector<GroupScheduler, arch::Sm90, l1::TileShape, l1::ClusterShape, 8, ::ProblemShape> {
  using Scheduler = l1::L1Scheduler;
};
}  // namespace cutlass::gemm::kernel::detail

namespace l1 {

using Epilogue = cutlass::epilogue::collective::detail::Sm90TmaWarpSpecializedAdapter<PublishEpilogue>;
using Mainloop = GroupedMainloop<TileShape, ClusterShape, Epilogue>;
using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
static_assert(cute::is_same_v<typename Kernel::TileScheduler, L1Scheduler>, "layer1 kernel must use L1Scheduler");

// ------------------------------------------------------------------ comm role
// Items (group g, column tile j) in the order the GEMM completes them (g-major, then j); comm
// CTA c takes items c, c + comm_ctas, ... Rows of a group are stored source by source (own
// rows first, then the ring: the layer0 receive layout), so row i of group g comes from the
// source whose segment holds it, at that source's send row send_off[s][e] + i'.
__device__ void comm_role(L1Comm const& c, int cta, int ctas) {
  const int E = c.experts, epr = E / c.ep;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int items = epr * c.nt;
  for (int it = cta; it < items; it += ctas) {
    const int g = it / c.nt, j = it - g * c.nt;
    const int64_t r0 = c.recv_off[g], M = c.recv_off[g + 1] - r0;
    if (M <= 0) continue;
    const int e = c.me * epr + g;
    if (threadIdx.x == 0) wait_at_least(c.counters + it, int(M), 0, c.timeout_ns, c.err, 4);
    __syncthreads();
    constexpr int kU = 4;  // rows in flight per warp
    for (int64_t rb = (int64_t)warp * kU; rb < M; rb += (int64_t)nwarps * kU) {
      uint4 v[kU];
      uint4* dst[kU] = {nullptr, nullptr, nullptr, nullptr};
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        int64_t r = rb + u;
        if (r >= M) break;
        int64_t i = r;
        int s = c.me;
        for (int dd = 0; dd < c.ep; ++dd) {
          s = (c.me + dd) % c.ep;
          int64_t n = c.counts[s * E + e];
          if (i < n) break;
          i -= n;
        }
        int64_t drow = c.perm ? c.perm[r0 + r] : c.send_off[s * (E + 1) + e] + i;
        // y was written in this launch by other CTAs: L2-coherent loads, not the read-only path
        v[u] = __ldcg(c.y + (r0 + r) * (int64_t)c.vec + j * kVecPerSlice + lane);
        dst[u] = c.peer_ret[s] + drow * (int64_t)c.vec + j * kVecPerSlice + lane;
      }
#pragma unroll
      for (int u = 0; u < kU; ++u)
        if (dst[u]) *dst[u] = v[u];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      if (c.sys_scope) __threadfence_system(); else __threadfence();
      for (int s = 0; s < c.ep; ++s) {
        int n = c.counts[s * E + e];
        if (n) red_release_add(c.peer_sig[s] + c.me * c.nt + j, n, c.sys_scope);
      }
    }
  }
}

template <class GemmKernel>
__global__ void __launch_bounds__(GemmKernel::MaxThreadsPerBlock, GemmKernel::MinBlocksPerMultiprocessor)
moe_layer1_kernel(CUTLASS_GRID_CONSTANT typename GemmKernel::Params const params, L1Comm const comm, int comm_ctas) {
  extern __shared__ __align__(1024) char smem[];
  const int compute = int(gridDim.x * gridDim.y) - comm_ctas;
  if (int(blockIdx.x) >= compute) {  // whole clusters: comm_ctas is a multiple of the cluster size
    comm_role(comm, int(blockIdx.x) - compute, comm_ctas);
    return;
  }
  if (threadIdx.x == 0) s_compute_ctas = compute;
  __syncthreads();
  GemmKernel op;
  op(params, smem);
}

__global__ void group_args_kernel(int groups, const int64_t* offsets, int n, int k,
                                  typename ProblemShape::UnderlyingProblemShape* shapes,
                                  const Element** pa, const Element** pb, Element** pd,
                                  const Element* a, const Element* b, Element* d) {
  int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= groups) return;
  int64_t r0 = offsets[g], m = offsets[g + 1] - r0;
  shapes[g] = make_shape(int(m), n, k);
  pa[g] = a + r0 * k;
  pb[g] = b + (int64_t)g * n * k;
  pd[g] = d + r0 * n;
}

struct Handle {
  using SA = typename Kernel::InternalStrideA;
  using SB = typename Kernel::InternalStrideB;
  int groups, n, k, nt;
  typename ProblemShape::UnderlyingProblemShape* shapes = nullptr;
  const Element** pa = nullptr; const Element** pb = nullptr; Element** pd = nullptr;
  SA* sa = nullptr; SB* sb = nullptr;
  int* counters = nullptr;
  void* workspace = nullptr;
  Gemm gemm;
  int err = 0;

  Handle(int groups_, int n_, int k_, int device) : groups(groups_), n(n_), k(k_), nt(n_ / kTileN) {
    cudaMalloc(&shapes, sizeof(*shapes) * groups);
    cudaMalloc(&pa, sizeof(void*) * groups); cudaMalloc(&pb, sizeof(void*) * groups); cudaMalloc(&pd, sizeof(void*) * groups);
    cudaMalloc(&sa, sizeof(SA) * groups); cudaMalloc(&sb, sizeof(SB) * groups);
    cudaMalloc(&counters, sizeof(int) * groups * nt);
    SA ha = cutlass::make_cute_packed_stride(SA{}, {1, k, 1});
    SB hb = cutlass::make_cute_packed_stride(SB{}, {n, k, 1});
    for (int g = 0; g < groups; ++g) {
      cudaMemcpy(sa + g, &ha, sizeof(SA), cudaMemcpyHostToDevice);
      cudaMemcpy(sb + g, &hb, sizeof(SB), cudaMemcpyHostToDevice);
    }
    cutlass::KernelHardwareInfo hw = cutlass::KernelHardwareInfo::make_kernel_hardware_info<Kernel>(device);
    typename Epilogue::Arguments ea{pd, (int64_t)n, counters, nt};
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGrouped, {groups, shapes, nullptr},
                                  {pa, sa, pb, sb}, ea, hw};
    size_t ws = Gemm::get_workspace_size(args);
    if (ws) cudaMalloc(&workspace, ws);
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) { err = -3; return; }
    if (gemm.initialize(args, workspace) != cutlass::Status::kSuccess) { err = -4; return; }
    err = (int)cudaFuncSetAttribute(moe_layer1_kernel<Kernel>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(Kernel::SharedStorageSize));
    if (err) return;
    err = (int)cudaDeviceSynchronize();
  }
  ~Handle() {
    cudaFree(shapes); cudaFree(pa); cudaFree(pb); cudaFree(pd); cudaFree(sa); cudaFree(sb); cudaFree(counters);
    if (workspace) cudaFree(workspace);
  }

  int grid_ctas() {
    dim3 grid = Kernel::get_grid_shape(gemm.params());
    return int(grid.x * grid.y * grid.z);
  }

  int run(const int64_t* offsets, const void* a, const void* b, void* d, L1Comm comm, int comm_ctas, cudaStream_t s) {
    dim3 grid = Kernel::get_grid_shape(gemm.params()), block = Kernel::get_block_shape();
    constexpr int cs = size(ClusterShape{});
    if (grid.y != 1 || grid.z != 1) return -7;              // AlongM raster, cluster along x
    if (comm_ctas < cs || comm_ctas % cs || comm_ctas >= int(grid.x)) return -8;
    group_args_kernel<<<(groups + 127) / 128, 128, 0, s>>>(groups, offsets, n, k, shapes, pa, pb, pd,
                                                           (const Element*)a, (const Element*)b, (Element*)d);
    int e = (int)cudaGetLastError();
    if (e) return e;
    e = (int)cudaMemsetAsync(counters, 0, sizeof(int) * groups * nt, s);
    if (e) return e;
    comm.counters = counters;
    comm.nt = nt;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid; cfg.blockDim = block;
    cfg.dynamicSmemBytes = Kernel::SharedStorageSize;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = size<0>(ClusterShape{}); attr[0].val.clusterDim.y = size<1>(ClusterShape{});
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr; cfg.numAttrs = 1;
    e = (int)cudaLaunchKernelEx(&cfg, moe_layer1_kernel<Kernel>, gemm.params(), comm, comm_ctas);
    return e ? e : (int)cudaGetLastError();
  }
};

// ------------------------------------------------------------------ combine (owner side)
// Block (j, chunk): wait until every PE s returned all rows this PE sent it for column tile j,
// then one warp per token: out[t, slice j] = sum_k gate[t,k] * ret[row(t,k), slice j] (fp32).
__global__ void combine_kernel(const uint4* ret, const int64_t* inv, const float* __restrict__ gates,
                               uint4* __restrict__ out, int tokens, int vec, int topk, const int* sig,
                               const int* __restrict__ my_counts, int experts, int ep, int nt, int sys,
                               int* err, long long timeout_ns, int chunk) {
  const int j = blockIdx.x;
  if (threadIdx.x == 0) {
    const int epr = experts / ep;
    for (int s = 0; s < ep; ++s) {
      int need = 0;
      for (int q = 0; q < epr; ++q) need += my_counts[s * epr + q];
      if (!wait_at_least(sig + s * nt + j, need, sys, timeout_ns, err, 5)) break;
    }
    __threadfence();
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int t_end = min(tokens, (int)(blockIdx.y + 1) * chunk);
  for (int t = blockIdx.y * chunk + warp; t < t_end; t += nwarps) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int q = 0; q < topk; ++q) {
      int64_t flat = (int64_t)t * topk + q;
      int64_t row = inv ? inv[flat] : flat;
      float g = gates[flat];
      uint4 v = __ldcg(ret + row * vec + j * kVecPerSlice + lane);  // written by peers in this call
      const __nv_bfloat16* b = reinterpret_cast<const __nv_bfloat16*>(&v);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] += g * __bfloat162float(b[i]);
    }
    uint4 o;
    __nv_bfloat16* ob = reinterpret_cast<__nv_bfloat16*>(&o);
#pragma unroll
    for (int i = 0; i < 8; ++i) ob[i] = __float2bfloat16(acc[i]);
    out[(int64_t)t * vec + j * kVecPerSlice + lane] = o;
  }
}

__global__ void zero_kernel(int* p, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) p[i] = 0;
  __syncthreads();
  if (threadIdx.x == 0) __threadfence_system();  // before this PE publishes anything that lets peers write p
}

}  // namespace l1

// ------------------------------------------------------------------ C ABI (ctypes)
extern "C" int moe_l1_desc_size() { return (int)sizeof(l1::L1Comm); }
extern "C" int moe_l1_tile_n() { return l1::kTileN; }

extern "C" void* moe_l1_create(int groups, int n, int k, int device, int* err) {
  if (n % l1::kTileN || k % 8) { *err = -2; return nullptr; }
  auto* h = new l1::Handle(groups, n, k, device);
  *err = h->err;
  if (h->err) { delete h; return nullptr; }
  return h;
}

extern "C" void moe_l1_destroy(void* h) { delete static_cast<l1::Handle*>(h); }

extern "C" int moe_l1_grid_ctas(void* h) { return static_cast<l1::Handle*>(h)->grid_ctas(); }

// y = a @ b^T per group (b packed [groups, n, k]); comm_ctas CTAs return column tiles per `comm`.
extern "C" int moe_l1_run(void* h, const int64_t* offsets, const void* a, const void* b, void* y,
                          const l1::L1Comm* comm, int comm_ctas, void* stream) {
  if (comm->ep < 1 || comm->ep > 8 || comm->experts % comm->ep || comm->vec * 8 != static_cast<l1::Handle*>(h)->n)
    return -2;
  return static_cast<l1::Handle*>(h)->run(offsets, a, b, y, *comm, comm_ctas, (cudaStream_t)stream);
}

extern "C" int moe_l1_combine(const void* ret, const int64_t* inv, const float* gates, void* out, int tokens,
                              int hidden, int topk, const int* sig, const int* my_counts, int experts, int ep,
                              int sys_scope, int* err, long long timeout_ns, void* stream) {
  if (tokens == 0) return 0;
  if (hidden % l1::kTileN || ep < 1 || experts % ep) return -2;
  const int nt = hidden / l1::kTileN, chunk = 64;
  dim3 grid(nt, (tokens + chunk - 1) / chunk);
  l1::combine_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>(
      (const uint4*)ret, inv, gates, (uint4*)out, tokens, hidden / 8, topk, sig, my_counts, experts, ep, nt,
      sys_scope, err, timeout_ns, chunk);
  return (int)cudaGetLastError();
}

extern "C" int moe_l1_zero(int* p, int n, void* stream) {
  l1::zero_kernel<<<1, 256, 0, (cudaStream_t)stream>>>(p, n);
  return (int)cudaGetLastError();
}
