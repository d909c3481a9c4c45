// The training kernels that replace stock torch ops: each must give what the stock op
// gives, forward and backward, on random cases with the awkward shapes (empty neighbour
// lists, repeated rows, widths that are not a multiple of the vector width).
#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

#include "train/csr_pool.h"
#include "train/fused_ops.h"

namespace pgraph::train {
namespace {

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

struct RandomCsr {
  at::Tensor offsets, index, weight;
};

// n lists over `rows` rows; every fourth list is empty, rows repeat within a list.
RandomCsr MakeCsr(std::int64_t n, std::int64_t rows, at::ScalarType dtype, std::uint64_t seed) {
  at::manual_seed(seed);
  std::vector<std::int64_t> offsets, index;
  at::Tensor counts = at::randint(1, 12, {n}, at::TensorOptions().dtype(at::kLong));
  for (std::int64_t u = 0; u < n; ++u) {
    offsets.push_back(static_cast<std::int64_t>(index.size()));
    if (u % 4 == 3) continue;
    const std::int64_t c = counts[u].item<std::int64_t>();
    at::Tensor r = at::randint(0, rows, {c}, at::TensorOptions().dtype(at::kLong));
    for (std::int64_t j = 0; j < c; ++j) index.push_back(r[j].item<std::int64_t>());
  }
  RandomCsr csr;
  auto i64 = at::TensorOptions().dtype(at::kLong);
  csr.offsets = at::tensor(offsets, i64);
  csr.index = at::tensor(index, i64);
  csr.weight = at::rand({static_cast<std::int64_t>(index.size())},
                        at::TensorOptions().dtype(dtype));
  return csr;
}

// Forward and the gradient of a random linear function of the result, by CsrPool and by
// at::embedding_bag (the op it replaces), for importance and mean pooling, with and without
// the fused ReLU.
void CompareWithEmbeddingBag(std::int64_t n, std::int64_t rows, std::int64_t m,
                             at::ScalarType dtype, double tolerance) {
  const RandomCsr csr = MakeCsr(n, rows, dtype, 11 + static_cast<std::uint64_t>(m));
  auto opts = at::TensorOptions().dtype(dtype);
  const at::Tensor p0 = at::randn({rows, m}, opts);
  const at::Tensor r = at::randn({n, m}, opts);
  for (int variant = 0; variant < 4; ++variant) {
    const bool mean = variant & 1, relu = variant & 2;
    INFO("n " << n << " rows " << rows << " m " << m << (mean ? " mean" : " importance")
              << (relu ? " relu" : ""));
    at::Tensor pa = p0.clone().requires_grad_(true);
    at::Tensor pb = p0.clone().requires_grad_(true);
    at::Tensor a = CsrPool(pa, csr.offsets, csr.index, csr.weight, mean, relu);
    at::Tensor b = std::get<0>(at::embedding_bag(relu ? at::relu(pb) : pb, csr.index,
                                                 csr.offsets, false, mean ? 1 : 0, false,
                                                 mean ? at::Tensor() : csr.weight, false));
    REQUIRE(a.sizes() == b.sizes());
    CHECK(MaxAbsDiff(a, b) < tolerance);
    (a * r).sum().backward();
    (b * r).sum().backward();
    CHECK(MaxAbsDiff(pa.grad(), pb.grad()) < tolerance);
    // Rows no list refers to get exactly zero.
    at::Tensor used = at::zeros({rows}, at::TensorOptions().dtype(at::kBool));
    used.index_fill_(0, csr.index, true);
    CHECK(pa.grad().masked_select(used.logical_not().unsqueeze(1)).abs().sum().item<double>() ==
          0.0);
  }
}

TEST_CASE("CsrPool matches embedding_bag forward and backward", "[kernels]") {
  CompareWithEmbeddingBag(37, 50, 16, at::kFloat, 1e-5);
  CompareWithEmbeddingBag(200, 120, 37, at::kFloat, 1e-5);   // m not a multiple of 16
  CompareWithEmbeddingBag(500, 300, 128, at::kFloat, 1e-5);  // several column blocks
  CompareWithEmbeddingBag(64, 10, 5, at::kDouble, 1e-12);
}

TEST_CASE("CsrPool gives the same result on 1 and 2 threads", "[kernels]") {
  const RandomCsr csr = MakeCsr(300, 200, at::kFloat, 5);
  const at::Tensor p0 = at::randn({200, 64});
  const at::Tensor r = at::randn({300, 64});
  const int before = at::get_num_threads();
  std::vector<at::Tensor> outs, grads;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    at::Tensor p = p0.clone().requires_grad_(true);
    at::Tensor out = CsrPool(p, csr.offsets, csr.index, csr.weight, false, /*relu=*/true);
    (out * r).sum().backward();
    outs.push_back(out.detach());
    grads.push_back(p.grad());
  }
  at::set_num_threads(before);
  // Bitwise: threads split rows (forward) and columns (backward), never one sum.
  CHECK(at::equal(outs[0], outs[1]));
  CHECK(at::equal(grads[0], grads[1]));
}

TEST_CASE("CsrPool rejects bad lists", "[kernels]") {
  const RandomCsr csr = MakeCsr(10, 20, at::kFloat, 3);
  const at::Tensor p = at::randn({20, 8});
  at::Tensor bad_index = csr.index.clone();
  bad_index[0] = 20;
  CHECK_THROWS(CsrPool(p, csr.offsets, bad_index, csr.weight, false));
  at::Tensor bad_offsets = csr.offsets.clone();
  bad_offsets[0] = 1;
  CHECK_THROWS(CsrPool(p, bad_offsets, csr.index, csr.weight, false));
  CHECK_THROWS(CsrPool(p, csr.offsets, csr.index, csr.weight.narrow(0, 0, 1), false));
  CHECK_THROWS(CsrPool(p.to(at::kInt), csr.offsets, csr.index, csr.weight, false));
}

TEST_CASE("RowL2Normalize matches the unfused expression forward and backward", "[kernels]") {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (bool relu : {false, true}) {
      for (std::int64_t d : {5, 64, 67}) {
        INFO("dtype " << dtype << " relu " << relu << " d " << d);
        at::manual_seed(static_cast<std::uint64_t>(d) + relu);
        auto opts = at::TensorOptions().dtype(dtype);
        at::Tensor x0 = at::randn({40, d}, opts);
        x0[3].fill_(0.0);   // a zero row: the 1e-12 clamp is active
        x0[7].fill_(-1.0);  // all negative: zero after ReLU
        const at::Tensor r = at::randn({40, d}, opts);
        at::Tensor xa = x0.clone().requires_grad_(true);
        at::Tensor xb = x0.clone().requires_grad_(true);
        at::Tensor a = RowL2Normalize(xa, relu);
        at::Tensor rb = relu ? at::relu(xb) : xb;
        at::Tensor b = rb / rb.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
        const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
        CHECK(MaxAbsDiff(a, b) < tol);
        (a * r).sum().backward();
        (b * r).sum().backward();
        // Relative: the clamped rows' gradients are ~1e12 (as in the unfused expression).
        at::Tensor ga = xa.grad(), gb = xb.grad();
        CHECK(((ga - gb).abs() / gb.abs().clamp_min(1.0)).max().item<double>() < tol);
      }
    }
  }
}

