// comet_ir MoE kernels (generated layout plan: comet_ir/backends/cuda/moe/plan.py).
//   moe_gather      layer0 comm role: copy token rows into the expert-grouped buffer
//                   (row r <- x[perm[r] / topk]), 16-byte vectors, one warp per row.
//   moe_swiglu      h[r, :F] = silu(g[r, :F]) * g[r, F:2F]  (GEMM1 computes [w1 | w3] at once)
//   moe_combine     layer1 comm role: out[t] = sum_s gate[t,s] * y[inv[t*k+s]] (fp32 accumulate)
//   grouped GEMM    CUTLASS 3.x Hopper ptr-array grouped GEMM (TMA + wgmma, warp-specialised
//                   cooperative), problem sizes and pointers built on the device from the expert
//                   offsets, so a call never synchronises with the host (CUDA-graph capturable).
// C ABI (ctypes), every function returns 0 or a cudaError_t / -1 for CUTLASS failures.
#include <cstdio>

#include "moe_sm90_common.cuh"

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
__global__ void moe_combine_kernel(const __nv_bfloat16* __restrict__ y, const __nv_bfloat16* __restrict__ y2,
                                   const int* __restrict__ split, const int64_t* __restrict__ inv,
                                   const float* __restrict__ gates, __nv_bfloat16* __restrict__ out,
                                   int tokens, int hidden, int topk) {
  // one block per token, 8 bf16 per thread per step; y2 (when *split): GEMM2's second K half,
  // added to y before the gate weighting
  int t = blockIdx.x;
  if (t >= tokens) return;
  const bool two = y2 != nullptr && *split;
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
        float part[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) part[j] = __bfloat162float(b[j]);
        if (two) {
          uint4 v2 = *reinterpret_cast<const uint4*>(y2 + rows[s] * hidden + c);
          const __nv_bfloat16* b2 = reinterpret_cast<const __nv_bfloat16*>(&v2);
#pragma unroll
          for (int j = 0; j < 8; ++j) part[j] += __bfloat162float(b2[j]);
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[j] += w[s] * part[j];
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

// out[t] = sum_s gate[t, s] * (y + (*split ? y2 : 0))[inv[t*k + s]]; y2 = nullptr: y alone.
extern "C" int moe_combine2(const void* y, const void* y2, const int* split, const int64_t* inv, const float* gates,
                            void* out, int tokens, int hidden, int topk, void* stream) {
  if (tokens == 0) return 0;
  if (hidden % 8 || topk > 8 || (y2 && !split)) return -2;
  int threads = min(256, max(32, hidden / 8));
  auto s = (cudaStream_t)stream;
  auto yb = (const __nv_bfloat16*)y, y2b = (const __nv_bfloat16*)y2;
  if (topk == 2)
    moe_combine_kernel<2><<<tokens, threads, 0, s>>>(yb, y2b, split, inv, gates, (__nv_bfloat16*)out, tokens, hidden, topk);
  else
    moe_combine_kernel<0><<<tokens, threads, 0, s>>>(yb, y2b, split, inv, gates, (__nv_bfloat16*)out, tokens, hidden, topk);
  return (int)cudaGetLastError();
}

// y += y2 when *split (GEMM2's two K halves folded, for callers that need y itself); n % 8 == 0
__global__ void moe_fold_kernel(uint4* __restrict__ y, const uint4* __restrict__ y2, const int* __restrict__ split,
                                int64_t nvec) {
  if (!*split) return;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nvec; i += (int64_t)gridDim.x * blockDim.x) {
    uint4 a = y[i], b = y2[i];
    __nv_bfloat162* pa = reinterpret_cast<__nv_bfloat162*>(&a);
    const __nv_bfloat162* pb = reinterpret_cast<const __nv_bfloat162*>(&b);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float2 x = __bfloat1622float2(pa[j]), z = __bfloat1622float2(pb[j]);
      pa[j] = __floats2bfloat162_rn(x.x + z.x, x.y + z.y);
    }
    y[i] = a;
  }
}

extern "C" int moe_fold(void* y, const void* y2, const int* split, int64_t n, void* stream) {
  if (n == 0) return 0;
  if (n % 8) return -2;
  int64_t nvec = n / 8;
  int blocks = (int)min<int64_t>((nvec + 255) / 256, 132 * 8);
  moe_fold_kernel<<<blocks, 256, 0, (cudaStream_t)stream>>>((uint4*)y, (const uint4*)y2, split, nvec);
  return (int)cudaGetLastError();
}

extern "C" int moe_combine(const void* y, const int64_t* inv, const float* gates, void* out, int tokens,
                           int hidden, int topk, void* stream) {
  return moe_combine2(y, nullptr, nullptr, inv, gates, out, tokens, hidden, topk, stream);
}


// ------------------------------------------------------------------ fused route + dispatch
// layer0's comm role at token granularity in three launches (no host sync):
//   moe_route_kernel     one warp per token: softmax over E (<= 256), top-k by repeated warp
//                        argmax (ties -> lower expert), gates renormalised over the k chosen,
//                        counts[e] += 1 (atomics)
//   moe_scan_kernel      offsets = exclusive prefix sum of counts, cursors = 0
//   moe_dispatch_kernel  one warp per token: row = offsets[e] + atomicAdd(cursor[e]); perm/inv;
//                        the token's row is copied into the expert-grouped buffer at `row`
//                        (xs == nullptr: no copy; the fused layer0 kernel moves the rows).
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
  int64_t dst_row[8];
#pragma unroll
  for (int s = 0; s < 8; ++s) {
    if (s >= topk) break;
    int64_t flat = (int64_t)warp * topk + s;
    int64_t row = 0;
    if (lane == 0) {
      int e = (int)idx[flat];
      row = offsets[e] + atomicAdd(cursors + e, 1);
      perm[row] = flat; inv[flat] = row;
    }
    dst_row[s] = __shfl_sync(0xffffffff, row, 0);
  }
  if (xs == nullptr) return;  // route only: the fused layer0 kernel's comm blocks move the rows
  // the token's row is read once (4 16-byte loads in flight per lane) and written to its k rows
  const uint4* src = x + (int64_t)warp * vec_per_row;
  for (int i = lane; i < vec_per_row; i += 128) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      if (i + 32 * u < vec_per_row) v[u] = src[i + 32 * u];
#pragma unroll
    for (int s = 0; s < 8; ++s) {
      if (s >= topk) break;
      uint4* dst = xs + dst_row[s] * vec_per_row;
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (i + 32 * u < vec_per_row) dst[i + 32 * u] = v[u];
    }
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

// ------------------------------------------------------------------ readiness flags
// The wrapper kernel copies its FlagCtx into shared memory; the mainloop's producer warp waits,
// before the first TMA load of tile (group g, row block m), until flags[g * max_mt + m] counts
// every row of the tile (min(128, M_g - 128 m)). A wait longer than timeout_ns sets *err and
// goes on (garbage in, an error reported by the host, never a hang).
struct FlagCtx {
  int* flags;
  int* err;
  int max_mt;
  int sys_scope;
  long long timeout_ns;
};


// ------------------------------------------------------------------ grouped GEMM (compute role)
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
constexpr int kTileM = 128;
__shared__ FlagCtx s_fctx;

// ---- tile schedule of the grouped GEMMs ------------------------------------------------------
// The order in which the persistent kernel hands out work items (clusters of CTA tiles) is
// computed per call on the device (moe_group_args_kernel fills a MoeSched from the expert
// offsets) and decoded item by item by MoeGroupScheduler; plan.tile_schedule is the reference.
//   heavy groups (> light M-clusters): group after group; N-clusters cut into strips of `strip`
//     columns, the M-clusters of one strip run one after another, so the strip's weight tiles
//     stay in L2 while every row block of the group passes (strip >= N-clusters: AlongM order);
//   light groups (1..light M-clusters: few rows per weight tile, HBM-bound tiles): units = all
//     M-clusters of one N-cluster, spread evenly over the heavy items (unit j before heavy item
//     floor((2j+1) H / (2U))), so their weight streaming overlaps the heavy groups' math.
constexpr int kMaxSchedGroups = 512;   // 256 experts x split-K 2
// Dynamic schedule (the *_dyn variants): the same item order, but a cluster takes its next item
// from a global counter when its math warps start the item before (s_dyn_fetched: at most
// kDynAhead items taken and not yet started) instead of every `clusters`-th item: clusters that
// run ahead or behind (drift, comm blocks joining late, light tiles) no longer leave a tail, and
// neighbouring items (the row tiles of one weight strip) start close together in time. The
// cluster's first CTA takes the item and posts it in the cluster's mailbox ring (kDynRing slots,
// tagged with a sequence number) for the others. Chosen at compile time (the kernels of the
// dynamic variants are instantiated over ProblemShapeDyn, which selects MoeGroupScheduler<..,
// true>), so the static kernels compile exactly as before.
constexpr int kDynAhead = 1;
constexpr int kDynRing = 16;
__shared__ int s_dyn_fetched;   // items the first math warp group has fetched (dynamic schedule)
// the grouped problem shape of the dynamic-schedule kernels (same layout; only selects the scheduler)
struct ProblemShapeDyn : ProblemShape {};
struct MoeSched {
  long long heavy_items;   // H
  long long light_units;   // U = nlight * ntc
  long long items;         // H + light items
  int ntc, strip, nheavy, nlight;
  int split;               // GEMM2 split-K applied in this call (read by the combine)
  long long* prof;         // per-CTA [start ns, end ns, tiles] when not null (CTA timing profile)
  // gang order (the *_gang variants; 0 = off in this call): the M-clusters that share one weight
  // strip (group g, N-cluster nc) form a gang; gangs are packed into waves of `clusters` slots
  // without straddling a wave (holes where one does not fit), and every CTA of a gang waits at its
  // first TMA load until all of them arrived (cnt[g * ntc + nc] == need[g]), so the gang reads its
  // weight strip together and L2 serves the followers (without it the strips' readers drift apart
  // and GEMM2 re-reads its weights ~2.4x from DRAM at T=2048: RESULTS part 5).
  int gang, ngang, cm, cn;
  long long dyn_wait_ns;   // longest wait of a CTA for its cluster's mailbox (then trap)
  long long* dbuf;         // [1 + clusters * kDynRing]: the item counter, then the mailboxes (zeroed per call)
  long long slots;
  long long* gang_start;   // [ngang] first slot of each gang (ascending)
  int* gang_g; int* gang_nc; int* gang_mtc;
  int* cnt;                // [groups * ntc] arrivals (zeroed per call)
  int* need;               // [groups] CTAs per gang of group g (0: no wait)
  int hgrp[kMaxSchedGroups], hmtc[kMaxSchedGroups];
  long long hoff[kMaxSchedGroups + 1];
  int lgrp[kMaxSchedGroups], lmtc[kMaxSchedGroups];
  long long loff[kMaxSchedGroups + 1];
};

