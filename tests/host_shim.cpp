// Host C++ shim: compiles kernels/train_xor.cu for the CPU so its logic
// (indexing, in-kernel init, loss history, solved epoch, divergence) is tested
// on machines without a GPU. Built by tests/test_gpu_kernel_host.py with
//   -DSHIM_H=<H> -DSHIM_T=<float|double> -DSHIM_SUFFIX=<f32|f64> -DSHIM_FAST=<0|1>
// It runs the grid serially: every (block, thread) pair in launch order.
#define FASTXOR_HOST_SHIM
#include <cmath>
#include <cstdint>

struct Dim3 {
    unsigned x, y, z;
};
static Dim3 threadIdx, blockIdx, blockDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
static inline uint32_t __umulhi(uint32_t a, uint32_t b) {
    return (uint32_t)(((uint64_t)a * (uint64_t)b) >> 32);
}

#include "../kernels/train_xor.cu"

#define CAT3(a, b, c) a##b##c
#define ENTRY_NAME(H, S) CAT3(fastxor_train_h, H, _##S)
#define XENTRY_NAME(H, S) ENTRY_NAME(H, S)

#define EXPANDED_ENTRY(H, T, S, F) FASTXOR_ENTRY(H, T, S, F)  // expand SHIM_* first
EXPANDED_ENTRY(SHIM_H, SHIM_T, SHIM_SUFFIX, SHIM_FAST)

extern "C" void launch(unsigned grid, unsigned block, const SHIM_T* init, uint64_t seed,
                       uint64_t start, const double* scale, int scale_stride, const SHIM_T* lr,
                       int lr_stride, const SHIM_T* data, int epochs, int record_every, long long n,
                       SHIM_T* params_out, SHIM_T* loss_out, SHIM_T* pred_out,
                       long long* solved_out, long long* diverged_out, SHIM_T* history) {
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        for (unsigned t = 0; t < block; ++t) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            XENTRY_NAME(SHIM_H, SHIM_SUFFIX)(init, seed, start, scale, scale_stride, lr, lr_stride,
                                            data, epochs, record_every, n, params_out, loss_out,
                                            pred_out, solved_out, diverged_out, history);
        }
    }
}
