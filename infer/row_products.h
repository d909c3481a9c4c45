#pragma once
// Dense products of inference on the CPU, slice by slice: out = act(a W + b) for up to
// kSliceRows rows of `a` on the calling thread. Torch-free; private to infer/.
//
// It promises that a row's result depends on that row and the weights only: never on which
// slice, block, thread or layout (item order or locality order) it was computed in. So
// inference gives the same embeddings, bit for bit, for any thread count and either layout.
//
// Why it takes care: OpenBLAS computes a row of C with the same operations only when the row
// falls in one of its kernel's full micro-tiles of rows (24 rows for its Haswell/Zen sgemm
// kernel, 16 for SkylakeX); the rows of a partial tile at the end of a call come out of a
// tail kernel that rounds differently (Debian 12's OpenBLAS 0.3.21; the test "the embeddings
// do not depend on the thread count or the block size" fails without the padding). Every
// product here is one call of exactly kSliceRows rows, a multiple of every tile height in
// use; a shorter slice is padded in per-thread scratch.
// kSliceRows rows of the widest operands (128 floats) take 240 KiB: a slice's rows stay in
// L2 from one product to the next.

#include <cstdint>

namespace pgraph::infer {

inline constexpr std::uint64_t kSliceRows = 480;

// One layer's weights as the products read them: `wt` is in x out, row-major (the transpose
// of a torch Linear weight); `bias` has `out` floats, or is null for none.
struct DenseWeights {
  const float* wt = nullptr;
  const float* bias = nullptr;
  std::uint32_t in = 0, out = 0;
};

// out[rows x w.out] = act(a[rows x w.in] * wt + bias), act = ReLU when `relu`, else identity.
// REQUIRES: rows <= kSliceRows; `a` and `out` do not overlap. Thread-safe (scratch is
// per thread). Uses the process's cblas_sgemm (OpenBLAS held at one thread by the caller),
// or a plain loop when there is none.
void SliceProduct(const DenseWeights& w, const float* a, std::uint64_t rows, float* out,
                  bool relu);

}  // namespace pgraph::infer