// light items in units 0..c-1
__device__ __forceinline__ long long sched_light_before(MoeSched const* s, long long c) {
  long long i = c / s->ntc, r = c - i * s->ntc;
  return s->loff[i] + (r ? r * s->lmtc[i] : 0);
}
__device__ __forceinline__ long long sched_unit_start(MoeSched const* s, long long j) {
  return (2 * j + 1) * s->heavy_items / (2 * s->light_units) + sched_light_before(s, j);
}
// item p -> (group, m-cluster, n-cluster); false past the end
__device__ bool sched_item(MoeSched const* s, long long p, int& g, int& mc, int& nc) {
  if (p < 0 || p >= s->items) return false;
  long long lo = 0, hi = s->light_units;
  while (lo < hi) {
    long long mid = (lo + hi) >> 1;
    if (sched_unit_start(s, mid) <= p) lo = mid + 1; else hi = mid;
  }
  if (lo) {
    long long j = lo - 1, st = sched_unit_start(s, j);
    int li = int(j / s->ntc);
    if (p < st + s->lmtc[li]) {
      g = s->lgrp[li]; mc = int(p - st); nc = int(j - (long long)li * s->ntc);
      return true;
    }
  }
  long long h = p - sched_light_before(s, lo);
  int a = 0, b = s->nheavy - 1;
  while (a < b) {
    int mid = (a + b + 1) >> 1;
    if (s->hoff[mid] <= h) a = mid; else b = mid - 1;
  }
  int mtc = s->hmtc[a];
  long long local = h - s->hoff[a];
  long long w = min(s->strip, s->ntc), per = (long long)mtc * w;
  long long st = local / per, r = local - st * per;
  g = s->hgrp[a]; mc = int(r % mtc); nc = int(st * w + r / mtc);
  return true;
}

// gang order: slot p -> (group, m-cluster, n-cluster): 1 valid, 2 a hole, 0 past the end
__device__ int sched_gang_slot(MoeSched const* s, long long p, int& g, int& mc, int& nc) {
  if (p < 0 || p >= s->slots || s->ngang <= 0) return 0;
  int a = 0, b = s->ngang - 1;
  while (a < b) {
    int mid = (a + b + 1) >> 1;
    if (s->gang_start[mid] <= p) a = mid; else b = mid - 1;
  }
  long long off = p - s->gang_start[a];
  if (off < 0 || off >= s->gang_mtc[a]) return 2;
  g = s->gang_g[a]; nc = s->gang_nc[a]; mc = int(off);
  return 1;
}

// Dynamic schedule, lane 0 of a CTA's scheduler warp: the cluster's item number `seq` + 1 (0-based
// `seq` counts this CTA's earlier dynamic items). Not inlined: its registers stay out of the
// kernel's allocation (inlined, it made every kernel spill 60 bytes, static schedule included).
__device__ __noinline__ long long moe_dyn_next_item(MoeSched const* sched, long long cid, long long seq,
                                                    long long clusters, bool first_cta, int cluster_size) {
  // throttle: take the next item only when at most kDynAhead taken items are not yet started (the
  // math warps fetch an item when they start it; the zero is written before the first post, which
  // their first fetch waits for)
  volatile int* fetched = &s_dyn_fetched;
  if (seq == 0) *fetched = 0;
  while (seq - *fetched >= kDynAhead) __nanosleep(64);
  long long* box = sched->dbuf + 1 + cid * kDynRing + (seq + 1) % kDynRing;
  const long long tag = seq + 1;
  if (first_cta) {
    long long it = clusters + (long long)atomicAdd(reinterpret_cast<unsigned long long*>(sched->dbuf), 1ull);
    if (cluster_size > 1) {
      long long v = (tag << 32) | it;
      asm volatile("st.release.gpu.global.b64 [%0], %1;" :: "l"(box), "l"(v) : "memory");
    }
    return it;
  }
  // the first CTA is at most a few items ahead (the cluster's CTAs share operand tiles by
  // multicast), so its post lands within a tile or two, unless its math waits on readiness flags
  // (layer0: bounded waits); longer than dyn_wait_ns is a bug: trap (a launch error for the
  // host), never a hang
  long long v, t0 = globaltimer_ns();
  for (;;) {
    asm volatile("ld.acquire.gpu.global.b64 %0, [%1];" : "=l"(v) : "l"(box) : "memory");
    if ((v >> 32) == tag) return v & 0xffffffffLL;
    __nanosleep(32);
    if (globaltimer_ns() - t0 > sched->dyn_wait_ns) __trap();
  }
}

// CUTLASS's group scheduler with the item order above. The grid is (cluster_m, cluster_n x
// clusters); cluster c takes items c, c + clusters, ... (static persistent schedule, like the
// stock scheduler), its CTAs the tiles of the item's cluster.
template <class GroupProblemShape, int Stages, bool kDyn = false>
class MoeGroupScheduler : public cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90Group<GroupProblemShape, Stages> {
  using Base = cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90Group<GroupProblemShape, Stages>;
  long long item_ = 0, step_ = 1, seq_ = 0, cid_ = 0;
  int off_m_ = 0, off_n_ = 0, cm_ = 1, cn_ = 1;
  MoeSched const* sched_ = nullptr;
  long long* prof_ = nullptr;
  int tiles_ = 1;

  CUTLASS_DEVICE int cta_index() const { return int(blockIdx.x + blockIdx.y * gridDim.x); }

 public:
  using WorkTileInfo = typename Base::WorkTileInfo;
  using SchedulerResponse = typename Base::SchedulerResponse;
  struct Arguments : Base::Arguments { MoeSched const* sched = nullptr; };
  struct Params : Base::Params { MoeSched const* sched = nullptr; };

  template <class TileShape, class ClusterShape>
  static Params to_underlying_arguments(GroupProblemShape problem_shapes, TileShape tile_shape, ClusterShape cluster_shape,
                                        cutlass::KernelHardwareInfo const& hw_info, Arguments const& arguments,
                                        void* workspace = nullptr, const uint32_t = 1, uint32_t = 1) {
    Params p;
    static_cast<typename Base::Params&>(p) =
        Base::to_underlying_arguments(problem_shapes, tile_shape, cluster_shape, hw_info, arguments, workspace);
    p.sched = arguments.sched;
    return p;
  }

  template <class TileShape, class ClusterShape>
  CUTLASS_HOST_DEVICE static dim3 get_grid_shape(Params const& params, GroupProblemShape const& problem_shapes,
                                                 TileShape tile_shape, ClusterShape cluster_shape,
                                                 cutlass::KernelHardwareInfo hw_info, Arguments arguments, bool = true) {
    dim3 g = Base::get_grid_shape(params, problem_shapes, tile_shape, cluster_shape, hw_info, arguments);
    int cm = size<0>(cluster_shape), cn = size<1>(cluster_shape);
    int clusters = int(g.x * g.y * g.z) / (cm * cn);
    return dim3(cm, cn * clusters, 1);
  }

  MoeGroupScheduler() = default;
  CUTLASS_DEVICE MoeGroupScheduler(Params const& params, SchedulerResponse* response)
      : Base(params, response), sched_(params.sched) {
    cm_ = params.cluster_shape_.m(); cn_ = params.cluster_shape_.n();
    off_m_ = int(blockIdx.x) % cm_; off_n_ = int(blockIdx.y) % cn_;
    item_ = cid_ = int(blockIdx.y) / cn_;
    step_ = (long long)gridDim.y / cn_;
    prof_ = sched_->prof;
    if (prof_ != nullptr && threadIdx.x == 0) prof_[3 * cta_index()] = globaltimer_ns();
  }

  // the first math thread records when its CTA runs out of tiles (profile)
  template <class Pipe, class State>
  CUTLASS_DEVICE auto fetch_next_work(WorkTileInfo w, Pipe& pipeline, State state) {
    auto r = Base::fetch_next_work(w, pipeline, state);
    // the first math thread counts its fetches (the dynamic schedule's throttle reads them)
    if constexpr (kDyn)
      if (threadIdx.x == cutlass::NumThreadsPerWarpGroup) atomicAdd(&s_dyn_fetched, 1);
    if (prof_ != nullptr && threadIdx.x == cutlass::NumThreadsPerWarpGroup) {
      if (get<0>(r).is_valid()) {
        ++tiles_;
      } else {
        prof_[3 * cta_index() + 1] = globaltimer_ns();
        prof_[3 * cta_index() + 2] = tiles_;
      }
    }
    return r;
  }

