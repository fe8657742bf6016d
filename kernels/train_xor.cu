// fastxor GPU kernel: one thread trains one 2-H-1 sigmoid network on 4 samples
// with full-batch SGD, the seed's mathematics (nn.Linear, sigmoid, MSELoss,
// optim.SGD). The parameters and gradients live in registers for the whole run;
// memory is read once (initial parameters, or none: they are generated here from
// (seed, network index) with the same Philox4x32-10 mapping as
// fastxor.init_params) and written once (final state), plus the optional loss
// history, written coalesced (row r holds epoch r*k for all networks).
//
// Self-contained on purpose: the same file compiles as CUDA (CuPy RawModule,
// nvcc) and as host C++ (the strict fake CuPy of tests/fake_cupy compiles the
// loader's exact module source with g++), so its logic is tested on machines
// without a GPU.
//
// Flush-to-zero: CuPy compiles every module with -ftz=true, so float32
// subnormals (|x| < 2^-126) are 0 on the GPU. Training is unaffected beyond
// rounding (a subnormal update to a normal parameter is lost to rounding
// anyway), but the float32 in-kernel init equals fastxor.init_params bit for
// bit only for init_scale >= 2^-103 sqrt(max(2, H)) (1.4e-31 for H = 2; see
// cupy_kernel.ftz_init_scale_bound): below it, subnormal initial values are 0. An entry point is instantiated by appending
//     FASTXOR_ENTRY(H, T, SUFFIX, FAST)
// (fastxor/backends/cupy_kernel.py does this), which defines
//     extern "C" __global__ void fastxor_train_h<H>_<SUFFIX>(...)

typedef unsigned int uint32_t_;
typedef unsigned long long uint64_t_;

// ---------------------------------------------------------------- Philox4x32-10

struct Philox4 {
    uint32_t_ v[4];
};

__device__ __forceinline__ Philox4 philox4x32_10(uint32_t_ c0, uint32_t_ c1, uint32_t_ c2,
                                                 uint32_t_ c3, uint32_t_ k0, uint32_t_ k1) {
    const uint32_t_ M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        if (r) {
            k0 += W0;
            k1 += W1;
        }
        uint32_t_ hi0 = __umulhi(M0, c0), lo0 = M0 * c0;
        uint32_t_ hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
        uint32_t_ n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    Philox4 out = {{c0, c1, c2, c3}};
    return out;
}

// A word to [-1, 1): ((w >> 8) - 2^23) * 2^-23, exact in double.
__device__ __forceinline__ double uniform_pm1(uint32_t_ w) {
    return (double)((int)(w >> 8) - (1 << 23)) * (1.0 / 8388608.0);
}

// ---------------------------------------------------------------- math

template <typename T, bool FAST> struct Math;

template <> struct Math<float, false> {
    // expf is accurate to ~2 ulp and the reciprocal is correctly rounded (as
    // IEEE 1.0f/x): float32 trajectories then differ from the CPU backends
    // only by rounding.
    __device__ static __forceinline__ float sigmoid(float z) { return recip(1.0f + expf(-z)); }
#ifdef __CUDA_ARCH__
    // 1/x for x = 1 + exp(-z) in [1, inf] or NaN, without the IEEE divide's
    // per-call range checks and out-of-line slow path (10 issued instructions
    // a sigmoid): the approximate reciprocal and one Newton step with FMA --
    // the divide's own fast path, correctly rounded for x in [1, 2^126) --
    // after clamping inf to FLT_MAX (NaN kept, so divergence is still seen).
    // For x >= 2^126 the exact 1/x is subnormal or 2^-126 and, with CuPy's
    // -ftz=true, the same 0 or 2^-126 comes out. So this equals 1.0f/x for
    // every such x, and the host build below computes exactly that.
    __device__ static __forceinline__ float recip(float x) {
#if __CUDA_ARCH__ >= 800
        asm("min.NaN.f32 %0, %1, 0f7F7FFFFF;" : "=f"(x) : "f"(x));
#else
        x = (x != x) ? x : fminf(x, 3.402823466e38f);
#endif
        float r;
        asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
        return fmaf(r, fmaf(-x, r, 1.0f), r);
    }
#else
    static inline float recip(float x) { return 1.0f / x; }
#endif
};

template <> struct Math<float, true> {
#ifdef __CUDA_ARCH__
    // Opt-in fast mode: one MUFU tanh.approx (max rel. error ~2^-11), not
    // bit-comparable; its effect on success statistics is measured in bench/.
    __device__ static __forceinline__ float sigmoid(float z) {
        float t;
        asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(0.5f * z));
        return fmaf(0.5f, t, 0.5f);
    }
