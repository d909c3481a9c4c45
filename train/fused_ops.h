#pragma once
// Private to train/: fused CPU versions of the small element-wise steps of a training step.
//
// A MovieLens-sized step runs ~150 torch ops of a few microseconds each; the L2
// normalisations (norm, clamp, divide and their four backward ops per use) and Adam
// (~8 ops per parameter tensor, each wrapping its scalar arguments in tensors) were ~15%
// of the step (docs/BENCHMARKS.md, "train"). Each function here computes the same
// formula in one pass. On a non-CPU device, or for dtypes the loops do not cover, they
// run the plain torch ops instead.

#include <ATen/ATen.h>

#include <vector>

namespace pgraph::train {

// y = r / max(||r||_2, 1e-12) row by row, where r = ReLU(x) when `relu`, else x.
// Differentiable with respect to x, with the gradient of the unfused expression
// (including its 1e-12 clamp). Requires: x a float32 or float64 matrix. Throws c10::Error
// otherwise.
at::Tensor RowL2Normalize(const at::Tensor& x, bool relu);

// The sampled-softmax loss with the positive first: with rows r_b = concat over `scores`
// of scores[k][b] / temperature, mean_b(logsumexp(r_b) - r_b[0]), i.e.
// cross_entropy(cat(scores, 1) / temperature, zeros) without the concatenation, the
// division, the target tensor and their backward ops. Entries of -inf (masked) get zero
// gradient. Differentiable with respect to every score tensor.
// Requires: scores non-empty, each [B x k_i] with the same B >= 1 and dtype; scores[0] has
// k_0 >= 1 (its column 0 is the positive); temperature > 0.
at::Tensor SoftmaxLossFirst(const std::vector<at::Tensor>& scores, double temperature);

// Adam with PyTorch's update rule on one parameter tensor, in place:
//   g *= grad_scale; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
//   p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps); g = 0.
// Requires: p, g, m, v of the same shape, dtype and device; no autograd recording (call
// under NoGradGuard).
struct AdamScalars {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double bc1 = 1, bc2 = 1;    // 1 - beta^step
  double grad_scale = 1.0;    // gradient clipping factor
};
void AdamUpdate(at::Tensor& p, at::Tensor& g, at::Tensor& m, at::Tensor& v,
                const AdamScalars& s);

// sum(g^2) over a tensor, in double (for gradient-norm clipping).
double SquaredNorm(const at::Tensor& g);

}  // namespace pgraph::train