  // the work of item_ (gang order: item_ first moves past holes, by whole steps)
  CUTLASS_DEVICE WorkTileInfo work_for_item() {
    int g, mc, nc;
    if (sched_->gang) {
      for (;;) {
        int r = sched_gang_slot(sched_, item_, g, mc, nc);
        if (r == 0) return WorkTileInfo::invalid_work_tile();
        if (r == 1) break;
        item_ += step_;
      }
    } else if (!sched_item(sched_, item_, g, mc, nc)) {
      return WorkTileInfo::invalid_work_tile();
    }
    return {mc * cm_ + off_m_, nc * cn_ + off_n_, g, 1};
  }

  template <class ClusterShape>
  CUTLASS_DEVICE auto initial_work_tile_info(ClusterShape) { return work_for_item(); }

  template <typename Pipe, typename State>
  CUTLASS_DEVICE auto advance_to_next_work(Pipe& pipeline, State state, uint32_t advance_count = 1) {
    if constexpr (kDyn) {
      pipeline.producer_acquire(state);
      long long it = 0;
      if ((threadIdx.x & 31) == 0) it = moe_dyn_next_item(sched_, cid_, seq_++, step_, off_m_ == 0 && off_n_ == 0, cm_ * cn_);
      item_ = __shfl_sync(0xffffffff, it, 0);
    } else {
      item_ += step_ * advance_count;
    }
    auto work = work_for_item();
    if constexpr (!kDyn) pipeline.producer_acquire(state);
    if (cute::elect_one_sync()) {
      this->response_ptr_[state.index()] = work;
      cutlass::arch::fence_view_async_shared();
      pipeline.producer_commit(state);
    }
    return cute::make_tuple(work, true);
  }
};

// every grouped GEMM of this file (problem shape `ProblemShape`) takes MoeGroupScheduler
namespace cutlass::gemm::kernel::detail {
template <class TileShape, class ClusterShape, uint32_t Stages>
struct TileSchedulerSelector<GroupScheduler, arch::Sm90, TileShape, ClusterShape, Stages, ::ProblemShape> {
  using Scheduler = ::MoeGroupScheduler<::ProblemShape, int(Stages)>;
};
template <class TileShape, class ClusterShape, uint32_t Stages>
struct TileSchedulerSelector<GroupScheduler, arch::Sm90, TileShape, ClusterShape, Stages, ::ProblemShapeDyn> {
  using Scheduler = ::MoeGroupScheduler<::ProblemShapeDyn, int(Stages), true>;
};
}  // namespace cutlass::gemm::kernel::detail

// The sched of the gang-order handle whose GEMM runs next: its group-args kernel sets it (stream
// order: read by that GEMM's producer warps), so no CUTLASS argument carries it.
__device__ MoeSched const* g_gang_sched = nullptr;

// Mainloop of the *_gang variants: before the first TMA load of a tile, the producer warp counts
// its CTA into the tile's gang and waits (bounded: 20 ms, then it goes on; the wait orders nothing
// that results depend on) until every CTA of the gang has arrived.
template <class Base>
struct GangMainloop : Base {
  using Base::Base;
  int gang_group_ = 0;

  template <class Storage, class P, class TM, class PS>
  CUTLASS_DEVICE void tensormaps_perform_update(Storage& s, P const& p, TM const& tm, PS ps, int32_t next_batch) {
    gang_group_ = next_batch;
    Base::tensormaps_perform_update(s, p, tm, ps, next_batch);
  }

  template <class P, class Pipe, class State, class LI, class TM, class BC, class KI, class Storage>
  CUTLASS_DEVICE void load(P const& mp, Pipe pipeline, State st, LI const& li, TM const& tm, BC const& bc,
                           KI k_iter, int k_count, int thread_idx, uint32_t rank, Storage& ts) {
    MoeSched const* s = g_gang_sched;
    if (s != nullptr && s->gang) {
      int need = s->need[gang_group_];
      if (need > 0) {
        if (cute::elect_one_sync()) {
          int* c = s->cnt + (int64_t)gang_group_ * s->ntc + int(get<1>(bc)) / s->cn;
          atomicAdd(c, 1);
          wait_at_least(c, need, 0, 20000000LL, nullptr, 0);
        }
        __syncwarp();
      }
    }
    Base::load(mp, pipeline, st, li, tm, bc, k_iter, k_count, thread_idx, rank, ts);
  }
};

template <class Base>
struct FlaggedMainloop : Base {
  using Base::Base;
  int flag_group_ = 0;
  int flag_rows_ = 0;

  template <class Storage, class P, class TM, class PS>
  CUTLASS_DEVICE void tensormaps_perform_update(Storage& s, P const& p, TM const& tm, PS ps, int32_t next_batch) {
    flag_group_ = next_batch;
    flag_rows_ = int(get<0>(ps));
    Base::tensormaps_perform_update(s, p, tm, ps, next_batch);
  }

  template <class P, class Pipe, class State, class LI, class TM, class BC, class KI, class Storage>
  CUTLASS_DEVICE void load(P const& mp, Pipe pipeline, State st, LI const& li, TM const& tm, BC const& bc,
                           KI k_iter, int k_count, int thread_idx, uint32_t rank, Storage& ts) {
    if (s_fctx.flags != nullptr) {
      int m = int(get<0>(bc));
      if (cute::elect_one_sync()) {
        int need = min(kTileM, flag_rows_ - m * kTileM);
        wait_at_least(s_fctx.flags + (int64_t)flag_group_ * s_fctx.max_mt + m, need, s_fctx.sys_scope,
                      s_fctx.timeout_ns, s_fctx.err, 1);
        // rows were written by ordinary stores (generic proxy); the TMA engine reads them next
        asm volatile("fence.proxy.async.global;" ::: "memory");
      }
      __syncwarp();
    }
    Base::load(mp, pipeline, st, li, tm, bc, k_iter, k_count, thread_idx, rank, ts);
  }
};

// ---- GEMM1 epilogue with the SwiGLU fused ---------------------------------------------------
// B's rows (the N dimension) are [w1 | w3] interleaved in blocks of 8: block 2b = w1 columns
// 8b..8b+7, block 2b+1 = the same w3 columns. In the wgmma accumulator layout a thread holds
// columns {2q, 2q+1} + 8j, so a gate value (j even) and its up value (j + 1) sit in one thread's
// registers: h = silu(gate) * up is computed there and written at half width (bf16x2 stores),
// so GEMM1 writes [rows, F] instead of [rows, 2F] and no separate SwiGLU pass runs.

struct SwigluPairArgs {
  Element** ptr_D = nullptr;   // per group: h rows of the group, row stride ldd
  int64_t ldd = 0;             // F (half of GEMM1's N)
  int scalar_stores = 0;       // 1: one bf16x2 store per value pair (the first version; kept for A/B timing)
  int silu_tanh = 0;           // 1: silu through tanh.approx (one MUFU op per value instead of two)
};

// silu(g) * u. kTanh: g sigmoid(g) = h + h tanh(h), h = g / 2 (tanh.approx: one MUFU op; rel.
// error ~2^-11, under bf16's 2^-8 rounding of the result); else ex2 + rcp (two MUFU ops)
template <bool kTanh = false>
__device__ __forceinline__ float silu_mul(float g, float u) {
  if constexpr (kTanh) {
    const float h = 0.5f * g;
    float t;
    asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(h));
    return fmaf(h, t, h) * u;
  } else {
    return __fdividef(g, 1.f + __expf(-g)) * u;
  }
}
__device__ __forceinline__ uint32_t pack_bf16x2(float a, float b) {
  __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&v);
}

struct SwigluPairEpilogue : RegisterEpilogue<SwigluPairArgs> {
  using RegisterEpilogue::RegisterEpilogue;
  template <class PS> static bool can_implement(PS const&, Arguments const& a) { return a.ldd % 8 == 0; }

