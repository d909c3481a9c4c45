#include "train/fused_ops.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>
// at::parallel_for only uses torch's thread team where this file is compiled with OpenMP;
// without it every range runs on the calling thread, silently (see the top CMakeLists.txt).
#ifndef _OPENMP
#error "compile with OpenMP (OpenMP::OpenMP_CXX), or at::parallel_for runs serially"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace pgraph::train {
namespace {

// As in train/csr_pool.cc: vectorised over the row width in function clones.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PGRAPH_FUSED_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PGRAPH_FUSED_CLONES
#endif

constexpr double kNormEps = 1e-12;  // the clamp of the unfused expression

// sum_c a[c] * b[c] in 16 independent lanes: a single running sum is a chain of dependent
// adds the compiler may not reorder (no -ffast-math), 4x slower than the lanes.
template <typename T>
[[gnu::always_inline]] inline T Dot(const T* __restrict a, const T* __restrict b,
                                    std::int64_t d) {
  constexpr int kLanes = 16;
  T lanes[kLanes] = {};
  std::int64_t c = 0;
  for (; c + kLanes <= d; c += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += a[c + l] * b[c + l];
  }
  for (; c < d; ++c) lanes[0] += a[c] * b[c];
  T sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

template <typename T>
[[gnu::always_inline]] inline void NormalizeRowsBody(const T* x, std::int64_t d, bool relu,
                                                     std::int64_t begin, std::int64_t end,
                                                     T* y, T* norms) {
  const T eps = static_cast<T>(kNormEps);
  for (std::int64_t i = begin; i < end; ++i) {
    const T* __restrict xr = x + i * d;
    T* __restrict yr = y + i * d;
    for (std::int64_t c = 0; c < d; ++c) yr[c] = relu ? std::max(xr[c], T{0}) : xr[c];
    const T n = std::sqrt(Dot(yr, yr, d));
    norms[i] = n;
    const T clamped = std::max(n, eps);
    for (std::int64_t c = 0; c < d; ++c) yr[c] /= clamped;
  }
}

// dx for rows [begin, end): (dy - y (y . dy)) / n, or dy / eps where the clamp was active;
// times the ReLU mask (y > 0 exactly where x > 0).
template <typename T>
[[gnu::always_inline]] inline void NormalizeRowsBackwardBody(const T* y, const T* norms,
                                                             const T* dy, std::int64_t d,
                                                             bool relu, std::int64_t begin,
                                                             std::int64_t end, T* dx) {
  const T eps = static_cast<T>(kNormEps);
  for (std::int64_t i = begin; i < end; ++i) {
    const T* __restrict yr = y + i * d;
    const T* __restrict gr = dy + i * d;
    T* __restrict out = dx + i * d;
    const T n = norms[i];
    if (n >= eps) {
      const T s = Dot(yr, gr, d);
      for (std::int64_t c = 0; c < d; ++c) out[c] = (gr[c] - yr[c] * s) / n;
    } else {
      for (std::int64_t c = 0; c < d; ++c) out[c] = gr[c] / eps;
    }
    if (relu) {
      for (std::int64_t c = 0; c < d; ++c) out[c] = yr[c] > T{0} ? out[c] : T{0};
    }
  }
}

PGRAPH_FUSED_CLONES
void NormalizeRows(const float* x, std::int64_t d, bool relu, std::int64_t begin,
                   std::int64_t end, float* y, float* norms) {
  NormalizeRowsBody(x, d, relu, begin, end, y, norms);
}
PGRAPH_FUSED_CLONES
void NormalizeRows(const double* x, std::int64_t d, bool relu, std::int64_t begin,
                   std::int64_t end, double* y, double* norms) {
  NormalizeRowsBody(x, d, relu, begin, end, y, norms);
}
PGRAPH_FUSED_CLONES
void NormalizeRowsBackward(const float* y, const float* norms, const float* dy, std::int64_t d,
                           bool relu, std::int64_t begin, std::int64_t end, float* dx) {
  NormalizeRowsBackwardBody(y, norms, dy, d, relu, begin, end, dx);
}
PGRAPH_FUSED_CLONES
void NormalizeRowsBackward(const double* y, const double* norms, const double* dy,
                           std::int64_t d, bool relu, std::int64_t begin, std::int64_t end,
                           double* dx) {
  NormalizeRowsBackwardBody(y, norms, dy, d, relu, begin, end, dx);
}

// Rows per thread task: enough work (~16k elements) to be worth a thread.
std::int64_t RowGrain(std::int64_t d) {
  return std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(1, d));
}

class RowL2NormalizeFunction : public torch::autograd::Function<RowL2NormalizeFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in,
                            bool relu) {
    at::Tensor x = x_in.contiguous();
    const std::int64_t rows = x.size(0), d = x.size(1);
    at::Tensor y = at::empty_like(x);
    at::Tensor norms = at::empty({rows}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "RowL2Normalize", [&] {
      const scalar_t* px = x.data_ptr<scalar_t>();
      scalar_t* py = y.data_ptr<scalar_t>();
      scalar_t* pn = norms.data_ptr<scalar_t>();
      at::parallel_for(0, rows, RowGrain(d), [&](std::int64_t b, std::int64_t e) {
        NormalizeRows(px, d, relu, b, e, py, pn);
      });
    });
    ctx->save_for_backward({y, norms});
    ctx->saved_data["relu"] = relu;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& y = saved[0];
    const at::Tensor& norms = saved[1];
    const bool relu = ctx->saved_data["relu"].toBool();
    at::Tensor dy = grads[0].contiguous();
    const std::int64_t rows = y.size(0), d = y.size(1);
    at::Tensor dx = at::empty_like(y);
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "RowL2NormalizeBackward", [&] {
      const scalar_t* py = y.data_ptr<scalar_t>();
      const scalar_t* pn = norms.data_ptr<scalar_t>();
      const scalar_t* pg = dy.data_ptr<scalar_t>();
      scalar_t* pd = dx.data_ptr<scalar_t>();
      at::parallel_for(0, rows, RowGrain(d), [&](std::int64_t b, std::int64_t e) {
        NormalizeRowsBackward(py, pn, pg, d, relu, b, e, pd);
      });
    });
    return {dx, at::Tensor()};
  }
};

