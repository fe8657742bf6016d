// fastxor GPU kernel: one thread trains one 2-H-1 network on 4 samples, full
// batch, with a training recipe of fastxor.train (the seed's nn.Linear +
// sigmoid + MSELoss + optim.SGD, or SGD with momentum/Nesterov/weight decay,
// Adam, AdamW; MSE, BCE or BCE-with-logits; sigmoid, tanh or ReLU hidden
// units; a target loss). The parameters, gradients and optimizer state live in
// registers for the whole run; memory is read once (initial parameters, or
// none: they are generated here from (seed, network index) with the same
// Philox4x32-10 mapping as fastxor.init_params) and written once (final
// state), plus the optional loss history, written coalesced.
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
// cupy_kernel.ftz_init_scale_bound): below it, subnormal initial values are 0.
//
// An entry point is instantiated by appending
//     FASTXOR_ENTRY(NAME, H, T, FAST, OPT, LOSS, ACT, FLAGS)
// (fastxor/backends/cupy_kernel.py does this), which defines
//     extern "C" __global__ void fastxor_train_<NAME>(...)

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
    __device__ static __forceinline__ float tanh(float z) { return tanhf(z); }
    __device__ static __forceinline__ float log(float x) { return logf(x); }
    __device__ static __forceinline__ float log1p(float x) { return log1pf(x); }
    __device__ static __forceinline__ float exp(float x) { return expf(x); }
    __device__ static __forceinline__ float sqrt(float x) { return sqrtf(x); }
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

template <> struct Math<float, true> : Math<float, false> {
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
    __device__ static __forceinline__ double sigmoid(double z) { return 1.0 / (1.0 + ::exp(-z)); }
    __device__ static __forceinline__ double tanh(double z) { return ::tanh(z); }
    __device__ static __forceinline__ double log(double x) { return ::log(x); }
    __device__ static __forceinline__ double log1p(double x) { return ::log1p(x); }
    __device__ static __forceinline__ double exp(double x) { return ::exp(x); }
    __device__ static __forceinline__ double sqrt(double x) { return ::sqrt(x); }
};

// ---------------------------------------------------------------- the recipe

// A recipe is compile-time (fastxor.state.Recipe.kernel_key): the template
// arguments OPT, LOSS, ACT and the FLAGS bits. Code a recipe does not use is
// not compiled in, so the seed's recipe (0, 0, 0, 0) costs nothing extra.
enum { SGD = 0, ADAM = 1, ADAMW = 2 };
enum { MSE = 0, BCE = 1, BCE_LOGITS = 2 };
enum { SIGMOID = 0, TANH = 1, RELU = 2 };
enum { MOMENTUM = 1, NESTEROV = 2, DAMPENING = 4, WEIGHT_DECAY = 8, TARGET = 16 };

template <int OPT, int LOSS, int ACT, int FLAGS> struct Recipe {
    static constexpr bool adam = OPT != SGD;
    static constexpr bool momentum = OPT == SGD && (FLAGS & MOMENTUM);
    static constexpr bool nesterov = momentum && (FLAGS & NESTEROV);
    static constexpr bool dampening = momentum && (FLAGS & DAMPENING);
    static constexpr bool weight_decay = FLAGS & WEIGHT_DECAY;
    static constexpr bool l2 = weight_decay && OPT != ADAMW;  // added to the gradient
    static constexpr bool target = FLAGS & TARGET;
    // Per-network coefficient rows (Recipe.rate_names): lr, [momentum, [gain]], [weight_decay | decay].
    static constexpr int row_momentum = 1, row_gain = 2;
    static constexpr int row_decay = 1 + (momentum ? 1 : 0) + (dampening ? 1 : 0);
};

// The hidden unit's activation and its slope from its output (as torch's backward).
template <int ACT, typename M, typename T> __device__ __forceinline__ T activate(T z) {
    if constexpr (ACT == SIGMOID) return M::sigmoid(z);
    else if constexpr (ACT == TANH) return M::tanh(z);
    else return z <= T(0) ? T(0) : z;  // ReLU; NaN stays NaN, as np.maximum
}

template <int ACT, typename T> __device__ __forceinline__ T activation_slope(T back, T h) {
    if constexpr (ACT == SIGMOID) return back * h * (T(1) - h);
    else if constexpr (ACT == TANH) return back * (T(1) - h * h);
    else return h > T(0) ? back : T(0);  // ReLU: slope 0 at z <= 0
}

