#include "train/csr_pool.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>
// at::parallel_for only uses torch's thread team where this file is compiled with OpenMP;
// without it every range runs on the calling thread, silently (see the top CMakeLists.txt).
#ifndef _OPENMP
#error "compile with OpenMP (OpenMP::OpenMP_CXX), or at::parallel_for runs serially"
#endif

#include <algorithm>
#include <cstdint>

namespace pgraph::train {
namespace {

// The loops below are plain C++ the compiler vectorises over the m columns; the clones
// give it AVX-512 / AVX2 + FMA where the CPU has them without building the project with
// -march. The clones are ISA levels, chosen from the CPU's feature flags: GCC 12 chooses
// "arch=<cpu name>" clones by CPU model, so a Sapphire/Emerald Rapids CPU got the SSE2
// default from "arch=skylake-avx512" (measured 2x slower).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PGRAPH_POOL_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PGRAPH_POOL_CLONES
#endif

template <typename T>
struct Csr {
  const std::int64_t* offsets;
  const std::int64_t* index;
  const T* weight;  // null: mean pooling
  std::int64_t n, nnz;

  std::int64_t End(std::int64_t u) const { return u + 1 < n ? offsets[u + 1] : nnz; }
};

// out[u] = sum_e w_e p[index[e]] for u in [begin, end). Inlined into each clone below, so
// that every clone compiles it for its own instruction set.
template <typename T>
[[gnu::always_inline]] inline void PoolRowsBody(const Csr<T>& a, const T* p, std::int64_t m,
                                                bool relu, std::int64_t begin, std::int64_t end,
                                                T* out) {
  for (std::int64_t u = begin; u < end; ++u) {
    T* __restrict o = out + u * m;
    std::fill(o, o + m, T{0});
    const std::int64_t e0 = a.offsets[u], e1 = a.End(u);
    for (std::int64_t e = e0; e < e1; ++e) {
      const T* __restrict pv = p + a.index[e] * m;
      const T w = a.weight ? a.weight[e] : T{1};
      if (relu) {
        for (std::int64_t c = 0; c < m; ++c) o[c] += w * std::max(pv[c], T{0});
      } else {
        for (std::int64_t c = 0; c < m; ++c) o[c] += w * pv[c];
      }
    }
    if (a.weight == nullptr && e1 > e0) {
      const T inv = T{1} / static_cast<T>(e1 - e0);
      for (std::int64_t c = 0; c < m; ++c) o[c] *= inv;
    }
  }
}

// dp[index[e]][c0, c1) += w_e g[u][c0, c1) over every entry, in entry order; then, when
// `x` is given (ReLU pooling), dp = 0 where x <= 0.
template <typename T>
[[gnu::always_inline]] inline void ScatterRowsBody(const Csr<T>& a, const T* g, std::int64_t m,
                                                   const T* x, std::int64_t rows,
                                                   std::int64_t c0, std::int64_t c1, T* dp) {
  const std::int64_t width = c1 - c0;
  for (std::int64_t u = 0; u < a.n; ++u) {
    const std::int64_t e0 = a.offsets[u], e1 = a.End(u);
    if (e1 == e0) continue;
    const T* __restrict gu = g + u * m + c0;
    const T mean_w = T{1} / static_cast<T>(e1 - e0);
    for (std::int64_t e = e0; e < e1; ++e) {
      T* __restrict d = dp + a.index[e] * m + c0;
      const T w = a.weight ? a.weight[e] : mean_w;
      for (std::int64_t c = 0; c < width; ++c) d[c] += w * gu[c];
    }
  }
  if (x == nullptr) return;
  for (std::int64_t v = 0; v < rows; ++v) {
    const T* __restrict xv = x + v * m + c0;
    T* __restrict d = dp + v * m + c0;
    for (std::int64_t c = 0; c < width; ++c) d[c] = xv[c] > T{0} ? d[c] : T{0};
  }
}

PGRAPH_POOL_CLONES
void PoolRows(const Csr<float>& a, const float* p, std::int64_t m, bool relu, std::int64_t begin,
              std::int64_t end, float* out) {
  PoolRowsBody(a, p, m, relu, begin, end, out);
}
PGRAPH_POOL_CLONES
void PoolRows(const Csr<double>& a, const double* p, std::int64_t m, bool relu,
              std::int64_t begin, std::int64_t end, double* out) {
  PoolRowsBody(a, p, m, relu, begin, end, out);
}
PGRAPH_POOL_CLONES
void ScatterRows(const Csr<float>& a, const float* g, std::int64_t m, const float* x,
                 std::int64_t rows, std::int64_t c0, std::int64_t c1, float* dp) {
  ScatterRowsBody(a, g, m, x, rows, c0, c1, dp);
}
PGRAPH_POOL_CLONES
void ScatterRows(const Csr<double>& a, const double* g, std::int64_t m, const double* x,
                 std::int64_t rows, std::int64_t c0, std::int64_t c1, double* dp) {
  ScatterRowsBody(a, g, m, x, rows, c0, c1, dp);
}

template <typename T>
Csr<T> MakeCsr(const at::Tensor& offsets, const at::Tensor& index, const at::Tensor& weight,
               bool mean) {
  return Csr<T>{offsets.data_ptr<std::int64_t>(), index.data_ptr<std::int64_t>(),
                mean ? nullptr : weight.data_ptr<T>(), offsets.numel(), index.numel()};
}

void Check(const at::Tensor& projected, const at::Tensor& offsets, const at::Tensor& index,
           const at::Tensor& weight, bool mean) {
  TORCH_CHECK(projected.dim() == 2 && (projected.scalar_type() == at::kFloat ||
                                       projected.scalar_type() == at::kDouble),
              "CsrPool: projected must be a float32 or float64 matrix");
  TORCH_CHECK(offsets.dim() == 1 && offsets.scalar_type() == at::kLong && offsets.is_contiguous(),
              "CsrPool: offsets must be a contiguous int64 vector");
  TORCH_CHECK(index.dim() == 1 && index.scalar_type() == at::kLong && index.is_contiguous(),
              "CsrPool: index must be a contiguous int64 vector");
  const std::int64_t n = offsets.numel(), nnz = index.numel();
  if (!mean) {
    TORCH_CHECK(weight.dim() == 1 && weight.scalar_type() == projected.scalar_type() &&
                    weight.is_contiguous() && weight.numel() == nnz,
                "CsrPool: weight must be a contiguous vector as long as index, of the dtype "
                "of projected");
    TORCH_CHECK(!weight.requires_grad(), "CsrPool: no gradient for the pooling weights");
  }
  // One cheap pass each, so that a bad batch fails here rather than reading out of bounds.
  const std::int64_t* off = offsets.data_ptr<std::int64_t>();
  const std::int64_t* idx = index.data_ptr<std::int64_t>();
  TORCH_CHECK(n > 0 ? off[0] == 0 : nnz == 0, "CsrPool: offsets must start at 0");
  for (std::int64_t u = 1; u < n; ++u) {
    TORCH_CHECK(off[u] >= off[u - 1] && off[u] <= nnz, "CsrPool: offsets must not decrease");
  }
  const std::int64_t rows = projected.size(0);
  for (std::int64_t e = 0; e < nnz; ++e) {
    TORCH_CHECK(idx[e] >= 0 && idx[e] < rows, "CsrPool: index out of range");
  }
}

at::Tensor Forward(const at::Tensor& p, const at::Tensor& offsets, const at::Tensor& index,
                   const at::Tensor& weight, bool mean, bool relu) {
  const std::int64_t m = p.size(1);
  at::Tensor out = at::empty({offsets.numel(), m}, p.options());
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "CsrPool", [&] {
    const Csr<scalar_t> a = MakeCsr<scalar_t>(offsets, index, weight, mean);
    const scalar_t* pp = p.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    // Rows are independent; ~64 rows of T entries are enough work to be worth a thread.
    at::parallel_for(0, a.n, 64, [&](std::int64_t begin, std::int64_t end) {
      PoolRows(a, pp, m, relu, begin, end, po);
    });
  });
  return out;
}

// x: the pooled rows' input when they went through the ReLU (its mask), else undefined.
at::Tensor Backward(const at::Tensor& grad, const at::Tensor& offsets, const at::Tensor& index,
                    const at::Tensor& weight, bool mean, const at::Tensor& x,
                    std::int64_t rows) {
  at::Tensor g = grad.contiguous();
  const std::int64_t m = g.size(1);
  at::Tensor dp = at::zeros({rows, m}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "CsrPoolBackward", [&] {
    const Csr<scalar_t> a = MakeCsr<scalar_t>(offsets, index, weight, mean);
    const scalar_t* pg = g.data_ptr<scalar_t>();
    scalar_t* pd = dp.data_ptr<scalar_t>();
    const scalar_t* px = x.defined() ? x.data_ptr<scalar_t>() : nullptr;
    // Column blocks of 16 (one AVX-512 vector of floats) per unit of work: threads never
    // write the same element, and each element's sum keeps the entry order.
    constexpr std::int64_t kBlock = 16;
    const std::int64_t blocks = (m + kBlock - 1) / kBlock;
    at::parallel_for(0, blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
      ScatterRows(a, pg, m, px, rows, b0 * kBlock, std::min(m, b1 * kBlock), pd);
    });
  });
  return dp;
}

