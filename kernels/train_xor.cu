// fastxor GPU kernel: one thread trains one D-H-1 network on S samples, full
// batch, with a training recipe of fastxor.train (the seed's nn.Linear +
// sigmoid + MSELoss + optim.SGD, or SGD with momentum/Nesterov/weight decay,
// Adam, AdamW; MSE, BCE or BCE-with-logits; sigmoid, tanh or ReLU hidden
// units; a sigmoid or linear output unit; the output layer's own learning
// rate; a target loss). The parameters, gradients and optimizer state live in
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
// bit only for init_scale >= 2^-103 sqrt(max(D, H)) (1.4e-31 for XOR's 2-2-1;
// see cupy_kernel.ftz_init_scale_bound): below it, subnormal initial values are 0.
//
// The network's data (D inputs, S samples) is compile-time: X, y and the
// target sides are read once into registers when S <= REGISTER_SAMPLES, and
// from the (cached, every thread the same address) data array in the sample
// loop above that. With BX (X is the boolean inputs in binary counting
// order, as every named function's), input q of sample s is the bit
// (s >> (D - 1 - q)) & 1: no register holds X, and once the sample loop is
// unrolled the products with inputs of 0 and 1 are dropped and folded by
// hand (w * 1 == w; w * 0 is +-0 and vanishes in the sum; the compiler may
// not do this itself under IEEE rules).
//
// Targets of 0 and 1 (every boolean function's) can be compile-time too: YT
// >= 0 holds them as bits (target s is (YT >> s) & 1, S <= REGISTER_SAMPLES),
// and each sample's terms are folded by hand: o - 0 is o, and the solved test
// side (o - 0.5) > 0 is o > 0.5 for side +1 and o < 0.5 for side -1 (o - 0.5
// is exact or keeps its sign for every o in [0, 1], NaN false either way), so
// the results are those of the run-time targets bit for bit. YT = -1: targets
// read from the data. HIST false: an entry for launches that record no loss
// (no history countdown in the epoch loop: for float32 H = 2 with XOR's
// targets folded, 294 SASS instructions and 48 registers an epoch, against
// 319 and 56); it may spill where the other does not (Adam at H = 8), so the
// loader falls back to the other entry where it has local memory.
//
// An entry point is instantiated by appending
//     FASTXOR_ENTRY(NAME, D, H, S, BX, T, FAST, OPT, LOSS, ACT, FLAGS, YT, HIST)
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
enum { MOMENTUM = 1, NESTEROV = 2, DAMPENING = 4, WEIGHT_DECAY = 8, TARGET = 16, LR_OUTPUT = 32, LINEAR = 64 };