// One sample's loss term, as torch's criteria (mean taken by the caller).
template <int LOSS, typename M, typename T> __device__ __forceinline__ T loss_term(T o, T z2, T y) {
    if constexpr (LOSS == MSE) {
        const T d = o - y;
        return d * d;
    } else if constexpr (LOSS == BCE) {  // (y - 1) max(log1p(-o), -100) - y max(log(o), -100)
        const T lo = T(-100), la = M::log1p(-o), lb = M::log(o);
        return (y - T(1)) * (la < lo ? lo : la) - y * (lb < lo ? lo : lb);
    } else {  // (1 - y) z - log_sigmoid(z), log_sigmoid(z) = min(z, 0) - log1p(exp(-|z|))
        const T ab = z2 >= T(0) ? z2 : -z2;
        return (T(1) - y) * z2 - ((z2 < T(0) ? z2 : T(0)) - M::log1p(M::exp(-ab)));
    }
}

// d loss / d z2 of one sample (4 samples): the criterion's backward, then the sigmoid's.
template <int LOSS, typename T> __device__ __forceinline__ T output_gradient(T o, T y) {
    const T d = o - y;
    if constexpr (LOSS == MSE) {
        return (d * T(0.5)) * o * (T(1) - o);  // 2/4 (o - y) o (1 - o)
    } else if constexpr (LOSS == BCE) {  // 1/4 (o - y) / max(o (1 - o), 1e-12), then o (1 - o)
        const T q = (T(1) - o) * o, eps = T(1e-12);
        return ((T(0.25) * d) / (q < eps ? eps : q)) * (T(1) - o) * o;
    } else {
        return d * T(0.25);  // BCEWithLogits: (sigmoid(z) - y) / 4
    }
}

// ---------------------------------------------------------------- the kernel

// One sample's forward pass: hidden activations h, the output's pre-activation z2, output o.
template <int H, typename T, bool FAST, int ACT>
__device__ __forceinline__ T forward_sample(const T (&w)[4 * H + 1], T x0, T x1, T (&h)[H], T& z2) {
    typedef Math<T, FAST> M;
    T z = 0;
#pragma unroll
    for (int j = 0; j < H; ++j) {
        h[j] = activate<ACT, M>((w[2 * j] * x0 + w[2 * j + 1] * x1) + w[2 * H + j]);
        z = z + w[3 * H + j] * h[j];
    }
    z2 = z + w[4 * H];
    return M::sigmoid(z2);
}

// Data layout: every per-network array is structure-of-arrays, network i at
// [row * n + i], so consecutive threads touch consecutive addresses.
// data: X (4x2, row-major), y (4), side (4): 16 values. rates: the recipe's
// coefficient rows. consts: beta1, beta2, eps, target loss (float64). bias:
// Adam's bias corrections per epoch of this launch (1 / (1 - beta1^t) and
// (1 - beta2^t)^0.5 in T, computed on the host in float64 as torch does).
// buffers: the optimizer state (SGD: P rows; Adam: P rows m, P rows v),
// read and written in place. solved/diverged/target_io: global first-event
// epochs, -1 for none, read and updated. epoch0: the global epoch of this
// launch's first step (Adam's step count, SGD's first step, event epochs,
// history columns: row r of ``history`` holds the r-th multiple of
// record_every at or after epoch0).
//
// The epoch loop is branch-free but for the rare history write (and BCE's
// logs, computed only when the loss is recorded or a target tracked): the
// solved test is one predicate per sample (min over samples of side *
// (o - 0.5) > 0, NaN counting as not solved), the history a countdown, the
// divergence guard a select. The final forward pass (loss, predictions,
// events at the last epoch) runs once after the loop.
template <int H, typename T, bool FAST, int OPT, int LOSS, int ACT, int FLAGS>
__device__ __forceinline__ void train_network(
    const T* __restrict__ init, uint64_t_ seed, uint64_t_ start, const double* __restrict__ scale,
    const T* __restrict__ rates, const double* __restrict__ consts, const T* __restrict__ bias,
    const T* __restrict__ data,
    long long epoch0, int epochs, int record_every, long long n, T* __restrict__ params_out,
    T* __restrict__ buffers, T* __restrict__ loss_out, T* __restrict__ pred_out,
    long long* __restrict__ solved_io, long long* __restrict__ diverged_io,
    long long* __restrict__ target_io, T* __restrict__ history) {
    typedef Math<T, FAST> M;
    typedef Recipe<OPT, LOSS, ACT, FLAGS> R;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int P = 4 * H + 1;  // flat order W1 (row-major), b1, W2, b2
    T w[P];

    if (init != 0) {
#pragma unroll
        for (int k = 0; k < P; ++k) w[k] = init[k * n + i];
    } else {
        const uint64_t_ g = start + (uint64_t_)i;
        const double s = scale[i];
        const double s1 = s / sqrt(2.0), s2 = s / sqrt((double)H);  // nn.Linear: 1/sqrt(fan_in)
#pragma unroll
        for (int b = 0; b < (P + 3) / 4; ++b) {
            Philox4 r = philox4x32_10((uint32_t_)b, (uint32_t_)g, (uint32_t_)(g >> 32), 0u,
                                      (uint32_t_)seed, (uint32_t_)(seed >> 32));
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const int k = 4 * b + q;
                if (k < P) w[k] = (T)(uniform_pm1(r.v[q]) * (k < 3 * H ? s1 : s2));
            }
        }
    }
    // Optimizer state: SGD's momentum buffer or Adam's moments (unused: optimised away).
    T m[P], v[P];
