#pragma once
// Private to ann/: dot-product kernels. Portable C++ written so that gcc vectorises it;
// each entry point is compiled for x86-64, x86-64-v3 (AVX2+FMA) and x86-64-v4 (AVX-512)
// and picked at load time (target_clones), so the binary runs on any x86-64.
//
// All functions are pure and thread-safe. Within one process a given (a, b) pair always
// gets the same bits back from every kernel here (same accumulation order), which the
// LSH relies on: an item hashed at build time and as a query lands in the same bucket.

#include <cstddef>
#include <cstdint>

namespace pgraph::ann::internal {

// <a, b> over d floats.
float Dot(const float* a, const float* b, std::size_t d);

// <a, b> with b stored as IEEE half.
float DotHalf(const float* a, const std::uint16_t* b, std::size_t d);

// out[i * n + j] = <queries[i], rows[j]> for i < m, j < n; rows and queries are contiguous
// with stride d. Same bits as Dot(queries + i*d, rows + j*d, d).
void DotBlock(const float* queries, std::size_t m, const float* rows, std::size_t n,
              std::size_t d, float* out);

// The LSH signatures of one vector from its projections: sigs[t] for t < tables has bit j
// set when proj[p] - offsets[p] > 0, p = t * bits + j. Returns whether some projection lies
// within scale * norms[p] of its offset, or is not a number (the caller decides those again).
bool PackSigns(const float* proj, const float* offsets, const float* norms, float scale,
               std::uint32_t tables, std::uint32_t bits, std::uint32_t* sigs);

// IEEE half -> float for n values.
void HalfToFloat(const std::uint16_t* in, std::size_t n, float* out);

}  // namespace pgraph::ann::internal