  // The cooperative kernel's math warps run this between two tiles' mainloops, so its time is
  // tensor-core idle time. A thread holds, per row, output columns {2q, 2q+1} + 8 jp (q = lane
  // % 4): one 4-byte pair per 8-column block. Four lanes of a quad exchange their pairs of four
  // consecutive blocks (a 4x4 transpose, 4 shuffles) so each lane stores 8 consecutive columns
  // with one 16-byte store: a quarter of the store instructions, whole 32-byte sectors.
  template <class PS, class BS, class BC, class FE, class FL, class TiledMma, class Res>
  CUTLASS_DEVICE void operator()(PS problem_shape_mnkl, BS blk_shape, BC blk_coord, cute::Tensor<FE, FL> const& acc,
                                 TiledMma tiled_mma, Res, int thread_idx, char*) {
    static_assert(decltype(size<0, 0>(acc))::value == 2 && decltype(size<0, 1>(acc))::value == 2,
                  "expects the wgmma accumulator layout ((2,2,N/8), MMA_M, MMA_N)");
    constexpr int NJ = decltype(size<0, 2>(acc))::value;
    static_assert(NJ % 8 == 0, "tile N must be a multiple of 64");
    const int M = int(get<0>(problem_shape_mnkl)), N = int(get<1>(problem_shape_mnkl));
    auto [m_coord, n_coord, k_coord, l_coord] = blk_coord;
    const int m0 = int(m_coord) * int(size<0>(blk_shape)), n0 = int(n_coord) * int(size<1>(blk_shape));
    __nv_bfloat16* D = reinterpret_cast<__nv_bfloat16*>(params.ptr_D[l_coord]);
    auto thr = tiled_mma.get_thread_slice(thread_idx);
    Tensor cD = make_identity_tensor(take<0, 2>(blk_shape));
    Tensor tC = thr.partition_C(cD);
    if (params.scalar_stores) {
      CUTLASS_PRAGMA_UNROLL
      for (int mm = 0; mm < size<1>(acc); ++mm)
        CUTLASS_PRAGMA_UNROLL
        for (int mn = 0; mn < size<2>(acc); ++mn)
          CUTLASS_PRAGMA_UNROLL
          for (int j = 0; j < NJ; j += 2)
            CUTLASS_PRAGMA_UNROLL
            for (int r = 0; r < 2; ++r) {
              auto c0 = make_coord(make_coord(0, r, j), mm, mn), c1 = make_coord(make_coord(1, r, j), mm, mn);
              auto u0 = make_coord(make_coord(0, r, j + 1), mm, mn), u1 = make_coord(make_coord(1, r, j + 1), mm, mn);
              int row = m0 + int(get<0>(tC(c0))), col = n0 + int(get<1>(tC(c0)));
              if (row < M && col < N) {
                int64_t oc = (col >> 4) * 8 + (col & 7);
                *reinterpret_cast<uint32_t*>(D + (int64_t)row * params.ldd + oc) =
                    pack_bf16x2(silu_mul(acc(c0), acc(u0)), silu_mul(acc(c1), acc(u1)));
              }
            }
      return;
    }
    const int q = thread_idx & 3;
    auto vector_stores = [&](auto tanh_c) {
    constexpr bool kTanh = decltype(tanh_c)::value;
    CUTLASS_PRAGMA_UNROLL
    for (int mm = 0; mm < size<1>(acc); ++mm) {
      CUTLASS_PRAGMA_UNROLL
      for (int mn = 0; mn < size<2>(acc); ++mn) {
        CUTLASS_PRAGMA_UNROLL
        for (int r = 0; r < 2; ++r) {
          const int row = m0 + int(get<0>(tC(make_coord(make_coord(0, r, 0), mm, mn))));
          // tile column of block 0 of this thread, minus its 2q: the tile's column origin
          const int cb = n0 + int(get<1>(tC(make_coord(make_coord(0, r, 0), mm, mn)))) - 2 * q;
          CUTLASS_PRAGMA_UNROLL
          for (int b = 0; b < NJ / 8; ++b) {
            uint32_t w[4];
            CUTLASS_PRAGMA_UNROLL
            for (int i = 0; i < 4; ++i) {
              const int j = 2 * (4 * b + i);   // gate block; j + 1 is its up block
              w[i] = pack_bf16x2(silu_mul<kTanh>(acc(make_coord(make_coord(0, r, j), mm, mn)),
                                                 acc(make_coord(make_coord(0, r, j + 1), mm, mn))),
                                 silu_mul<kTanh>(acc(make_coord(make_coord(1, r, j), mm, mn)),
                                                 acc(make_coord(make_coord(1, r, j + 1), mm, mn))));
            }
            // 4x4 transpose in the quad: afterwards lane q holds block 4b+q of lanes 0..3, i.e.
            // output columns 8(4b+q) .. 8(4b+q)+7 of the tile, in order
            CUTLASS_PRAGMA_UNROLL
            for (int m = 2; m >= 1; m >>= 1) {
              const bool upper = (q & m) != 0;
              CUTLASS_PRAGMA_UNROLL
              for (int i0 = 0; i0 < 4; ++i0) {
                if (i0 & m) continue;
                const int i1 = i0 | m;
                uint32_t got = __shfl_xor_sync(0xffffffff, upper ? w[i0] : w[i1], m);
                if (upper) w[i0] = got; else w[i1] = got;
              }
            }
            // gate columns of block 4b+q: cb + 16 (4b+q) .. +7 (its up columns follow); N is a
            // multiple of 16, so a block is wholly inside or outside the problem
            const int gcol = cb + 16 * (4 * b + q);
            if (row < M && gcol < N) {
              int64_t oc = (int64_t)(gcol >> 1);
              *reinterpret_cast<uint4*>(D + (int64_t)row * params.ldd + oc) = make_uint4(w[0], w[1], w[2], w[3]);
            }
          }
        }
      }
    }
    };
    if (params.silu_tanh) vector_stores(cute::true_type{});
    else vector_stores(cute::false_type{});
  }
};

// ---- GEMM2 epilogue with the combine fused (top-k <= 2) -------------------------------------
// Row r of group g is send row R = offsets[g] + r, the (token, slot) flat = perm[R]; the
// epilogue adds gate[flat] * y into out[flat / k] with bf16x2 atomics (red.add.noftz.bf16x2),
// so y never reaches memory and no combine pass runs. With k <= 2 a token gets two adds, the
// first onto zero (exact), and bf16 addition commutes: the result does not depend on order.
struct CombineArgs {
  __nv_bfloat16* out;
  const int64_t* perm;
  const float* gates;
  const int64_t* offsets;
  int64_t ldo;
  int topk;
};

struct CombineArgsRef {
  const CombineArgs* args = nullptr;  // device memory, rewritten before each call (graph-safe)
};

struct CombineEpilogue : RegisterEpilogue<CombineArgsRef> {
  using RegisterEpilogue::RegisterEpilogue;
  template <class PS> static bool can_implement(PS const&, Arguments const& a) { return a.args != nullptr; }

  template <class PS, class BS, class BC, class FE, class FL, class TiledMma, class Res>
  CUTLASS_DEVICE void operator()(PS problem_shape_mnkl, BS blk_shape, BC blk_coord, cute::Tensor<FE, FL> const& acc,
                                 TiledMma tiled_mma, Res, int thread_idx, char*) {
    static_assert(decltype(size<0, 0>(acc))::value == 2 && decltype(size<0, 1>(acc))::value == 2,
                  "expects the wgmma accumulator layout ((2,2,N/8), MMA_M, MMA_N)");
    constexpr int NJ = decltype(size<0, 2>(acc))::value;
    const CombineArgs a = *params.args;
    const int M = int(get<0>(problem_shape_mnkl)), N = int(get<1>(problem_shape_mnkl));
    auto [m_coord, n_coord, k_coord, l_coord] = blk_coord;
    const int m0 = int(m_coord) * int(size<0>(blk_shape)), n0 = int(n_coord) * int(size<1>(blk_shape));
    const int64_t r0 = a.offsets[l_coord];
    auto thr = tiled_mma.get_thread_slice(thread_idx);
    Tensor cD = make_identity_tensor(take<0, 2>(blk_shape));
    Tensor tC = thr.partition_C(cD);
    CUTLASS_PRAGMA_UNROLL
    for (int mm = 0; mm < size<1>(acc); ++mm) {
      CUTLASS_PRAGMA_UNROLL
      for (int r = 0; r < 2; ++r) {
        auto c00 = make_coord(make_coord(0, r, 0), mm, 0);
        int row = m0 + int(get<0>(tC(c00)));
        if (row >= M) continue;
        int64_t flat = a.perm[r0 + row];
        float g = a.gates[flat];
        __nv_bfloat16* orow = a.out + (flat / a.topk) * a.ldo;
        CUTLASS_PRAGMA_UNROLL
        for (int mn = 0; mn < size<2>(acc); ++mn) {
          CUTLASS_PRAGMA_UNROLL
          for (int j = 0; j < NJ; ++j) {
            auto c0 = make_coord(make_coord(0, r, j), mm, mn);
            auto c1 = make_coord(make_coord(1, r, j), mm, mn);
            int col = n0 + int(get<1>(tC(c0)));
            if (col < N) {
              __nv_bfloat162 v = __floats2bfloat162_rn(g * acc(c0), g * acc(c1));
              asm volatile("red.global.add.noftz.bf16x2 [%0], %1;" ::"l"(orow + col),
                           "r"(*reinterpret_cast<uint32_t*>(&v)) : "memory");
            }
          }
        }
      }
    }
  }

};


template <class TileShape_, class ClusterShape_, class KernelSchedule_, class EpilogueSchedule_, bool kGang_ = false,
          bool kDyn_ = false>
struct GroupedGemm {
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape_, ClusterShape_,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, LayoutD*, kAlign, Element, LayoutD*, kAlign, EpilogueSchedule_,
      cutlass::epilogue::fusion::LinearCombination<Element, float, void>>::CollectiveOp;
  using PlainMainloop = GroupedMainloop<TileShape_, ClusterShape_, CollectiveEpilogue, KernelSchedule_>;
  using CollectiveMainloop = std::conditional_t<kGang_, GangMainloop<PlainMainloop>, PlainMainloop>;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<std::conditional_t<kDyn_, ProblemShapeDyn, ProblemShape>,
                                                      CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  static constexpr bool kPair = false;
  static constexpr bool kCombine = false;
  static constexpr bool kGang = kGang_;
  static constexpr bool kDyn = kDyn_;
  static constexpr int kClusterSize = size(ClusterShape_{});
};

// GEMM2 + combine (CombineEpilogue), plain mainloop.
template <class ClusterShape_>
struct CombGemm {
  using TileShape_ = Shape<_128, _256, _64>;
  using CollectiveEpilogue = cutlass::epilogue::collective::detail::Sm90TmaWarpSpecializedAdapter<CombineEpilogue>;
  using CollectiveMainloop = GroupedMainloop<TileShape_, ClusterShape_, CollectiveEpilogue>;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  static constexpr bool kPair = false;
  static constexpr bool kCombine = true;
  static constexpr bool kGang = false;
  static constexpr bool kDyn = false;
  static constexpr int kClusterSize = size(ClusterShape_{});
};

