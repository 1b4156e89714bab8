// NVSHMEM host side of the MoE EP transport: bootstrap from a unique id (shared by the caller,
// e.g. a torch.distributed broadcast), the symmetric heap, and peer mappings (nvshmem_ptr).
// Host library only: the MoE kernels reach peers through the mapped pointers, so neither they
// nor this file need NVSHMEM's device library or relocatable device code.
#include <cstring>
#include <cuda_runtime.h>
#include <nvshmem.h>
#include <nvshmemx.h>

extern "C" {
int moe_shmem_uid_size() { return int(sizeof(nvshmemx_uniqueid_t)); }

int moe_shmem_get_uid(void* out) {
  nvshmemx_uniqueid_t id = NVSHMEMX_UNIQUEID_INITIALIZER;
  int rc = nvshmemx_get_uniqueid(&id);
  std::memcpy(out, &id, sizeof(id));
  return rc;
}

// 0: initialised here; 1: NVSHMEM was already up in this process (another comet_ir runtime),
// with the same PE numbering; < 0: failure.
int moe_shmem_init(int rank, int world, const void* uid) {
  if (nvshmemx_init_status() >= NVSHMEM_STATUS_IS_INITIALIZED)
    return (nvshmem_my_pe() == rank && nvshmem_n_pes() == world) ? 1 : -3;
  nvshmemx_uniqueid_t id;
  std::memcpy(&id, uid, sizeof(id));
  nvshmemx_init_attr_t attr = NVSHMEMX_INIT_ATTR_INITIALIZER;
  int rc = nvshmemx_set_attr_uniqueid_args(rank, world, &id, &attr);
  if (rc) return rc;
  nvshmemx_init_init_attr_ver_only(attr);
  rc = nvshmemx_hostlib_init_attr(NVSHMEMX_INIT_WITH_UNIQUEID, &attr);
  if (rc) return rc;
  return (nvshmem_my_pe() == rank && nvshmem_n_pes() == world) ? 0 : -2;
}

// collective: every PE asks for the same size in the same order
void* moe_shmem_malloc(size_t bytes) {
  void* p = nvshmem_malloc(bytes);
  if (p) cudaMemset(p, 0, bytes);
  cudaDeviceSynchronize();
  nvshmem_barrier_all();
  return p;
}

void* moe_shmem_ptr(void* p, int pe) { return nvshmem_ptr(p, pe); }
void moe_shmem_barrier() { nvshmem_barrier_all(); }
void moe_shmem_free(void* p) { nvshmem_free(p); }
}