class CsrPoolFunction : public torch::autograd::Function<CsrPoolFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& projected,
                            const at::Tensor& offsets, const at::Tensor& index,
                            const at::Tensor& weight, bool mean, bool relu) {
    Check(projected, offsets, index, weight, mean);
    at::Tensor p = projected.contiguous();
    ctx->save_for_backward({offsets, index, mean ? at::Tensor() : weight,
                            relu ? p : at::Tensor()});
    ctx->saved_data["rows"] = p.size(0);
    ctx->saved_data["mean"] = mean;
    return Forward(p, offsets, index, weight, mean, relu);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor dp = Backward(grads[0], saved[0], saved[1], saved[2],
                             ctx->saved_data["mean"].toBool(), saved[3],
                             ctx->saved_data["rows"].toInt());
    return {dp, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor CsrPool(const at::Tensor& projected, const at::Tensor& offsets,
                   const at::Tensor& index, const at::Tensor& weight, bool mean, bool relu) {
  if (!projected.device().is_cpu()) {
    auto result = at::embedding_bag(relu ? at::relu(projected) : projected, index, offsets,
                                    /*scale_grad_by_freq=*/false, /*mode=*/mean ? 1 : 0,
                                    /*sparse=*/false, mean ? at::Tensor() : weight,
                                    /*include_last_offset=*/false);
    return std::get<0>(result);
  }
  return CsrPoolFunction::apply(projected, offsets, index, weight, mean, relu);
}

}  // namespace pgraph::train