// GEMM1 + SwiGLU (pair epilogue) with the flag-waiting mainloop: the layer0 compute role.
template <class ClusterShape_, bool kGang_ = false, bool kDyn_ = false>
struct PairGemm {
  using TileShape_ = Shape<_128, _256, _64>;
  using CollectiveEpilogue = cutlass::epilogue::collective::detail::Sm90TmaWarpSpecializedAdapter<SwigluPairEpilogue>;
  using BaseMainloop = GroupedMainloop<TileShape_, ClusterShape_, CollectiveEpilogue>;
  using CollectiveMainloop = FlaggedMainloop<std::conditional_t<kGang_, GangMainloop<BaseMainloop>, BaseMainloop>>;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<std::conditional_t<kDyn_, ProblemShapeDyn, ProblemShape>,
                                                      CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  static constexpr bool kPair = true;
  static constexpr bool kCombine = false;
  static constexpr bool kGang = kGang_;
  static constexpr bool kDyn = kDyn_;
  static constexpr int kClusterSize = size(ClusterShape_{});
};

using Coop = GroupedGemm<Shape<_128, _256, _64>, Shape<_2, _1, _1>,
                         cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                         cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
using CoopC12 = GroupedGemm<Shape<_128, _256, _64>, Shape<_1, _2, _1>,
                            cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                            cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
using CoopC11 = GroupedGemm<Shape<_128, _256, _64>, Shape<_1, _1, _1>,
                            cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                            cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
using CoopC22 = GroupedGemm<Shape<_128, _256, _64>, Shape<_2, _2, _1>,
                            cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                            cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
// GEMM2 candidate: 128x128 tiles (twice the tiles of 128x256 at N = 4096: 8.7 waves at T=2048
// without split-K, so no second half to fold)
using CoopC12N128 = GroupedGemm<Shape<_128, _128, _64>, Shape<_1, _2, _1>,
                                cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                                cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
// gang order (MoeSched::gang): the default GEMM2 / GEMM1 kernels with gang-waiting mainloops
using CoopC12Gang = GroupedGemm<Shape<_128, _256, _64>, Shape<_1, _2, _1>,
                                cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                                cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative, true>;
using Pair12Gang = PairGemm<Shape<_1, _2, _1>, true>;
using Pair21 = PairGemm<Shape<_2, _1, _1>>;
using Pair12 = PairGemm<Shape<_1, _2, _1>>;
using Pair22 = PairGemm<Shape<_2, _2, _1>>;  // A and B both multicast: half the L2->SMEM traffic per CTA
using Comb21 = CombGemm<Shape<_2, _1, _1>>;
// dynamic tile schedule (MoeGroupScheduler<.., true>): the default GEMM1 / GEMM2 kernels and their
// cluster-2x1 forms
using CoopC12Dyn = GroupedGemm<Shape<_128, _256, _64>, Shape<_1, _2, _1>,
                               cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                               cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative, false, true>;
using CoopDyn = GroupedGemm<Shape<_128, _256, _64>, Shape<_2, _1, _1>,
                            cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                            cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative, false, true>;
using Pair12Dyn = PairGemm<Shape<_1, _2, _1>, false, true>;
using Pair21Dyn = PairGemm<Shape<_2, _1, _1>, false, true>;

// ---- layer0 comm role (thread-block isolation) ---------------------------------------------
// The last comm_clusters clusters of the launch are comm blocks: before joining the grouped
// GEMM they move token rows, at token granularity, from x into the expert-input buffer of the
// PE owning the expert (peer pointers of an NVSHMEM symmetric buffer; the own buffer when
// ep == 1) and add the number of rows landed to that tile's readiness flag (release). Rows
// whose destination is this PE go first (local-first), then the other PEs in ring order.
struct CommDesc {
  const uint4* x;              // [T, H/8] this PE's tokens
  const int64_t* idx;          // [T, k] global expert of each (token, slot)
  const int64_t* perm;         // send row -> flat slot (token * k + s); send rows grouped by expert
  const int64_t* send_off;     // [E + 1] send-layout offsets
  const int64_t* abs_base;     // [E] first row of this PE's rows for expert e in the owner's buffer
  const int64_t* grp_base;     // [E] same, counted from the start of the owner's group
  uint4* peer_xs[8];           // expert-input buffer of each PE
  int* peer_flags[8];          // tile flags of each PE, [epr * max_mt]
  int rows, vec, topk, experts, ep, me, max_mt, sys_scope;
};

__device__ void comm_role(CommDesc const& c, int cta, int ctas) {
  constexpr int kChunk = 4;  // rows per warp between flag updates
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int epr = c.experts / c.ep;
  const int64_t start = c.send_off[c.me * epr];  // local-first: rotate the send rows
  const int64_t nchunks = (c.rows + kChunk - 1) / kChunk;
  for (int64_t ch = (int64_t)cta * nwarps + warp; ch < nchunks; ch += (int64_t)ctas * nwarps) {
    int* fl[kChunk];
    int nf = 0;
#pragma unroll
    for (int q = 0; q < kChunk; ++q) {
      fl[q] = nullptr;
      int64_t rr = ch * kChunk + q;
      if (rr >= c.rows) break;
      int64_t r = (rr + start) % c.rows;
      int64_t flat = c.perm[r];
      int e = (int)c.idx[flat];
      int p = e / epr, j = e - p * epr;
      int64_t i = r - c.send_off[e];
      const uint4* src = c.x + (flat / c.topk) * (int64_t)c.vec;
      uint4* dst = c.peer_xs[p] + (c.abs_base[e] + i) * (int64_t)c.vec;
      for (int v = lane; v < c.vec; v += 128) {
        uint4 a0 = src[v], a1, a2, a3;
        if (v + 32 < c.vec) a1 = src[v + 32];
        if (v + 64 < c.vec) a2 = src[v + 64];
        if (v + 96 < c.vec) a3 = src[v + 96];
        dst[v] = a0;
        if (v + 32 < c.vec) dst[v + 32] = a1;
        if (v + 64 < c.vec) dst[v + 64] = a2;
        if (v + 96 < c.vec) dst[v + 96] = a3;
      }
      fl[q] = c.peer_flags[p] + (int64_t)j * c.max_mt + (c.grp_base[e] + i) / kTileM;
      nf = q + 1;
    }
    __syncwarp();
    if (lane == 0) {
      // every lane's stores are ordered before the flag by the warp barrier + the release
      if (c.sys_scope) __threadfence_system(); else __threadfence();
      for (int q = 0; q < nf;) {
        int n = 1;
        while (q + n < nf && fl[q + n] == fl[q]) ++n;
        red_release_add(fl[q], n, c.sys_scope);
        q += n;
      }
    }
    __syncwarp();
  }
}

template <class GemmKernel>
__global__ void __launch_bounds__(GemmKernel::MaxThreadsPerBlock, GemmKernel::MinBlocksPerMultiprocessor)
moe_layer0_kernel(CUTLASS_GRID_CONSTANT typename GemmKernel::Params const params, CommDesc const comm,
                  FlagCtx const fctx, int comm_clusters) {
  // dynamic smem after the 32-byte static FlagCtx: keep CUTLASS's 128-byte (TMA/swizzle) alignment
  extern __shared__ __align__(1024) char smem[];
  if (threadIdx.x == 0) s_fctx = fctx;
  if (comm_clusters > 0) {
    // cluster index over the grid; clusters never mix roles
    dim3 cs = cute::cluster_shape();
    int csize = cs.x * cs.y * cs.z;
    int cl = blockIdx.x / cs.x + (blockIdx.y / cs.y) * (gridDim.x / cs.x);
    // the LAST clusters: the static persistent schedule gives them one tile fewer whenever the
    // tile count is not a multiple of the grid, so part of the comm time is slack
    int first_comm = int(gridDim.x * gridDim.y) / csize - comm_clusters;
    if (cl >= first_comm) {
      int rank = cute::block_rank_in_cluster();
      comm_role(comm, (cl - first_comm) * csize + rank, comm_clusters * csize);
    }
  }
  __syncthreads();
  GemmKernel op;
  op(params, smem);
}

// Per call, on the device (no host sync): problem sizes and pointers of every group from the
// expert offsets, and the tile schedule (MoeSched). ksplit = 2 (GEMM2): the handle has 2 x E
// groups; group e + E*h is the K-half h of expert e (A and B advanced by h K/2 columns, same
// row strides; D slice h at d + h * rows * d_ld) when splitting pays (plan.split_k_pays on the
// whole-K item count), else group e takes the whole K and the second halves are empty.
struct SchedCfg {
  int cm, cn, tile_n, strip, light, clusters;
  long long* prof;
  int gang, max_gangs;     // gang order (handles of *_gang variants) and the size of its arrays
  long long* gang_start; int* gang_g; int* gang_nc; int* gang_mtc; int* cnt; int* need;
  long long dyn_wait_ns;   // mailbox wait bound: 2 s + 4 flag timeouts (layer0 flag waits delay the poster)
  long long* dbuf;         // dynamic-schedule kernels (G::kDyn) only: [1 + clusters * kDynRing]
};