#pragma unroll
    for (int k = 0; k < P; ++k) {
        m[k] = (R::momentum || R::adam) ? buffers[k * n + i] : T(0);
        v[k] = R::adam ? buffers[(P + k) * n + i] : T(0);
    }

    T x[4][2], y[4], side[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) {
        x[s][0] = data[2 * s];
        x[s][1] = data[2 * s + 1];
        y[s] = data[8 + s];
        side[s] = data[12 + s];
    }
    const T rate = rates[i];
    const T mom = R::momentum ? rates[R::row_momentum * n + i] : T(0);
    const T gain = R::dampening ? rates[R::row_gain * n + i] : T(1);
    const T decay = R::weight_decay ? rates[R::row_decay * n + i] : T(0);  // wd, or AdamW's 1 - lr wd
    const double beta1 = consts[0], beta2 = consts[1];  // (bias is null unless Adam)
    const T target = (T)consts[3], eps = (T)consts[2], b2 = (T)beta2, w2 = (T)(1.0 - beta2);
    const T w1 = (T)(1.0 - beta1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
    const bool lerp_low = w1 < T(0.5);  // m + w (g - m) if w < 0.5, else g - (1 - w) (g - m)
    const T lerp_c = lerp_low ? w1 : -(T(1) - w1);
    const T zero = 0, half = 0.5, quarter = 0.25;
    // First events of this launch, as local epochs in 32 bits (cheaper in the
    // loop); a network with an earlier event starts at 0: no new one is taken.
    const long long solved_in = solved_io[i], diverged_in = diverged_io[i];
    const long long target_in = R::target ? target_io[i] : -1;
    int solved = solved_in >= 0 ? 0 : -1, diverged = diverged_in >= 0 ? 0 : -1;  // a diverged network stays frozen
    int target_epoch = target_in >= 0 ? 0 : -1;
    // epochs to the next history row (0: never), and where it goes
    int countdown = record_every > 0 ? (int)((record_every - epoch0 % record_every) % record_every) + 1 : 0;
    T* row = history + i;

    for (int epoch = 0; epoch < epochs; ++epoch) {
        const bool record = --countdown == 0;
        const bool need_loss = LOSS == MSE || R::target || record;
        // Forward pass, sample by sample, accumulating the gradients as we go
        // (sums over samples in order 0..3, as the reference).
        T g[P], loss = zero;
        bool all_right = true;
#pragma unroll
        for (int k = 0; k < P; ++k) g[k] = zero;
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            T h[H], z2;
            const T o = forward_sample<H, T, FAST, ACT>(w, x[s][0], x[s][1], h, z2);
            if (need_loss) loss = loss + loss_term<LOSS, M>(o, z2, y[s]);
            all_right = all_right && side[s] * (o - half) > zero;
            // Backpropagation, the seed's steps (1)-(5).
            const T d2 = output_gradient<LOSS>(o, y[s]);
            g[4 * H] = g[4 * H] + d2;
#pragma unroll
            for (int j = 0; j < H; ++j) {
                g[3 * H + j] = g[3 * H + j] + d2 * h[j];
                const T d1 = activation_slope<ACT>(d2 * w[3 * H + j], h[j]);
                g[2 * j] = g[2 * j] + d1 * x[s][0];
                g[2 * j + 1] = g[2 * j + 1] + d1 * x[s][1];
                g[2 * H + j] = g[2 * H + j] + d1;
            }
        }
        loss = loss * quarter;
        solved = (solved < 0 && all_right) ? epoch : solved;
        if (R::target) target_epoch = (target_epoch < 0 && loss <= target) ? epoch : target_epoch;
        if (record) {
            *row = loss;
            row += n;
            countdown = record_every;
        }

        // The optimizer step, as torch.optim. An update that would make any
        // parameter (or Adam moment) NaN/inf is not applied: the network and
        // its buffers freeze and the epoch is recorded. x * 0 is 0 for finite
        // x and NaN for inf/NaN, so one FMA per value tests it. (SGD's buffer
        // needs no test: p - lr * (an inf/NaN buffer) is inf/NaN.)
        T nw[P], nm[P], nv[P];
        T bad = zero;
        T step = rate, c2 = T(1);
        if constexpr (R::adam) {  // 1 / bias_correction1 and bias_correction2 ** 0.5 of this step
            step = rate * bias[2 * epoch];
            c2 = bias[2 * epoch + 1];
        }
        const bool first = epoch0 == 0 && epoch == 0;
#pragma unroll
        for (int k = 0; k < P; ++k) {
            T gd = g[k];
            if constexpr (R::l2) gd = gd + decay * w[k];
            if constexpr (R::adam) {
                const T base = (R::weight_decay && OPT == ADAMW) ? w[k] * decay : w[k];  // AdamW: p (1 - lr wd)
                nm[k] = (lerp_low ? m[k] : gd) + lerp_c * (gd - m[k]);
                nv[k] = v[k] * b2 + (w2 * gd) * gd;
                nw[k] = base - (step * nm[k]) / (M::sqrt(nv[k]) / c2 + eps);
                bad = nm[k] * zero + bad;
                bad = nv[k] * zero + bad;
            } else if constexpr (R::momentum) {
                // buf = grad on the first step (the buffer starts at 0, so without
                // dampening momentum * 0 + grad is exactly that), then momentum buf + gain grad
                nm[k] = R::dampening ? (first ? gd : mom * m[k] + gain * gd) : mom * m[k] + gd;
                nw[k] = w[k] - rate * (R::nesterov ? gd + mom * nm[k] : nm[k]);
            } else {
                nw[k] = w[k] - rate * gd;
            }
            bad = nw[k] * zero + bad;
        }
        const bool ok = bad == zero && diverged < 0;
#pragma unroll
        for (int k = 0; k < P; ++k) {
            w[k] = ok ? nw[k] : w[k];
            if constexpr (R::momentum || R::adam) m[k] = ok ? nm[k] : m[k];
            if constexpr (R::adam) v[k] = ok ? nv[k] : v[k];
        }
        diverged = (!ok && diverged < 0) ? epoch : diverged;
    }

    // The parameters reached: loss, predictions and events at the last epoch.
    T loss = zero;
    bool all_right = true;