// Forward of SoftmaxLossFirst, in three passes so that the exponentials run in torch's
// vectorised at::exp_ (a scalar std::exp loop was slower than the unfused ops): shifted[i]
// receives row - max(row) (scaled by 1/tau) and first[b] the positive's shifted score.
template <typename T>
void SoftmaxShift(const std::vector<const T*>& parts, const std::vector<std::int64_t>& k,
                  std::int64_t rows, T inv_tau, const std::vector<T*>& shifted, T* first) {
  for (std::int64_t b = 0; b < rows; ++b) {
    T mx = -std::numeric_limits<T>::infinity();
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const T* r = parts[i] + b * k[i];
      for (std::int64_t j = 0; j < k[i]; ++j) mx = std::max(mx, r[j] * inv_tau);
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const T* r = parts[i] + b * k[i];
      T* e = shifted[i] + b * k[i];
      for (std::int64_t j = 0; j < k[i]; ++j) e[j] = r[j] * inv_tau - mx;
    }
    first[b] = shifted[0][b * k[0]];
  }
}

// After exp: normalises each row of probs to sum 1; returns the sum over rows of
// logsumexp(row) - row[0] = log(sum of exps) - first[b] (not log(exp(first)), which
// underflows for a positive far below the row's maximum).
template <typename T>
double SoftmaxNormalize(const std::vector<T*>& probs, const std::vector<std::int64_t>& k,
                        std::int64_t rows, const T* first) {
  double total = 0;
  for (std::int64_t b = 0; b < rows; ++b) {
    T sum = 0;
    for (std::size_t i = 0; i < probs.size(); ++i) {
      const T* e = probs[i] + b * k[i];
      for (std::int64_t j = 0; j < k[i]; ++j) sum += e[j];
    }
    total += std::log(static_cast<double>(sum)) - static_cast<double>(first[b]);
    const T inv_sum = T{1} / sum;
    for (std::size_t i = 0; i < probs.size(); ++i) {
      T* e = probs[i] + b * k[i];
      for (std::int64_t j = 0; j < k[i]; ++j) e[j] *= inv_sum;
    }
  }
  return total;
}

class SoftmaxLossFunction : public torch::autograd::Function<SoftmaxLossFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::TensorList scores,
                            double temperature) {
    const std::int64_t rows = scores[0].size(0);
    std::vector<at::Tensor> parts, probs;
    std::vector<std::int64_t> k;
    for (const at::Tensor& x : scores) {
      TORCH_CHECK(x.dim() == 2 && x.size(0) == rows && x.scalar_type() == scores[0].scalar_type(),
                  "SoftmaxLossFirst: scores must be [B x k] of one dtype");
      parts.push_back(x.contiguous());
      probs.push_back(at::empty_like(parts.back()));
      k.push_back(x.size(1));
    }
    double total = 0;
    at::Tensor first = at::empty({rows}, scores[0].options());
    AT_DISPATCH_FLOATING_TYPES(scores[0].scalar_type(), "SoftmaxLossFirst", [&] {
      std::vector<const scalar_t*> in;
      std::vector<scalar_t*> out;
      for (std::size_t i = 0; i < parts.size(); ++i) {
        in.push_back(parts[i].data_ptr<scalar_t>());
        out.push_back(probs[i].data_ptr<scalar_t>());
      }
      SoftmaxShift<scalar_t>(in, k, rows, static_cast<scalar_t>(1.0 / temperature), out,
                             first.data_ptr<scalar_t>());
      for (at::Tensor& p : probs) p.exp_();
      total = SoftmaxNormalize<scalar_t>(out, k, rows, first.data_ptr<scalar_t>());
    });
    ctx->save_for_backward(probs);
    ctx->saved_data["temperature"] = temperature;
    return at::scalar_tensor(total / static_cast<double>(rows), scores[0].options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto probs = ctx->get_saved_variables();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const std::int64_t rows = probs[0].size(0);
    const double g = grads[0].item<double>();
    torch::autograd::variable_list out;
    // d loss / d score = g / (B tau) * (softmax - [positive]).
    for (std::size_t i = 0; i < probs.size(); ++i) {
      at::Tensor d = probs[i] * (g / static_cast<double>(rows) / temperature);
      if (i == 0) d.select(1, 0).sub_(g / static_cast<double>(rows) / temperature);
      out.push_back(d);
    }
    out.emplace_back();  // temperature
    return out;
  }
};