#else
    static inline float sigmoid(float z) { return fmaf(0.5f, tanhf(0.5f * z), 0.5f); }
#endif
};

template <> struct Math<double, false> {
    __device__ static __forceinline__ double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }
};

// ---------------------------------------------------------------- the kernel

// One sample's forward pass: hidden activations h and the output o.
template <int H, typename T, bool FAST>
__device__ __forceinline__ T forward_sample(const T (&w1)[H][2], const T (&b1)[H], const T (&w2)[H], T b2,
                                            T x0, T x1, T (&h)[H]) {
    typedef Math<T, FAST> M;
    T z2 = 0;
#pragma unroll
    for (int j = 0; j < H; ++j) {
        h[j] = M::sigmoid((w1[j][0] * x0 + w1[j][1] * x1) + b1[j]);
        z2 = z2 + w2[j] * h[j];
    }
    return M::sigmoid(z2 + b2);
}

// Data layout: every per-network array is structure-of-arrays, network i at
// [row * n + i], so consecutive threads touch consecutive addresses.
// data: X (4x2, row-major), y (4), side (4): 16 values.
//
// The epoch loop is branch-free but for the rare history write: the solved
// test is one predicate per sample (min over samples of side * (o - 0.5) > 0,
// NaN counting as not solved), the history a countdown, the divergence guard
// a select. The final forward pass (loss, predictions, solved at the last
// epoch) runs once after the loop.
template <int H, typename T, bool FAST>
__device__ __forceinline__ void train_network(
    const T* __restrict__ init, uint64_t_ seed, uint64_t_ start, const double* __restrict__ scale,
    int scale_stride, const T* __restrict__ lr, int lr_stride, const T* __restrict__ data,
    int epochs, int record_every, long long n, T* __restrict__ params_out,
    T* __restrict__ loss_out, T* __restrict__ pred_out, long long* __restrict__ solved_out,
    long long* __restrict__ diverged_out, T* __restrict__ history) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int P = 4 * H + 1;
    T w1[H][2], b1[H], w2[H], b2;

    // Initial parameters, flat order W1 (row-major), b1, W2, b2.
    if (init != 0) {
#pragma unroll
        for (int j = 0; j < H; ++j) {
            w1[j][0] = init[(2 * j) * n + i];
            w1[j][1] = init[(2 * j + 1) * n + i];
            b1[j] = init[(2 * H + j) * n + i];
            w2[j] = init[(3 * H + j) * n + i];
        }
        b2 = init[(4 * H) * n + i];
    } else {
        const uint64_t_ g = start + (uint64_t_)i;
        const double s = scale[scale_stride * i];
        const double s1 = s / sqrt(2.0), s2 = s / sqrt((double)H);  // nn.Linear: 1/sqrt(fan_in)
        T flat[P];
#pragma unroll
        for (int b = 0; b < (P + 3) / 4; ++b) {
            Philox4 r = philox4x32_10((uint32_t_)b, (uint32_t_)g, (uint32_t_)(g >> 32), 0u,
                                      (uint32_t_)seed, (uint32_t_)(seed >> 32));
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const int idx = 4 * b + q;
                if (idx < P) flat[idx] = (T)(uniform_pm1(r.v[q]) * (idx < 3 * H ? s1 : s2));
            }
        }