#pragma unroll
    for (int s = 0; s < 4; ++s) {
        T h[H], z2;
        const T o = forward_sample<H, T, FAST, ACT>(w, x[s][0], x[s][1], h, z2);
        loss = loss + loss_term<LOSS, M>(o, z2, y[s]);
        all_right = all_right && side[s] * (o - half) > zero;
        pred_out[s * n + i] = o;
    }
    loss = loss * quarter;
    loss_out[i] = loss;
    solved = (solved < 0 && all_right) ? epochs : solved;
    solved_io[i] = solved_in >= 0 ? solved_in : (solved >= 0 ? epoch0 + solved : -1);
    diverged_io[i] = diverged_in >= 0 ? diverged_in : (diverged >= 0 ? epoch0 + diverged : -1);
    if (R::target) {
        target_epoch = (target_epoch < 0 && loss <= target) ? epochs : target_epoch;
        target_io[i] = target_in >= 0 ? target_in : (target_epoch >= 0 ? epoch0 + target_epoch : -1);
    }
#pragma unroll
    for (int k = 0; k < P; ++k) {
        params_out[k * n + i] = w[k];
        if (R::momentum || R::adam) buffers[k * n + i] = m[k];
        if (R::adam) buffers[(P + k) * n + i] = v[k];
    }
}

// extern "C" fastxor_train_<NAME>(...): the kernel for one (H, T, fast-math, recipe).
#define FASTXOR_ENTRY(NAME, H, T, FAST, OPT, LOSS, ACT, FLAGS)                                     \
    extern "C" __global__ void fastxor_train_##NAME(                                              \
        const T* init, uint64_t_ seed, uint64_t_ start, const double* scale, const T* rates,       \
        const double* consts, const T* bias, const T* data, long long epoch0, int epochs,          \
        int record_every,                                                                          \
        long long n, T* params_out, T* buffers, T* loss_out, T* pred_out, long long* solved_io,    \
        long long* diverged_io, long long* target_io, T* history) {                                \
        train_network<H, T, FAST, OPT, LOSS, ACT, FLAGS>(                                          \
            init, seed, start, scale, rates, consts, bias, data, epoch0, epochs, record_every, n,  \
            params_out, buffers, loss_out, pred_out, solved_io, diverged_io, target_io, history);  \
    }
