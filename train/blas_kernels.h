#pragma once
// pgraph::train::SelectBlasKernels — makes OpenBLAS use the kernels the CPU can run.
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
// a pre-AVX fallback, or the CPU lacks AVX2. Call it before any BLAS work starts; later
// calls return the first call's result. Thread-safe.
//
// Returns the OpenBLAS kernel set in use ("" when the BLAS is not OpenBLAS).
#include <string>

namespace pgraph::train {

std::string SelectBlasKernels();

}  // namespace pgraph::train