PGRAPH_FUSED_CLONES
void AdamLoop(float* __restrict p, float* __restrict g, float* __restrict m,
              float* __restrict v, std::int64_t n, float beta1, float one_minus_beta1,
              float beta2, float one_minus_beta2, float sqrt_bc2, float eps, float step,
              float grad_scale, bool scale) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float gi = scale ? g[i] * grad_scale : g[i];
    m[i] = m[i] * beta1 + one_minus_beta1 * gi;
    v[i] = v[i] * beta2 + one_minus_beta2 * gi * gi;
    const float denom = std::sqrt(v[i]) / sqrt_bc2 + eps;
    p[i] = p[i] + step * (m[i] / denom);
    g[i] = 0.0f;
  }
}

}  // namespace

at::Tensor RowL2Normalize(const at::Tensor& x, bool relu) {
  TORCH_CHECK(x.dim() == 2, "RowL2Normalize: x must be a matrix");
  if (!x.device().is_cpu() ||
      (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)) {
    at::Tensor r = relu ? at::relu(x) : x;
    return r / r.norm(2, {1}, /*keepdim=*/true).clamp_min(kNormEps);
  }
  return RowL2NormalizeFunction::apply(x, relu);
}

at::Tensor SoftmaxLossFirst(const std::vector<at::Tensor>& scores, double temperature) {
  TORCH_CHECK(!scores.empty() && scores[0].dim() == 2 && scores[0].size(0) >= 1 &&
                  scores[0].size(1) >= 1 && temperature > 0,
              "SoftmaxLossFirst: needs a positive column and temperature > 0");
  const at::ScalarType t = scores[0].scalar_type();
  if (!scores[0].device().is_cpu() || (t != at::kFloat && t != at::kDouble)) {
    at::Tensor logits = at::cat(scores, 1) / temperature;
    return at::cross_entropy_loss(
        logits, at::zeros({logits.size(0)}, logits.options().dtype(at::kLong)));
  }
  return SoftmaxLossFunction::apply(at::TensorList(scores), temperature);
}

void AdamUpdate(at::Tensor& p, at::Tensor& g, at::Tensor& m, at::Tensor& v,
                const AdamScalars& s) {
  const bool fused = p.device().is_cpu() && p.scalar_type() == at::kFloat &&
                     g.scalar_type() == at::kFloat && m.scalar_type() == at::kFloat &&
                     v.scalar_type() == at::kFloat && p.is_contiguous() && g.is_contiguous() &&
                     m.is_contiguous() && v.is_contiguous() && g.numel() == p.numel() &&
                     m.numel() == p.numel() && v.numel() == p.numel();
  if (!fused) {
    if (s.grad_scale != 1.0) g.mul_(s.grad_scale);
    m.mul_(s.beta1).add_(g, 1.0 - s.beta1);
    v.mul_(s.beta2).addcmul_(g, g, 1.0 - s.beta2);
    at::Tensor denom = (v.sqrt() / std::sqrt(s.bc2)).add_(s.eps);
    p.addcdiv_(m, denom, -s.lr / s.bc1);
    g.zero_();
    return;
  }
  // Torch rounds each double scalar to the tensor's float type; so do we.
  AdamLoop(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(),
           p.numel(), static_cast<float>(s.beta1), static_cast<float>(1.0 - s.beta1),
           static_cast<float>(s.beta2), static_cast<float>(1.0 - s.beta2),
           static_cast<float>(std::sqrt(s.bc2)), static_cast<float>(s.eps),
           static_cast<float>(-s.lr / s.bc1), static_cast<float>(s.grad_scale),
           s.grad_scale != 1.0);
}

double SquaredNorm(const at::Tensor& g) {
  if (!g.device().is_cpu() || g.scalar_type() != at::kFloat || !g.is_contiguous()) {
    return g.to(at::kDouble).pow(2).sum().item<double>();
  }
  const float* p = g.data_ptr<float>();
  double sum = 0;
  for (std::int64_t i = 0; i < g.numel(); ++i) sum += static_cast<double>(p[i]) * p[i];
  return sum;
}

}  // namespace pgraph::train