__global__ void __launch_bounds__(256) moe_group_args_kernel(
    int groups, int ksplit, const int64_t* offsets, int n, int k,
    typename ProblemShape::UnderlyingProblemShape* shapes, const Element** pa, const Element** pb, Element** pd,
    const Element* a, const Element* b, Element* d, int64_t b_gstride, int64_t d_ld, MoeSched* sched, SchedCfg cfg) {
  __shared__ int s_mtc[kMaxSchedGroups];
  __shared__ int s_split;
  const int experts = groups / ksplit;
  const int ntc = ((n + cfg.tile_n - 1) / cfg.tile_n + cfg.cn - 1) / cfg.cn;
  auto mtc_of = [&](int64_t m) { return int(((m + kTileM - 1) / kTileM + cfg.cm - 1) / cfg.cm); };
  for (int e = threadIdx.x; e < experts; e += blockDim.x) s_mtc[e] = mtc_of(offsets[e + 1] - offsets[e]);
  __syncthreads();
  if (threadIdx.x == 0) {
    int split = 0;
    if (ksplit == 2) {
      long long items = 0;
      for (int e = 0; e < experts; ++e) items += (long long)s_mtc[e] * ntc;
      long long c = cfg.clusters;
      split = items > 0 && c > 0 && (2 * items + c - 1) / c < 2 * ((items + c - 1) / c);
    }
    s_split = split;
    // schedule over all groups (the second halves are empty without a split)
    int nh = 0, nl = 0;
    long long h = 0, l = 0;
    sched->hoff[0] = 0; sched->loff[0] = 0;
    for (int g = 0; g < groups; ++g) {
      int mtc = (g < experts || split) ? s_mtc[g % experts] : 0;
      if (mtc == 0) continue;
      if (mtc <= cfg.light) {
        sched->lgrp[nl] = g; sched->lmtc[nl] = mtc; l += (long long)mtc * ntc; sched->loff[++nl] = l;
      } else {
        sched->hgrp[nh] = g; sched->hmtc[nh] = mtc; h += (long long)mtc * ntc; sched->hoff[++nh] = h;
      }
    }
    sched->heavy_items = h; sched->light_units = (long long)nl * ntc; sched->items = h + l;
    sched->ntc = ntc; sched->strip = cfg.strip > 0 ? cfg.strip : ntc; sched->nheavy = nh; sched->nlight = nl;
    sched->split = split;
    sched->prof = cfg.prof;
    // gang order: heavy groups only (light units are spread over the heavy items instead)
    int gang = cfg.gang && nl == 0 && nh > 0 && (long long)groups * ntc <= cfg.max_gangs;
    if (gang) {
      const long long C = cfg.clusters;
      long long slot = 0;
      int ng = 0;
      for (int a = 0; a < nh; ++a) {
        const int g = sched->hgrp[a], mtc = sched->hmtc[a];
        cfg.need[g] = mtc <= C ? mtc * cfg.cm * cfg.cn : 0;   // a gang wider than a wave never waits
        for (int nc = 0; nc < ntc; ++nc) {
          if (mtc <= C && slot % C + mtc > C) slot += C - slot % C;   // no gang straddles a wave
          cfg.gang_start[ng] = slot; cfg.gang_g[ng] = g; cfg.gang_nc[ng] = nc; cfg.gang_mtc[ng] = mtc;
          ++ng;
          slot += mtc;
        }
      }
      sched->slots = slot; sched->ngang = ng;
      g_gang_sched = sched;
    } else {
      sched->slots = 0; sched->ngang = 0;
    }
    sched->gang = gang; sched->cm = cfg.cm; sched->cn = cfg.cn;
    sched->gang_start = cfg.gang_start; sched->gang_g = cfg.gang_g; sched->gang_nc = cfg.gang_nc;
    sched->gang_mtc = cfg.gang_mtc; sched->cnt = cfg.cnt; sched->need = cfg.need;
    sched->dbuf = cfg.dbuf;
    sched->dyn_wait_ns = cfg.dyn_wait_ns;
  }
  if (cfg.dbuf != nullptr)
    for (long long i = threadIdx.x; i < 1 + (long long)cfg.clusters * kDynRing; i += blockDim.x) cfg.dbuf[i] = 0;
  if (cfg.gang && cfg.cnt != nullptr)
    for (long long i = threadIdx.x; i < (long long)groups * ntc && i < cfg.max_gangs; i += blockDim.x) cfg.cnt[i] = 0;
  __syncthreads();
  const int split = s_split;
  const int64_t rows = offsets[experts];
  const int kk = split ? k / 2 : k;
  for (int g = threadIdx.x; g < groups; g += blockDim.x) {
    const int e = g % experts, half = g / experts;
    const int64_t r0 = offsets[e], m = (half == 0 || split) ? offsets[e + 1] - r0 : 0;
    shapes[g] = make_shape(int(m), n, kk);
    pa[g] = a + r0 * k + half * kk;
    pb[g] = b + (int64_t)e * b_gstride + half * kk;
    pd[g] = d + (half * rows + r0) * d_ld;
  }
}

__global__ void moe_set_combine_args_kernel(CombineArgs* dst, CombineArgs v) { *dst = v; }

struct GGBase {
  CombineArgs* cargs = nullptr;
  virtual ~GGBase() { if (cargs) cudaFree(cargs); }
  virtual int run(const int64_t*, const void*, const void*, void*, int64_t, void*, const CommDesc*, int,
                  const FlagCtx*) = 0;
  // strip: N-clusters per strip (<= 0 keeps the L2-sized default; huge = CUTLASS's AlongM order);
  // light: M-clusters up to which a group is light (0: none; < 0 keeps the default)
  virtual void set_schedule(int strip, int light) = 0;
  virtual void get_schedule(int* strip, int* light, int* clusters) = 0;
  virtual void set_scalar_stores(int v) = 0;
  virtual void set_silu_tanh(int v) = 0;
  virtual void set_profile(long long* prof) = 0;
  virtual const int* split_flag() = 0;
};

template <class G>
struct GG : GGBase {
  using Gemm = typename G::Gemm;
  using Kernel = typename Gemm::GemmKernel;
  using SA = typename Kernel::InternalStrideA;
  using SB = typename Kernel::InternalStrideB;
  using SD = typename Kernel::InternalStrideD;
  int groups, n, k, out_n, ksplit;
  MoeSched* sched = nullptr;
  SchedCfg cfg{};
  int scalar_stores = 0;
  int silu_tanh = 1;   // measured 1-2.5 % faster GEMM1 at T=2048, even at 8192 (2026-11-24 session 4)
  typename ProblemShape::UnderlyingProblemShape* shapes = nullptr;
  const Element** pa = nullptr; const Element** pb = nullptr; Element** pd = nullptr;
  SA* sa = nullptr; SB* sb = nullptr; SD* sd = nullptr;
  void* workspace = nullptr;
  Gemm gemm;
  int err = 0;

