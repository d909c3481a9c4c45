#include "infer/row_products.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "storage/blas_runtime.h"

namespace pgraph::infer {
namespace {

// C[rows x n] = bias (broadcast) or 0, then C += A B: the accumulation torch's addmm does,
// so the products round as the model's Linear layers do.
void Multiply(const DenseWeights& w, const float* a, std::uint64_t rows, float* c) {
  const std::uint32_t n = w.out, k = w.in;
  for (std::uint64_t r = 0; r < rows; ++r) {
    if (w.bias != nullptr) {
      std::memcpy(c + r * n, w.bias, n * sizeof(float));
    } else {
      std::memset(c + r * n, 0, n * sizeof(float));
    }
  }
  static const storage::SgemmFn sgemm = storage::CblasSgemm();
  if (sgemm != nullptr) {
    sgemm(storage::kCblasRowMajor, storage::kCblasNoTrans, storage::kCblasNoTrans,
          static_cast<int>(rows), static_cast<int>(n), static_cast<int>(k), 1.0f, a,
          static_cast<int>(k), w.wt, static_cast<int>(n), 1.0f, c, static_cast<int>(n));
    return;
  }
  for (std::uint64_t r = 0; r < rows; ++r) {  // no BLAS in the process: correct, slow
    for (std::uint32_t i = 0; i < k; ++i) {
      const float x = a[r * k + i];
      for (std::uint32_t j = 0; j < n; ++j) c[r * n + j] += x * w.wt[i * n + j];
    }
  }
}

}  // namespace

void SliceProduct(const DenseWeights& w, const float* a, std::uint64_t rows, float* out,
                  bool relu) {
  if (rows == 0) return;
  float* c = out;
  if (rows < kSliceRows) {
    thread_local std::vector<float> pad_in, pad_out;
    pad_in.resize(kSliceRows * w.in);
    pad_out.resize(kSliceRows * w.out);
    std::memcpy(pad_in.data(), a, rows * w.in * sizeof(float));
    // Zero rows below: finite, so the padding cannot raise floating-point traps or NaNs.
    std::fill(pad_in.begin() + static_cast<std::ptrdiff_t>(rows * w.in), pad_in.end(), 0.0f);
    a = pad_in.data();
    c = pad_out.data();
  }
  Multiply(w, a, c == out ? rows : kSliceRows, c);
  if (c != out) std::memcpy(out, c, rows * w.out * sizeof(float));
  if (relu) {
    for (std::uint64_t i = 0; i < rows * w.out; ++i) out[i] = std::max(out[i], 0.0f);
  }
}

}  // namespace pgraph::infer