template <int OPT, int LOSS, int ACT, int FLAGS> struct Recipe {
    static constexpr bool adam = OPT != SGD;
    static constexpr bool momentum = OPT == SGD && (FLAGS & MOMENTUM);
    static constexpr bool nesterov = momentum && (FLAGS & NESTEROV);
    static constexpr bool dampening = momentum && (FLAGS & DAMPENING);
    static constexpr bool weight_decay = FLAGS & WEIGHT_DECAY;
    static constexpr bool l2 = weight_decay && OPT != ADAMW;  // added to the gradient
    static constexpr bool target = FLAGS & TARGET;
    static constexpr bool lr_output = FLAGS & LR_OUTPUT;  // W2, b2 have their own rate
    static constexpr bool linear = FLAGS & LINEAR;        // the output unit is the identity
    // Per-network coefficient rows (Recipe.rate_names):
    // lr, [lr_output], [momentum, [gain]], [weight_decay | decay, [decay_output]].
    static constexpr int row_lr_output = 1;
    static constexpr int row_momentum = 1 + (lr_output ? 1 : 0), row_gain = row_momentum + 1;
    static constexpr int row_decay = row_momentum + (momentum ? 1 : 0) + (dampening ? 1 : 0);
    static constexpr int row_decay_output = row_decay + 1;
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

// x / S as the reference divides: a product with 1/S where that is exact.
template <int S, typename T> __device__ __forceinline__ T over_samples(T x) {
    if constexpr ((S & (S - 1)) == 0) return x * T(1.0 / S);
    else return x / T(S);
}

// d loss / d z2 of one sample (S samples): the criterion's backward, then the
// output unit's (a sigmoid's o (1 - o); a linear output's 1).
template <int LOSS, int S, bool LINEAR_OUT, typename T> __device__ __forceinline__ T output_gradient(T o, T y) {
    const T d = o - y;
    if constexpr (LOSS == MSE) {
        // 2/S (o - y) o (1 - o): one product where 2/S is exact (S = 4: the seed's d * 0.5)
        const T c = ((S & (S - 1)) == 0) ? d * T(2.0 / S) : (d * T(2)) / T(S);
        if constexpr (LINEAR_OUT) return c;
        return c * o * (T(1) - o);
    } else if constexpr (LOSS == BCE) {  // 1/S (o - y) / max(o (1 - o), 1e-12), then o (1 - o)
        const T q = (T(1) - o) * o, eps = T(1e-12);
        return ((T(1.0 / S) * d) / (q < eps ? eps : q)) * (T(1) - o) * o;
    } else {
        return d * T(1.0 / S);  // BCEWithLogits: (sigmoid(z) - y) / S
    }
}

// ---------------------------------------------------------------- the kernel

// Samples held in registers at most: above, the sample loop reads X from memory.
constexpr int REGISTER_SAMPLES = 16;

// One network's parameters in flat order: W1 (H x D, row-major), b1, W2, b2.
template <int D, int H> struct Layout {
    static constexpr int P = (D + 2) * H + 1, b1 = D * H, w2 = D * H + H, b2 = D * H + 2 * H;
};

// a + w x, with x a boolean input (BX: 0 or 1) added or skipped instead of multiplied.
template <bool BX, typename T> __device__ __forceinline__ T add_times(T a, T w, T x) {
    if constexpr (BX) return x != T(0) ? a + w : a;
    else return a + w * x;
}

// One sample's forward pass: hidden activations h, the output's pre-activation z2, output o
// (the hidden sums over the inputs in order, then the bias, as the reference;
// o is z2 itself for a linear output unit).
template <int D, int H, bool BX, typename T, bool FAST, int ACT, bool LINEAR_OUT>
__device__ __forceinline__ T forward_sample(const T (&w)[Layout<D, H>::P], const T (&x)[D], T (&h)[H], T& z2) {
    typedef Math<T, FAST> M;
    typedef Layout<D, H> L;
    T z = 0;
#pragma unroll
    for (int j = 0; j < H; ++j) {
        T a = BX ? (x[0] != T(0) ? w[D * j] : T(0)) : w[D * j] * x[0];
#pragma unroll
        for (int q = 1; q < D; ++q) a = add_times<BX>(a, w[D * j + q], x[q]);
        h[j] = activate<ACT, M>(a + w[L::b1 + j]);
        z = z + w[L::w2 + j] * h[j];
    }
    z2 = z + w[L::b2];
    if constexpr (LINEAR_OUT) return z2;
    return M::sigmoid(z2);
}

// Sample s of the data (X row-major S x D, then y, then the target sides):
// from registers for small S, else from memory.
template <int D, int S, bool BX, typename T, int YT> struct Samples {
    static constexpr bool held = S <= REGISTER_SAMPLES;
    static_assert(YT < 0 || held, "compile-time targets need the samples in registers");
    T x[held && !BX ? S : 1][D], y[held && YT < 0 ? S : 1], side[held && YT < 0 ? S : 1];
    const T* data;
    __device__ __forceinline__ explicit Samples(const T* __restrict__ d) : data(d) {
        if constexpr (held) {
#pragma unroll
            for (int s = 0; s < S; ++s) {
                if constexpr (!BX) {
#pragma unroll
                    for (int q = 0; q < D; ++q) x[s][q] = d[D * s + q];
                }
                if constexpr (YT < 0) {
                    y[s] = d[D * S + s];
                    side[s] = d[D * S + S + s];
                }
            }
        }
    }
    __device__ __forceinline__ void get(int s, T (&xs)[D], T& ys, T& sides) const {
#pragma unroll
        for (int q = 0; q < D; ++q) {
            if constexpr (BX) xs[q] = T((s >> (D - 1 - q)) & 1);
            else if constexpr (held) xs[q] = x[s][q];
            else xs[q] = data[D * s + q];
        }
        if constexpr (YT >= 0) {
            ys = T((YT >> s) & 1);
            sides = ((YT >> s) & 1) ? T(1) : T(-1);
        } else if constexpr (held) {
            ys = y[s];
            sides = side[s];
        } else {
            ys = data[D * S + s];
            sides = data[D * S + S + s];
        }
    }
};

// Whether output o is strictly on its target's side of 0.5 (side +1, -1 or
// 0): side (o - 0.5) > 0, folded by hand for compile-time targets (YT >= 0).
template <int YT, typename T> __device__ __forceinline__ bool right_side(T sides, T o) {
    if constexpr (YT >= 0) return sides > T(0) ? o > T(0.5) : o < T(0.5);
    else return sides * (o - T(0.5)) > T(0);
}

// Data layout: every per-network array is structure-of-arrays, network i at
// [row * n + i], so consecutive threads touch consecutive addresses.
// data: X (S x D, row-major), y (S), side (S). rates: the recipe's
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
template <int D, int H, int S, bool BX, typename T, bool FAST, int OPT, int LOSS, int ACT, int FLAGS, int YT,
          bool HIST>
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
    typedef Layout<D, H> L;
    const int P = L::P;  // flat order W1 (row-major), b1, W2, b2
    T w[P];

    if (init != 0) {
#pragma unroll
        for (int k = 0; k < P; ++k) w[k] = init[k * n + i];
    } else {
        const uint64_t_ g = start + (uint64_t_)i;
        const double s = scale[i];
        const double s1 = s / sqrt((double)D), s2 = s / sqrt((double)H);  // nn.Linear: 1/sqrt(fan_in)
#pragma unroll
        for (int b = 0; b < (P + 3) / 4; ++b) {
            Philox4 r = philox4x32_10((uint32_t_)b, (uint32_t_)g, (uint32_t_)(g >> 32), 0u,
                                      (uint32_t_)seed, (uint32_t_)(seed >> 32));
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const int k = 4 * b + q;
                if (k < P) w[k] = (T)(uniform_pm1(r.v[q]) * (k < L::w2 ? s1 : s2));
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

    const Samples<D, S, BX, T, YT> samples(data);
    const T rate = rates[i];
    const T rate_o = R::lr_output ? rates[R::row_lr_output * n + i] : rate;  // W2 and b2's
    const T mom = R::momentum ? rates[R::row_momentum * n + i] : T(0);
    const T gain = R::dampening ? rates[R::row_gain * n + i] : T(1);
    const T decay = R::weight_decay ? rates[R::row_decay * n + i] : T(0);  // wd, or AdamW's 1 - lr wd
    const T decay_o = (R::weight_decay && OPT == ADAMW && R::lr_output) ? rates[R::row_decay_output * n + i] : decay;
    const double beta1 = consts[0], beta2 = consts[1];  // (bias is null unless Adam)
    const T target = (T)consts[3], eps = (T)consts[2], b2 = (T)beta2, w2 = (T)(1.0 - beta2);
    const T w1 = (T)(1.0 - beta1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
    const bool lerp_low = w1 < T(0.5);  // m + w (g - m) if w < 0.5, else g - (1 - w) (g - m)
    const T lerp_c = lerp_low ? w1 : -(T(1) - w1);
    const T zero = 0;
    // First events of this launch, as local epochs in 32 bits (cheaper in the
    // loop); a network with an earlier event starts at 0: no new one is taken.
    const long long solved_in = solved_io[i], diverged_in = diverged_io[i];
    const long long target_in = R::target ? target_io[i] : -1;
    int solved = solved_in >= 0 ? 0 : -1, diverged = diverged_in >= 0 ? 0 : -1;  // a diverged network stays frozen
    int target_epoch = target_in >= 0 ? 0 : -1;
    // epochs to the next history row (0: never), and where it goes
    int countdown = HIST && record_every > 0 ? (int)((record_every - epoch0 % record_every) % record_every) + 1 : 0;
    T* row = history + i;

    for (int epoch = 0; epoch < epochs; ++epoch) {
        const bool record = HIST && --countdown == 0;  // (an entry without history records nothing)
        const bool need_loss = LOSS == MSE || R::target || record;
        // Forward pass, sample by sample, accumulating the gradients as we go
        // (sums over samples in order 0..S-1; the reference's loss and b2
        // gradient sum pairwise from S = 8 on: equal to rounding).
        T g[P], loss = zero;
        bool all_right = true;
#pragma unroll
        for (int k = 0; k < P; ++k) g[k] = zero;
#pragma unroll(Samples<D, S, BX, T, YT>::held ? S : 1)
        for (int s = 0; s < S; ++s) {
            T h[H], z2, xs[D], ys, sides;
            samples.get(s, xs, ys, sides);
            const T o = forward_sample<D, H, BX, T, FAST, ACT, R::linear>(w, xs, h, z2);
            if (need_loss) loss = loss + loss_term<LOSS, M>(o, z2, ys);
            all_right = all_right && right_side<YT>(sides, o);
            // Backpropagation, the seed's steps (1)-(5).
            const T d2 = output_gradient<LOSS, S, R::linear>(o, ys);
            g[L::b2] = g[L::b2] + d2;
#pragma unroll
            for (int j = 0; j < H; ++j) {
                g[L::w2 + j] = g[L::w2 + j] + d2 * h[j];
                const T d1 = activation_slope<ACT>(d2 * w[L::w2 + j], h[j]);
#pragma unroll
                for (int q = 0; q < D; ++q) g[D * j + q] = add_times<BX>(g[D * j + q], d1, xs[q]);
                g[L::b1 + j] = g[L::b1 + j] + d1;
            }
        }
        loss = over_samples<S>(loss);
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
        T step = rate, step_o = rate_o, c2 = T(1);
        if constexpr (R::adam) {  // 1 / bias_correction1 and bias_correction2 ** 0.5 of this step
            step = rate * bias[2 * epoch];
            if constexpr (R::lr_output) step_o = rate_o * bias[2 * epoch];
            c2 = bias[2 * epoch + 1];
        }
        const bool first = epoch0 == 0 && epoch == 0;
#pragma unroll
        for (int k = 0; k < P; ++k) {
            const bool out_layer = R::lr_output && k >= L::w2;  // compile-time once unrolled
            const T lr_k = out_layer ? rate_o : rate, step_k = out_layer ? step_o : step;
            const T decay_k = out_layer ? decay_o : decay;
            T gd = g[k];
            if constexpr (R::l2) gd = gd + decay * w[k];
            if constexpr (R::adam) {
                const T base = (R::weight_decay && OPT == ADAMW) ? w[k] * decay_k : w[k];  // AdamW: p (1 - lr wd)
                nm[k] = (lerp_low ? m[k] : gd) + lerp_c * (gd - m[k]);
                nv[k] = v[k] * b2 + (w2 * gd) * gd;
                nw[k] = base - (step_k * nm[k]) / (M::sqrt(nv[k]) / c2 + eps);
                bad = nm[k] * zero + bad;
                bad = nv[k] * zero + bad;
            } else if constexpr (R::momentum) {
                // buf = grad on the first step (the buffer starts at 0, so without
                // dampening momentum * 0 + grad is exactly that), then momentum buf + gain grad
                nm[k] = R::dampening ? (first ? gd : mom * m[k] + gain * gd) : mom * m[k] + gd;
                nw[k] = w[k] - lr_k * (R::nesterov ? gd + mom * nm[k] : nm[k]);
            } else {
                nw[k] = w[k] - lr_k * gd;
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
#pragma unroll(Samples<D, S, BX, T, YT>::held ? S : 1)
    for (int s = 0; s < S; ++s) {
        T h[H], z2, xs[D], ys, sides;
        samples.get(s, xs, ys, sides);
        const T o = forward_sample<D, H, BX, T, FAST, ACT, R::linear>(w, xs, h, z2);
        loss = loss + loss_term<LOSS, M>(o, z2, ys);
        all_right = all_right && right_side<YT>(sides, o);
        pred_out[s * n + i] = o;
    }
    loss = over_samples<S>(loss);
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

// extern "C" fastxor_train_<NAME>(...): the kernel for one (D, H, S, T, fast-math, recipe).
#define FASTXOR_ENTRY(NAME, D, H, S, BX, T, FAST, OPT, LOSS, ACT, FLAGS, YT, HIST)                  \
    extern "C" __global__ void fastxor_train_##NAME(                                              \
        const T* init, uint64_t_ seed, uint64_t_ start, const double* scale, const T* rates,       \
        const double* consts, const T* bias, const T* data, long long epoch0, int epochs,          \
        int record_every,                                                                          \
        long long n, T* params_out, T* buffers, T* loss_out, T* pred_out, long long* solved_io,    \
        long long* diverged_io, long long* target_io, T* history) {                                \
        train_network<D, H, S, BX, T, FAST, OPT, LOSS, ACT, FLAGS, YT, HIST>(                      \
            init, seed, start, scale, rates, consts, bias, data, epoch0, epochs, record_every, n,  \
            params_out, buffers, loss_out, pred_out, solved_io, diverged_io, target_io, history);  \
    }