  GG(int experts, int n_, int k_, int device, int sm_count, int ksplit_)
      : groups(experts * ksplit_), n(n_), k(k_), ksplit(ksplit_) {
    out_n = G::kPair ? n / 2 : n;
    if (groups > kMaxSchedGroups || (ksplit != 1 && ksplit != 2) || (ksplit == 2 && (k % 16 || G::kPair || G::kCombine))) {
      err = -12;
      return;
    }
    cudaMalloc(&sched, sizeof(MoeSched));
    cudaMalloc(&shapes, sizeof(*shapes) * groups);
    cudaMalloc(&pa, sizeof(void*) * groups); cudaMalloc(&pb, sizeof(void*) * groups); cudaMalloc(&pd, sizeof(void*) * groups);
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
    cutlass::KernelHardwareInfo hw = cutlass::KernelHardwareInfo::make_kernel_hardware_info<Kernel>(device);
    // compute role on fewer SMs when comm blocks take the rest (thread-block isolation ratio)
    if (sm_count > 0 && sm_count < hw.sm_count) hw.sm_count = sm_count;
    typename G::CollectiveMainloop::Arguments ma{pa, sa, pb, sb};
    typename Gemm::Arguments args;
    if constexpr (G::kCombine) {
      cudaMalloc(&cargs, sizeof(CombineArgs));
      cudaMemset(cargs, 0, sizeof(CombineArgs));
      typename G::CollectiveEpilogue::Arguments ea{cargs};
      args = typename Gemm::Arguments{cutlass::gemm::GemmUniversalMode::kGrouped, {groups, shapes, nullptr},
                                      ma, ea, hw};
    } else if constexpr (G::kPair) {
      typename G::CollectiveEpilogue::Arguments ea{pd, (int64_t)out_n};
      args = typename Gemm::Arguments{cutlass::gemm::GemmUniversalMode::kGrouped, {groups, shapes, nullptr},
                                      ma, ea, hw};
    } else {
      decltype(args.epilogue.thread) fusion{};
      fusion.alpha = 1.f; fusion.beta = 0.f;
      fusion.alpha_ptr = nullptr; fusion.beta_ptr = nullptr;
      fusion.alpha_ptr_array = nullptr; fusion.beta_ptr_array = nullptr;
      fusion.dAlpha = {cute::_0{}, cute::_0{}, 0}; fusion.dBeta = {cute::_0{}, cute::_0{}, 0};
      args = typename Gemm::Arguments{cutlass::gemm::GemmUniversalMode::kGrouped, {groups, shapes, nullptr},
                                      ma, {fusion, nullptr, sd, pd, sd}, hw};
    }
    args.scheduler.sched = sched;
    size_t ws = Gemm::get_workspace_size(args);
    if (ws) cudaMalloc(&workspace, ws);
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) { err = -3; return; }
    if (gemm.initialize(args, workspace) != cutlass::Status::kSuccess) { err = -4; return; }
    {
      dim3 grid = Kernel::get_grid_shape(gemm.params());
      constexpr int cm = size<0>(typename Kernel::ClusterShape{}), cn = size<1>(typename Kernel::ClusterShape{});
      // strips of weight tiles that fit ~24 MB of the 50 MB L2 (tile_n x k bf16 per N tile)
      int tile_n = size<1>(typename Kernel::TileShape{});
      int strip = int((24ll << 20) / ((long long)tile_n * k * 2)) / cn;
      cfg = SchedCfg{cm, cn, tile_n, strip > 0 ? strip : 1, (2 + cm - 1) / cm, int(grid.x * grid.y) / (cm * cn),
                     nullptr, 0, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr};
      if constexpr (G::kDyn) cudaMalloc(&cfg.dbuf, sizeof(long long) * (1 + (size_t)cfg.clusters * kDynRing));
      if constexpr (G::kGang) {
        int ntc = ((n + tile_n - 1) / tile_n + cn - 1) / cn;
        cfg.gang = 1;
        cfg.max_gangs = groups * ntc;
        cudaMalloc(&cfg.gang_start, sizeof(long long) * cfg.max_gangs);
        cudaMalloc(&cfg.gang_g, sizeof(int) * cfg.max_gangs);
        cudaMalloc(&cfg.gang_nc, sizeof(int) * cfg.max_gangs);
        cudaMalloc(&cfg.gang_mtc, sizeof(int) * cfg.max_gangs);
        cudaMalloc(&cfg.cnt, sizeof(int) * cfg.max_gangs);
        cudaMalloc(&cfg.need, sizeof(int) * groups);
        cudaMemset(cfg.need, 0, sizeof(int) * groups);
      }
      strip0 = cfg.strip; light0 = cfg.light;
    }
    if constexpr (G::kPair) {
      err = (int)cudaFuncSetAttribute(moe_layer0_kernel<Kernel>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      int(Kernel::SharedStorageSize));
      if (err) return;
    }
    err = (int)cudaDeviceSynchronize();
  }
  ~GG() {
    cudaFree(shapes); cudaFree(pa); cudaFree(pb); cudaFree(pd); cudaFree(sa); cudaFree(sb); cudaFree(sd); cudaFree(sched);
    cudaFree(cfg.gang_start); cudaFree(cfg.gang_g); cudaFree(cfg.gang_nc); cudaFree(cfg.gang_mtc); cudaFree(cfg.cnt);
    cudaFree(cfg.need); cudaFree(cfg.dbuf);
    if (workspace) cudaFree(workspace);
  }

  int strip0 = 1, light0 = 1;
  void set_schedule(int strip, int light) override {
    cfg.strip = strip > 0 ? strip : strip0;
    cfg.light = light >= 0 ? light : light0;
  }
  void get_schedule(int* strip, int* light, int* clusters) override {
    *strip = cfg.strip; *light = cfg.light; *clusters = cfg.clusters;
  }
  void set_scalar_stores(int v) override { scalar_stores = v; }
  void set_silu_tanh(int v) override { silu_tanh = v; }
  void set_profile(long long* prof) override { cfg.prof = prof; }
  const int* split_flag() override { return &sched->split; }

  int launch_pair(cudaStream_t s, const CommDesc* comm, int comm_clusters, const FlagCtx* fctx) {
    auto params = gemm.params();
    params.epilogue.scalar_stores = scalar_stores;
    params.epilogue.silu_tanh = silu_tanh;
    dim3 grid = Kernel::get_grid_shape(params), block = Kernel::get_block_shape();
    int grid_clusters = int(grid.x * grid.y * grid.z) / G::kClusterSize;
    if (comm_clusters < 0 || comm_clusters >= grid_clusters) return -8;
    CommDesc c{};
    if (comm) c = *comm;
    FlagCtx f{};
    if (fctx) f = *fctx;
    cudaLaunchConfig_t lc = {};
    lc.gridDim = grid; lc.blockDim = block;
    lc.dynamicSmemBytes = Kernel::SharedStorageSize;  // + the static FlagCtx (and its 1 KB alignment pad)
    lc.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    auto cs = typename Kernel::ClusterShape{};
    attr[0].val.clusterDim.x = size<0>(cs); attr[0].val.clusterDim.y = size<1>(cs); attr[0].val.clusterDim.z = 1;
    lc.attrs = attr; lc.numAttrs = 1;
    return (int)cudaLaunchKernelEx(&lc, moe_layer0_kernel<Kernel>, params, c, f, comm_clusters);
  }

  int run(const int64_t* offsets, const void* a, const void* b, void* d, int64_t b_gstride, void* stream,
          const CommDesc* comm, int comm_clusters, const FlagCtx* fctx) override {
    auto s = (cudaStream_t)stream;
    cfg.dyn_wait_ns = 2000000000LL + (fctx ? 4 * fctx->timeout_ns : 0);
    moe_group_args_kernel<<<1, 256, 0, s>>>(groups, ksplit, offsets, n, k, shapes, pa, pb, pd, (const Element*)a,
        (const Element*)b, (Element*)d, b_gstride > 0 ? b_gstride : (int64_t)n * k, out_n, sched, cfg);
    int e = (int)cudaGetLastError();
    if (e) return e;
    if constexpr (G::kPair) {
      e = launch_pair(s, comm, comm_clusters, fctx);
      if (e) return e;
    } else {
      if (comm_clusters || fctx) return -9;
      if (gemm.run(s) != cutlass::Status::kSuccess) return -5;
    }
    return (int)cudaGetLastError();
  }
};
#endif

