#pragma once
// pgraph::storage — the process's BLAS library, found at run time (OpenBLAS on Debian).
//
// In storage, the one library every component links, because train, infer and ann all
// multiply matrices through it; nothing here links a BLAS: libtorch brings libblas.so.3 into
// pgraph-torch, and torch-free programs (`pgraph index`) load it on first use (CblasSgemm),
// so `pgraph` itself starts without paying for OpenBLAS's start-up (~7 ms per process).
// Thread-safe.

#include <string>

namespace pgraph::storage {

// SelectBlasKernels makes OpenBLAS use the kernels the CPU can run.
//
// Debian 12's OpenBLAS 0.3.21 (the BLAS behind Debian's libtorch) picks its kernels from the
// CPU model number and falls back to the SSE3 "Prescott" kernels for models it predates
// (e.g. Emerald Rapids, model 0xCF): every matrix product then runs 4-5x below what the
// same library reaches with its AVX-512 kernels on that CPU. OpenBLAS only reads
// OPENBLAS_CORETYPE when it loads, before main(); this re-runs its kernel selection with the
// best kernel set the CPU's feature flags allow (SkylakeX for AVX-512, else Haswell for
// AVX2 + FMA).
//
// It changes nothing when: OPENBLAS_CORETYPE is set (the user's choice wins), the BLAS is
// not OpenBLAS with runtime kernel selection, OpenBLAS already chose something other than
// a pre-AVX fallback, or the CPU lacks AVX2. Call it once the BLAS is loaded and before any
// BLAS work starts; later calls return the first call's result.
//
// Returns the OpenBLAS kernel set in use ("" when the BLAS is not OpenBLAS).
std::string SelectBlasKernels();

// SetBlasThreads(n): the BLAS library's own thread pool.
//
// With OpenBLAS (libopenblas0-pthread, which the setup script installs) every matrix product
// is split over OpenBLAS's own pthread pool, sized to all cores when the library loads and
// independent of at::set_num_threads. Its idle workers spin on sched_yield. On 2 cores that
// pool competes with torch's OpenMP team (which spins too) and with the producer stages: the
// measured cost was 10-15x on the training step (docs/BENCHMARKS.md, "train").
//
// Sets OpenBLAS's thread count (openblas_set_num_threads) and returns the count before the
// call, or 0 when the BLAS is not OpenBLAS (nothing changes then). Process-wide; thread-safe
// as far as OpenBLAS is, so call it between steps, never while another thread is inside a
// product. Requires: n >= 1.
int SetBlasThreads(int n);

// Holds OpenBLAS at `n` threads while alive (products called from many threads at once, each
// meant to run on its caller) and restores the count before. Same rules as SetBlasThreads.
class ScopedBlasThreads {
 public:
  explicit ScopedBlasThreads(int n) : before_(SetBlasThreads(n)), n_(n) {}
  ~ScopedBlasThreads() {
    if (before_ > 0 && before_ != n_) SetBlasThreads(before_);
  }
  ScopedBlasThreads(const ScopedBlasThreads&) = delete;
  ScopedBlasThreads& operator=(const ScopedBlasThreads&) = delete;

 private:
  int before_, n_;
};

// C = alpha op(A) op(B) + beta C in CBLAS's conventions (order 101 = row-major, trans 111 =
// no, 112 = transposed).
using SgemmFn = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float* a, int lda, const float* b, int ldb, float beta, float* c,
                         int ldc);
inline constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111, kCblasTrans = 112;

// cblas_sgemm of the BLAS in the process, or of libblas.so.3 loaded now (then its kernels
// selected as above); null when there is none. Looked up once.
SgemmFn CblasSgemm();

}  // namespace pgraph::storage
