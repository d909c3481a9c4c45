#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>

#include "ann/kernels.h"
#include "storage/store.h"
#include "test/ann/ann_test_util.h"

namespace pgraph::ann {
namespace {

double NaiveDot(const float* a, const float* b, std::size_t d) {
  double s = 0;
  for (std::size_t i = 0; i < d; ++i) s += double{a[i]} * b[i];
  return s;
}

TEST_CASE("kernels: Dot matches a double-precision sum for every length", "[ann]") {
  auto v = testing::Gaussian(2, 300, 7);
  for (std::size_t d : {0, 1, 3, 15, 16, 17, 31, 32, 64, 100, 128, 300}) {
    INFO("d=" << d);
    const double want = NaiveDot(v.data(), v.data() + 300, d);
    CHECK(internal::Dot(v.data(), v.data() + 300, d) == Approx(want).margin(1e-4));
  }
}

TEST_CASE("kernels: DotBlock gives the same bits as Dot", "[ann]") {
  for (std::size_t d : {5, 16, 37, 64}) {
    const std::size_t m = 7, n = 11;
    auto q = testing::Gaussian(m, static_cast<std::uint32_t>(d), 1);
    auto r = testing::Gaussian(n, static_cast<std::uint32_t>(d), 2);
    std::vector<float> out(m * n);
    internal::DotBlock(q.data(), m, r.data(), n, d, out.data());
    for (std::size_t i = 0; i < m; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        const float one = internal::Dot(q.data() + i * d, r.data() + j * d, d);
        INFO("d=" << d << " i=" << i << " j=" << j);
        CHECK(std::bit_cast<std::uint32_t>(out[i * n + j]) == std::bit_cast<std::uint32_t>(one));
        // Dot is symmetric in its arguments, bit for bit.
        CHECK(std::bit_cast<std::uint32_t>(internal::Dot(r.data() + j * d, q.data() + i * d, d)) ==
              std::bit_cast<std::uint32_t>(one));
      }
    }
  }
}

TEST_CASE("kernels: half conversion agrees with storage for all 65536 values", "[ann]") {
  std::vector<std::uint16_t> all(65536);
  for (std::uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<std::uint16_t>(i);
  std::vector<float> out(65536);
  internal::HalfToFloat(all.data(), all.size(), out.data());
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const float want = storage::HalfToFloat(static_cast<std::uint16_t>(i));
    if (std::isnan(want)) {
      CHECK(std::isnan(out[i]));
    } else if (std::bit_cast<std::uint32_t>(out[i]) != std::bit_cast<std::uint32_t>(want)) {
      FAIL("half " << i << ": got " << out[i] << " want " << want);
    }
  }
}

TEST_CASE("kernels: DotHalf equals Dot on the converted row", "[ann]") {
  const std::size_t d = 77;
  auto a = testing::Gaussian(2, d, 3);
  std::vector<std::uint16_t> h(d);
  std::vector<float> back(d);
  for (std::size_t i = 0; i < d; ++i) h[i] = storage::FloatToHalf(a[d + i]);
  internal::HalfToFloat(h.data(), d, back.data());
  CHECK(internal::DotHalf(a.data(), h.data(), d) == internal::Dot(a.data(), back.data(), d));
}

}  // namespace
}  // namespace pgraph::ann