// variants: 0 coop 128x256x64 cluster 2x1; 1 cluster 1x2; 2 cluster 1x1 (plain epilogue, any GEMM);
//           3 GEMM1 + SwiGLU pair epilogue cluster 2x1; 4 same, cluster 1x2 (N = 2F interleaved
//           [w1|w3] in blocks of 8 columns; D is [rows, F]); 5 plain cluster 2x2; 6 pair cluster 2x2.
//           7 GEMM2 + combine cluster 2x1; 8 plain 128x128 cluster 1x2; 9 / 10 gang order (plain /
//           pair, cluster 1x2); 11 / 12 plain cluster 1x2 / 2x1 and 13 / 14 pair cluster 1x2 / 2x1
//           with the dynamic tile schedule. The pair variants (3, 4, 6, 10, 13, 14) also run the
//           fused layer0.
// ksplit = 2: split-K in two halves when it pays (decided per call on the device, plain
// variants only; D then needs 2 x rows rows; moe_gg_split_flag says whether the second half
// was written).
extern "C" void* moe_gg_create2(int variant, int groups, int n, int k, int device, int sm_count, int ksplit, int* err) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  GGBase* h = nullptr; int e = 0;
  switch (variant) {
    case 0: { auto* p = new GG<Coop>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 1: { auto* p = new GG<CoopC12>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 2: { auto* p = new GG<CoopC11>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 3: { auto* p = new GG<Pair21>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 4: { auto* p = new GG<Pair12>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 5: { auto* p = new GG<CoopC22>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 6: { auto* p = new GG<Pair22>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 7: { auto* p = new GG<Comb21>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 8: { auto* p = new GG<CoopC12N128>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 9: { auto* p = new GG<CoopC12Gang>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 10: { auto* p = new GG<Pair12Gang>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 11: { auto* p = new GG<CoopC12Dyn>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 12: { auto* p = new GG<CoopDyn>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 13: { auto* p = new GG<Pair12Dyn>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    case 14: { auto* p = new GG<Pair21Dyn>(groups, n, k, device, sm_count, ksplit); e = p->err; h = p; break; }
    default: *err = -6; return nullptr;
  }
  *err = e;
  if (e) { delete h; return nullptr; }
  return h;
#else
  *err = -1; return nullptr;
#endif
}

extern "C" void* moe_gg_create(int variant, int groups, int n, int k, int device, int sm_count, int* err) {
  return moe_gg_create2(variant, groups, n, k, device, sm_count, 1, err);
}

extern "C" void moe_gg_set_schedule(void* h, int strip, int light) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  static_cast<GGBase*>(h)->set_schedule(strip, light);
#endif
}

extern "C" void moe_gg_get_schedule(void* h, int* strip, int* light, int* clusters) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  static_cast<GGBase*>(h)->get_schedule(strip, light, clusters);
#endif
}

// CTA timing profile: prof = device long long [3 x CTAs] (start ns, end ns, tiles), nullptr = off
extern "C" void moe_gg_set_profile(void* h, long long* prof) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  static_cast<GGBase*>(h)->set_profile(prof);
#endif
}

// swiglu_pair: silu through tanh.approx (1, the default) or ex2 + rcp (0); vector stores only
extern "C" void moe_gg_set_silu_tanh(void* h, int v) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  static_cast<GGBase*>(h)->set_silu_tanh(v);
#endif
}

extern "C" void moe_gg_set_scalar_stores(void* h, int v) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  static_cast<GGBase*>(h)->set_scalar_stores(v);
#endif
}

// the flag's value after the last run (synchronises)
extern "C" int moe_gg_last_split(void* h) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  int v = -1;
  if (cudaMemcpy(&v, static_cast<GGBase*>(h)->split_flag(), sizeof(int), cudaMemcpyDeviceToHost)) return -1;
  return v;
#else
  return -1;
#endif
}

extern "C" const int* moe_gg_split_flag(void* h) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  return static_cast<GGBase*>(h)->split_flag();
#else
  return nullptr;
#endif
}

// D[rows of g] = A[rows of g] @ B[g]^T; B[g] starts at b + g * b_gstride elements (0: packed [G, N, K]).
extern "C" int moe_gg_run(void* h, const int64_t* offsets, const void* a, const void* b, void* d,
                          int64_t b_gstride, void* stream) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  return static_cast<GGBase*>(h)->run(offsets, a, b, d, b_gstride, stream, nullptr, 0, nullptr);
#else
  return -1;
#endif
}

// layer0 in one kernel: comm_clusters clusters move rows (CommDesc) and set flags, the GEMM waits
// on them (FlagCtx). Variants 3 and 4 only.
extern "C" int moe_layer0_run(void* h, const int64_t* offsets, const void* a, const void* b, void* d,
                              const CommDesc* comm, int comm_clusters, int* flags, int max_mt, int sys_scope,
                              int* err, long long timeout_ns, void* stream) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  FlagCtx f{flags, err, max_mt, sys_scope, timeout_ns};
  return static_cast<GGBase*>(h)->run(offsets, a, b, d, 0, stream, comm_clusters ? comm : nullptr, comm_clusters,
                                      flags ? &f : nullptr);
#else
  return -1;
#endif
}

// GEMM2 with the combine in its epilogue (variant 7): out [tokens, N] = sum over the k <= 2 slots
// of gate * (A @ B^T) rows; out is zeroed here first.
extern "C" int moe_gg_run_combine(void* h, const int64_t* offsets, const void* a, const void* b, void* out,
                                  const int64_t* perm, const float* gates, int tokens, int topk, void* stream) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  auto* g = static_cast<GGBase*>(h);
  if (!g->cargs) return -10;
  if (topk > 2) return -11;
  auto s = (cudaStream_t)stream;
  int n = static_cast<GG<Comb21>*>(g)->n;
  cudaMemsetAsync(out, 0, sizeof(__nv_bfloat16) * (size_t)tokens * n, s);
  CombineArgs v{(__nv_bfloat16*)out, perm, gates, offsets, (int64_t)n, topk};
  moe_set_combine_args_kernel<<<1, 1, 0, s>>>(g->cargs, v);
  return g->run(offsets, a, b, out, 0, stream, nullptr, 0, nullptr);
#else
  return -1;
#endif
}

extern "C" void moe_gg_destroy(void* h) {
#if defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
  delete static_cast<GGBase*>(h);
#endif
}

extern "C" int moe_comm_desc_size() { return (int)sizeof(CommDesc); }

// ------------------------------------------------------------------ EP > 1 transport
// Symmetric buffers (NVSHMEM heap, same layout on every PE; peers reached through nvshmem_ptr
// mappings, so the kernels here need no NVSHMEM device library):
//   xs      [cap_recv, H]  expert input rows, grouped by local expert, sources local-first
//   ret     [cap_send, H]  rows returned to their source after GEMM2 (send layout)
//   flags   [epr * max_mt] rows landed per layer0 tile
//   counts  [ep, E]        counts_in[s][e]: rows PE s sends to expert e (this call)
//   arrive, ret_cnt        monotonic counters (ep per call / rows returned)
// Every PE calls the layer the same number of times; the counters never reset, the waits
// compare them with per-call targets kept in local device memory (seq).
struct EpDesc {
  int* peer_counts[8];
  int* peer_arrive[8];
  int* peer_retcnt[8];
  uint4* peer_ret[8];
  int* counts;      // own [ep * E] (symmetric: peers write it)
  int* counts_local;  // local copy taken after the wait, read by the return kernel
  int* arrive;      // own
  int* retcnt;      // own
  int* flags;       // own [nflags]
  int64_t* seq;     // local [2]: calls so far, rows expected back so far
  int* err;         // local
  int ep, me, experts, nflags;
  long long timeout_ns;
};

// One block. Zero this PE's tile flags, publish its per-expert counts to every PE, wait for
// everyone's, then derive (a) the receive layout of this PE's local experts (group offsets for
// the grouped GEMM) and (b) where this PE's rows for each expert land on the owner.
__global__ void moe_ep_exchange_kernel(EpDesc d, const int* __restrict__ my_counts, int64_t* __restrict__ recv_off,
                                       int64_t* __restrict__ abs_base, int64_t* __restrict__ grp_base,
                                       int64_t* __restrict__ send_off_all /* [ep, E+1] */) {
  const int E = d.experts, ep = d.ep, me = d.me, epr = E / ep;
  for (int i = threadIdx.x; i < d.nflags; i += blockDim.x) d.flags[i] = 0;
  __syncthreads();
  if (threadIdx.x == 0) __threadfence_system();
  __syncthreads();
  for (int i = threadIdx.x; i < ep * E; i += blockDim.x) {
    int p = i / E, e = i - p * E;
    d.peer_counts[p][me * E + e] = my_counts[e];
  }
  __syncthreads();
  __shared__ int ok;
  if (threadIdx.x == 0) {
    __threadfence_system();
    for (int p = 0; p < ep; ++p) red_release_add(d.peer_arrive[p], 1, 1);
    int64_t s = ++d.seq[0];
    ok = wait_at_least(d.arrive, int(s * ep), 1, d.timeout_ns, d.err, 2);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < ep * E; i += blockDim.x) d.counts_local[i] = d.counts[i];
  __syncthreads();
  if (threadIdx.x == 0) {
    const int* C = d.counts_local;  // C[s * E + e]
    if (!ok) {
      for (int j = 0; j <= epr; ++j) recv_off[j] = 0;  // no rows: the GEMMs do nothing
    } else {
      recv_off[0] = 0;
      for (int j = 0; j < epr; ++j) {
        int64_t t = 0;
        for (int s = 0; s < ep; ++s) t += C[s * E + me * epr + j];
        recv_off[j + 1] = recv_off[j] + t;
      }
    }
    for (int s = 0; s < ep; ++s) {
      int64_t a = 0;
      for (int e = 0; e < E; ++e) { send_off_all[s * (E + 1) + e] = a; a += C[s * E + e]; }
      send_off_all[s * (E + 1) + E] = a;
    }
    for (int p = 0; p < ep; ++p) {
      int64_t g = 0;  // owner p's group offset of local expert j
      for (int j = 0; j < epr; ++j) {
        int e = p * epr + j;
        int64_t seg = 0;  // sources before me in p's order p, p+1, ... (local-first on the owner)
        for (int dd = 0; dd < ep; ++dd) {
          int s = (p + dd) % ep;
          if (s == me) break;
          seg += C[s * E + e];
        }
        abs_base[e] = g + seg;
        grp_base[e] = seg;
        for (int s = 0; s < ep; ++s) g += C[s * E + e];
      }
    }
  }
}

// layer1's return: received row R (local expert j, from source s, i-th of s's rows for the
// expert) goes back to s's ret buffer at s's send row; a flag-free count per chunk.
__global__ void moe_ep_return_kernel(EpDesc d, const uint4* __restrict__ y, const int64_t* __restrict__ recv_off,
                                     const int64_t* __restrict__ send_off_all, int vec) {
  constexpr int kChunk = 4;
  const int E = d.experts, ep = d.ep, me = d.me, epr = E / ep;
  const int lane = threadIdx.x & 31;
  const int64_t rows = recv_off[epr];
  const int64_t nchunks = (rows + kChunk - 1) / kChunk;
  const int64_t gw = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5, nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
  for (int64_t ch = gw; ch < nchunks; ch += nw) {
    int dest[kChunk];
    int nf = 0;
    for (int q = 0; q < kChunk; ++q) {
      int64_t R = ch * kChunk + q;
      if (R >= rows) break;
      int j = 0;
      while (recv_off[j + 1] <= R) ++j;
      int e = me * epr + j;
      int64_t i = R - recv_off[j];
      int s = me;
      for (int dd = 0; dd < ep; ++dd) {
        s = (me + dd) % ep;
        int64_t c = d.counts_local[s * E + e];
        if (i < c) break;
        i -= c;
      }
      uint4* dst = d.peer_ret[s] + (send_off_all[s * (E + 1) + e] + i) * (int64_t)vec;
      const uint4* src = y + R * (int64_t)vec;
      for (int v = lane; v < vec; v += 32) dst[v] = src[v];
      dest[q] = s;
      nf = q + 1;
    }
    __syncwarp();
    if (lane == 0) {
      __threadfence_system();
      for (int q = 0; q < nf;) {
        int n = 1;
        while (q + n < nf && dest[q + n] == dest[q]) ++n;
        red_release_add(d.peer_retcnt[dest[q]], n, 1);
        q += n;
      }
    }
    __syncwarp();
  }
}

__global__ void moe_ep_wait_return_kernel(EpDesc d, int64_t my_rows) {
  if (threadIdx.x == 0) {
    int64_t want = (d.seq[1] += my_rows);
    wait_at_least(d.retcnt, int(want), 1, d.timeout_ns, d.err, 3);
  }
}

extern "C" int moe_ep_desc_size() { return (int)sizeof(EpDesc); }

extern "C" int moe_ep_exchange(const EpDesc* d, const int* my_counts, int64_t* recv_off, int64_t* abs_base,
                               int64_t* grp_base, int64_t* send_off_all, void* stream) {
  if (d->ep > 8 || d->experts % d->ep) return -2;
  moe_ep_exchange_kernel<<<1, 256, 0, (cudaStream_t)stream>>>(*d, my_counts, recv_off, abs_base, grp_base, send_off_all);
  return (int)cudaGetLastError();
}

extern "C" int moe_ep_return(const EpDesc* d, const void* y, const int64_t* recv_off, const int64_t* send_off_all,
                             int hidden, int64_t my_rows, int blocks, void* stream) {
  if (hidden % 8) return -2;
  auto s = (cudaStream_t)stream;
  moe_ep_return_kernel<<<blocks, 256, 0, s>>>(*d, (const uint4*)y, recv_off, send_off_all, hidden / 8);
  moe_ep_wait_return_kernel<<<1, 32, 0, s>>>(*d, my_rows);
  return (int)cudaGetLastError();
}

// EP = 1 layer0 support: tile flags of the local expert buffer, abs/grp bases from the offsets.
__global__ void moe_local_bases_kernel(const int64_t* offsets, int experts, int64_t* abs_base, int64_t* grp_base) {
  int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e < experts) { abs_base[e] = offsets[e]; grp_base[e] = 0; }
}
extern "C" int moe_local_bases(const int64_t* offsets, int experts, int64_t* abs_base, int64_t* grp_base, int* flags,
                               int nflags, void* stream) {
  auto s = (cudaStream_t)stream;
  if (flags) cudaMemsetAsync(flags, 0, sizeof(int) * nflags, s);
  moe_local_bases_kernel<<<(experts + 127) / 128, 128, 0, s>>>(offsets, experts, abs_base, grp_base);
  return (int)cudaGetLastError();
}