TEST_CASE("SoftmaxLossFirst matches cross_entropy of the concatenated scores", "[kernels]") {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    INFO("dtype " << dtype);
    at::manual_seed(4);
    auto opts = at::TensorOptions().dtype(dtype);
    // Positive, shared negatives, masked in-batch block (-inf on the diagonal), hard.
    std::vector<at::Tensor> base = {at::randn({6, 1}, opts), at::randn({6, 9}, opts),
                                    at::randn({6, 6}, opts), at::randn({6, 2}, opts)};
    base[0][2][0] = -200.0;  // a positive far below the row's maximum: no underflow
    base[2] = base[2].masked_fill(at::eye(6, opts.dtype(at::kBool)),
                                  -std::numeric_limits<double>::infinity());
    std::vector<at::Tensor> a, b;
    for (const at::Tensor& x : base) {
      a.push_back(x.clone().requires_grad_(true));
      b.push_back(x.clone().requires_grad_(true));
    }
    const double tau = 0.05;
    at::Tensor la = SoftmaxLossFirst(a, tau);
    at::Tensor logits = at::cat(b, 1) / tau;
    at::Tensor lb = at::cross_entropy_loss(logits, at::zeros({6}, opts.dtype(at::kLong)));
    const double tol = dtype == at::kFloat ? 1e-4 : 1e-10;
    CHECK(std::abs(la.item<double>() - lb.item<double>()) < tol);
    (la * 3.0).backward();
    (lb * 3.0).backward();
    for (std::size_t i = 0; i < a.size(); ++i) {
      INFO("block " << i);
      CHECK(MaxAbsDiff(a[i].grad(), b[i].grad()) < tol);
    }
  }
}

TEST_CASE("AdamUpdate matches Adam written with tensor ops", "[kernels]") {
  at::manual_seed(9);
  at::Tensor p = at::randn({33, 7}), g = at::randn({33, 7});
  at::Tensor m = at::randn({33, 7}) * 0.1, v = at::rand({33, 7}) * 0.01;
  at::Tensor rp = p.clone(), rg = g.clone(), rm = m.clone(), rv = v.clone();
  AdamScalars s;
  s.lr = 3e-3;
  s.bc1 = 1.0 - std::pow(s.beta1, 5.0);
  s.bc2 = 1.0 - std::pow(s.beta2, 5.0);
  s.grad_scale = 0.7;
  AdamUpdate(p, g, m, v, s);
  rg.mul_(s.grad_scale);
  rm.mul_(s.beta1).add_(rg, 1.0 - s.beta1);
  rv.mul_(s.beta2).addcmul_(rg, rg, 1.0 - s.beta2);
  at::Tensor denom = (rv.sqrt() / std::sqrt(s.bc2)).add_(s.eps);
  rp.addcdiv_(rm, denom, -s.lr / s.bc1);
  CHECK(MaxAbsDiff(m, rm) < 1e-6);
  CHECK(MaxAbsDiff(v, rv) < 1e-7);
  CHECK(MaxAbsDiff(p, rp) < 1e-6);
  CHECK(g.abs().sum().item<double>() == 0.0);
  CHECK(std::abs(SquaredNorm(rp) - rp.to(at::kDouble).pow(2).sum().item<double>()) < 1e-9);
}

}  // namespace
}  // namespace pgraph::train
