"""Numeric and resource settings shared by every backend, in one place.

Why a module of its own: the accuracy/speed trade-offs (fast-math flags, SIMD
chunk size, allowed ranges) must be the same for every kernel and visible to a
reader in one file, never sprinkled through the code.
"""
import os

import numpy as np

#: LLVM fast-math flags for the Numba kernels. Deliberately *without*
#: ``nnan``/``ninf`` (divergence detection relies on NaN/inf surviving),
#: without ``reassoc`` (it would let LLVM fold the two-constant Cody-Waite
#: range reduction of ``exp`` back into one constant, losing accuracy), and
#: without ``contract``: the kernels' multiply-adds are fused where their
#: source writes them (``backends.numba_fusion``), not where LLVM finds them.
NUMBA_FASTMATH = {"nsz"}

#: Networks per SIMD chunk in the Numba kernel: a multiple of every vector
#: width (8 float32 lanes for AVX2, 16 for AVX-512), small enough that a
#: chunk's parameters stay in L1 cache for the whole training run.
NUMBA_CHUNK = 64
#: A partial chunk's lanes run in whole blocks of this many (numba_kernel._emit_epochs), so that no lane
#: runs LLVM's scalar remainder loop: 8 float32 lanes fill AVX2 (AVX-512 runs them as one 256-bit vector,
#: 8 float64 as one 512-bit; SSE/NEON as 2-4). Measured (2-core Zen 4) against the old scalar remainder:
#: runs of 10-47 networks train 1.2-1.7x faster, a single network at 0.82-0.89x (it costs a block).
NUMBA_SIMD_BLOCK = 8

#: Widest hidden layer for which the Numba kernel trains two lane groups per
#: SIMD iteration (see ``backends.numba_kernel.lane_groups``); measured, not derived.
NUMBA_INTERLEAVE_MAX_HIDDEN = 4
#: ... and for at most this many samples. Measured 2026-12-01 (float32, 2-core Zen 4, 2^15 networks, one
#: group against two, bit-identical results): 3-bit parity (8 samples) H = 3 1.11-1.14e8 against 1.09e8 NE/s,
#: H = 4 8.8-9.2e7 against 8.9-9.7e7; 4-bit parity (16) H = 2 8.2e7 against 7.4e7, H = 4 4.9-5.0e7 against
#: 4.7e7; the two groups' kernel took 0.5-2.3 s longer to compile. Four samples (XOR) gain 15 % from two.
NUMBA_INTERLEAVE_MAX_SAMPLES = 7
#: The Numba kernel unrolls up to this many samples and loops over more (numba_kernel.loops_over_samples):
#: an unrolled body's compile time grows with S x H (5-bit parity, 32 samples, took minutes). Measured
#: 2026-12-01 (float32, 2-core Zen 4, 2^15 networks x 2 000 epochs) on 4-bit parity (16 samples) the
#: unrolled body trains twice as fast as the loop (H = 4: 5.0e7 against 2.7e7 NE/s; H = 6: 3.6e7 against
#: 1.9e7; H = 8: 2.7e7 against 1.5e7) and compiles in 4-5 s against 2.5-3 s, so 16 samples stay unrolled.
NUMBA_UNROLL_SAMPLES = 16
#: A run of a variant whose unrolled kernel is not compiled yet trains with the kernel that loops over the samples
#: (numba_kernel.rents_the_looped_kernel; the same bits) up to this many network-epochs per thread, counting the
#: variant's earlier rented runs in the process. Measured
#: 2026-12-01 (float32, 2-core Zen 4, compile / network-epochs per s, unrolled against looped): 4-bit parity H = 32
#: 5.8 s / 1.9e6 against 0.9 s / 2.0e6; with Adam and BCE 9.4 s / 1.7e6 against 0.9 s / 1.3e6; the seed's H = 2
#: 2.4e8 against 2.4e8. The slowest looped kernels (0.75x) lose at 1e7 per thread less time than they save.
NUMBA_LOOPED_MAX_WORK = 10_000_000
#: A new variant's final pass compiles in a second process (backends.numba_compile_aside) only when its training
#: kernel has at least this many lines of generated source: that process needs about 1.2 s (Python, Numba, the
#: math functions) before it compiles, and the training kernel compiles in about 1.7 ms per line. Measured
#: 2026-12-01 (2-core Zen 4, new variants of 1000 networks x 1000 epochs, with against without the second process):
#: H = 5 Adam (318 lines) 1.9 against 1.8 s, H = 16 (454) 2.1 against 1.9 s, 4-bit parity H = 8 (670) 2.7
#: against 3.0 s, H = 32 Adam (1620) 4.0 against 4.9 s.
NUMBA_COMPILE_ASIDE_MIN_LINES = 600
#: Vectorise the chunk functions' lane loops in fastxor (``backends.numba_widen``: LLVM optimises the scalar code,
#: fastxor widens it, LLVM generates the machine code) instead of with LLVM's loop vectoriser: the same bits in
#: about half the compile time of a large kernel; False (``FASTXOR_WIDEN=0``): LLVM's vectoriser, for comparing.
NUMBA_WIDEN = os.environ.get("FASTXOR_WIDEN", "1") != "0"
#: Compile the Numba kernels' chunk functions straight to LLVM IR (``backends.numba_direct_ir``), skipping
#: Numba's front end; False: through ``numba.cfunc`` (the same bits; for comparing the two). The driver over
#: chunks is always compiled straight to LLVM IR.
NUMBA_DIRECT_IR = os.environ.get("FASTXOR_DIRECT_IR", "1") != "0"

#: Supported floating-point types, by name.
DTYPES = {"float32": np.float32, "float64": np.float64}

#: Allowed hidden widths. The kernels are generated fully unrolled per width,
#: so very wide layers would only cost compile time; 32 is far above XOR's need.
HIDDEN_MIN, HIDDEN_MAX = 1, 32

#: Largest number of epochs: solved/diverged epochs are stored as int64,
#: but the kernels count epochs in 32-bit integers.
EPOCHS_MAX = 2**31 - 1

#: Seeds are 64-bit Philox keys.
SEED_MAX = 2**64 - 1

#: Fraction of the machine's available memory a request may use for its
#: outputs before it is refused up front.
MEMORY_FRACTION = 0.8

BACKENDS = ("auto", "numpy", "numba", "cupy")

#: ``backend="auto"`` sends a run to the GPU only from this many networks.
#: Measured on an H200 against numba on its 16-core host (2 000 epochs,
#: bench/results/gpu-20261126.json): x1.3 at 100 networks, x1.4 at 1 000,
#: x7.8 at 10 000; below ~100 the fixed per-call cost of a launch decides.
#: 1 000 keeps the GPU for runs it wins on any host.
GPU_MIN_NETWORKS = 1_000