#pragma unroll
        for (int j = 0; j < H; ++j) {
            w1[j][0] = flat[2 * j];
            w1[j][1] = flat[2 * j + 1];
            b1[j] = flat[2 * H + j];
            w2[j] = flat[3 * H + j];
        }
        b2 = flat[4 * H];
    }

    T x[4][2], y[4], side[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) {
        x[s][0] = data[2 * s];
        x[s][1] = data[2 * s + 1];
        y[s] = data[8 + s];
        side[s] = data[12 + s];
    }
    const T rate = lr[lr_stride * i];
    const T zero = 0, half = 0.5, one = 1, quarter = 0.25;
    int solved = -1, diverged = -1;
    int countdown = record_every > 0 ? 1 : 0;  // epochs to the next history row (0: never)
    T* row = history + i;

    for (int epoch = 0; epoch < epochs; ++epoch) {
        // Forward pass, sample by sample, accumulating the gradients as we go
        // (sums over samples in order 0..3, as the reference).
        T gw1[H][2], gb1[H], gw2[H], gb2 = zero, loss = zero;
        bool all_right = true;
#pragma unroll
        for (int j = 0; j < H; ++j) gw1[j][0] = gw1[j][1] = gb1[j] = gw2[j] = zero;
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            T h[H];
            const T o = forward_sample<H, T, FAST>(w1, b1, w2, b2, x[s][0], x[s][1], h);
            const T d = o - y[s];
            loss = loss + d * d;
            all_right = all_right && side[s] * (o - half) > zero;
            // Backpropagation, the seed's steps (1)-(5).
            const T g = (d * half) * o * (one - o);  // d loss / d z2 = 2/4 (o - y) o (1 - o)
            gb2 = gb2 + g;
#pragma unroll
            for (int j = 0; j < H; ++j) {
                gw2[j] = gw2[j] + g * h[j];
                const T e = (g * w2[j]) * h[j] * (one - h[j]);
                gw1[j][0] = gw1[j][0] + e * x[s][0];
                gw1[j][1] = gw1[j][1] + e * x[s][1];
                gb1[j] = gb1[j] + e;
            }
        }
        loss = loss * quarter;
        solved = (solved < 0 && all_right) ? epoch : solved;
        if (--countdown == 0) {
            *row = loss;
            row += n;
            countdown = record_every;
        }

        // SGD step; an update that would make any parameter NaN/inf is not
        // applied: the network freezes and records the epoch. x * 0 is 0 for
        // finite x and NaN for inf/NaN, so one FMA per parameter tests it.
        T nw1[H][2], nb1[H], nw2[H];
        T bad = zero;
#pragma unroll
        for (int j = 0; j < H; ++j) {
            nw1[j][0] = w1[j][0] - rate * gw1[j][0];
            nw1[j][1] = w1[j][1] - rate * gw1[j][1];
            nb1[j] = b1[j] - rate * gb1[j];
            nw2[j] = w2[j] - rate * gw2[j];
            bad = nw1[j][0] * zero + bad;
            bad = nw1[j][1] * zero + bad;
            bad = nb1[j] * zero + bad;
            bad = nw2[j] * zero + bad;
        }
        const T nb2 = b2 - rate * gb2;
        bad = nb2 * zero + bad;
        const bool ok = bad == zero;
#pragma unroll
        for (int j = 0; j < H; ++j) {
            w1[j][0] = ok ? nw1[j][0] : w1[j][0];
            w1[j][1] = ok ? nw1[j][1] : w1[j][1];
            b1[j] = ok ? nb1[j] : b1[j];
            w2[j] = ok ? nw2[j] : w2[j];
        }
        b2 = ok ? nb2 : b2;
        diverged = (!ok && diverged < 0) ? epoch : diverged;
    }

    // The parameters reached: loss, predictions, and the solved test at the last epoch.
    T loss = zero;
    bool all_right = true;
#pragma unroll
    for (int s = 0; s < 4; ++s) {
        T h[H];
        const T o = forward_sample<H, T, FAST>(w1, b1, w2, b2, x[s][0], x[s][1], h);
        const T d = o - y[s];
        loss = loss + d * d;
        all_right = all_right && side[s] * (o - half) > zero;
        pred_out[s * n + i] = o;
    }
    loss_out[i] = loss * quarter;
    solved = (solved < 0 && all_right) ? epochs : solved;
#pragma unroll
    for (int j = 0; j < H; ++j) {
        params_out[(2 * j) * n + i] = w1[j][0];
        params_out[(2 * j + 1) * n + i] = w1[j][1];
        params_out[(2 * H + j) * n + i] = b1[j];
        params_out[(3 * H + j) * n + i] = w2[j];
    }
    params_out[(4 * H) * n + i] = b2;
    solved_out[i] = solved;
    diverged_out[i] = diverged;
}

#define FASTXOR_ENTRY(H, T, SUFFIX, FAST)                                                         \
    extern "C" __global__ void fastxor_train_h##H##_##SUFFIX(                                     \
        const T* init, uint64_t_ seed, uint64_t_ start, const double* scale, int scale_stride,    \
        const T* lr, int lr_stride, const T* data, int epochs, int record_every, long long n,      \
        T* params_out, T* loss_out, T* pred_out, long long* solved_out, long long* diverged_out,  \
        T* history) {                                                                             \
        train_network<H, T, FAST>(init, seed, start, scale, scale_stride, lr, lr_stride, data,    \
                                  epochs, record_every, n, params_out, loss_out, pred_out,        \
                                  solved_out, diverged_out, history);                             \
    }
