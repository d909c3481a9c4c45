#pragma once
// Private to train/ (infer/ may use it too): the BLAS library's own thread pool.
//
// Debian's libtorch calls whatever libblas.so.3 the system points to; with OpenBLAS
// (libopenblas0-pthread, which the setup script installs) every matrix product is split over
// OpenBLAS's own pthread pool, sized to all cores when the library loads and independent of
// at::set_num_threads. Its idle workers spin on sched_yield. On 2 cores that pool competes
// with torch's OpenMP team (which spins too) and with the producer stages: the measured
// cost was 10-15x on the training step (docs/BENCHMARKS.md, "train").
//
// SetBlasThreads(n) sets OpenBLAS's thread count (openblas_set_num_threads, looked up at run
// time so any other BLAS still works) and returns the count before the call, or 0 when the
// BLAS is not OpenBLAS (nothing changes then). Process-wide; thread-safe as far as OpenBLAS
// is, so call it between steps, never while another thread is inside a product.
// Requires: n >= 1.

namespace pgraph::train {

int SetBlasThreads(int n);

}  // namespace pgraph::train
